"""One settings tree: only ``vibeml/settings.py`` reads VibeML's settings from the environment.

Found with ``ast`` (not grep, so comments and strings do not count and aliases such as ``from os import
environ`` do). Every other module that touches the environment is listed below with the reason, and each
listed exception must still be needed (so the list cannot rot). Front ends build the settings; nothing
else calls ``Settings.from_env`` or ``Settings()``. Every ``VIBEML_*`` name anywhere in the tree is a
documented setting, an old name of one, or a documented internal variable.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from vibeml.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = SRC / "vibeml"

#: Modules (or folders, ending in "/") that may read the environment, and why.
EXEMPT = {
    "vibeml/settings.py": "the one place VibeML's settings are read",
    "vibeml/trainer/": "the trainer runs in its own process, often on another machine: it reads RANK, "
    "OMP_NUM_THREADS, HF_HUB_OFFLINE… as set for it",
    "vibeml/workflows/_standalone.py": "the standalone script template runs on its own, without VibeML",
    "vibeml/remote/": "the supervisor on a rented machine: its job arrives in its environment (the payload, the "
    "job dir, the provider's own variables)",
    "vibeml/launch.py": "the launcher's command line runs on the training machine: SkyPilot's node variables",
    "vibeml/testing/": "testing fakes (fake Vast.ai) run as programs of their own",
    "vibeml/config/credentials.py": "the seed's CredentialManager() with no environment mapping: "
    "get_credential(..., fallback_env=NAME) reads the variable its caller names, not a VibeML setting",
}
#: Machine-side modules that read VibeML's variables from the environment mapping the supervisor hands them
#: (they never read os.environ themselves).
MACHINE_SIDE = {
    "vibeml/backends/vast/remote.py": "Vast's part of the supervisor: the onstart's start time and the API URL",
}
#: Modules that only hand the whole environment to a child process unread: ``dict(os.environ)``.
PASSTHROUGH = {
    "vibeml/backends/local.py": "the local trainer inherits this process's environment, plus its job's",
}
#: Modules that may build the settings from the environment: the front ends.
FRONT_ENDS = {
    "vibeml/cli/_output.py": "the CLI: once per command line",
    "vibeml/mcp/server.py": "the MCP server: once, at start",
    "vibeml/client.py": "VibeML() with no settings",
    "vibeml/api.py": "the async API with no settings",
    "vibeml/config/credentials.py": "the seed's CredentialManager() with no arguments",
}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _listed(rel: str, listing: dict[str, str]) -> bool:
    return any(rel == key or (key.endswith("/") and rel.startswith(key)) for key in listing)


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def environment_reads(tree: ast.Module) -> list[tuple[int, str, bool]]:
    """Every use of ``os.environ``/``os.environb``/``os.getenv`` (also imported by name or through an
    alias of ``os``): (line, what, whether it is a bare ``dict(os.environ)`` copy)."""
    os_names = {"os"}
    direct: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            direct |= {a.asname or a.name for a in node.names if a.name in ("environ", "environb", "getenv")}
    parents = _parents(tree)
    found: list[tuple[int, str, bool]] = []
    for node in ast.walk(tree):
        hit = None
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv"):
            if isinstance(node.value, ast.Name) and node.value.id in os_names:
                hit = f"os.{node.attr}"
        elif isinstance(node, ast.Name) and node.id in direct:
            hit = node.id
        if hit is None:
            continue
        parent = parents.get(node)
        copy = (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Name)
            and parent.func.id == "dict"
            and parent.args == [node]
            and not parent.keywords
        )
        found.append((node.lineno, hit, copy))
    return found


def vibeml_name_reads(tree: ast.Module) -> list[tuple[int, str]]:
    """Reads of a ``VIBEML_*`` key from any mapping: ``m["VIBEML_HOME"]`` (not an assignment) or
    ``m.get("VIBEML_HOME")`` / ``m.pop(...)`` / ``m.setdefault(...)``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            key = node.slice
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
        ):
            key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("VIBEML_"):
            found.append((node.lineno, key.value))
    return found


def settings_builds(tree: ast.Module) -> list[tuple[int, str]]:
    """Calls that build settings from the environment: ``Settings.from_env(...)`` and ``Settings(...)``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "Settings":
            found.append((node.lineno, "Settings()"))
        elif isinstance(f, ast.Attribute) and f.attr == "from_env":
            found.append((node.lineno, f"{ast.unparse(f.value)}.from_env()"))
    return found


# ------------------------------------------------------------------------------------ the contract


def test_only_settings_py_reads_the_environment() -> None:
    offenders = []
    for rel, tree in _modules():
        if _listed(rel, EXEMPT):
            continue
        for line, what, copy in environment_reads(tree):
            if copy and rel in PASSTHROUGH:
                continue
            offenders.append(f"{rel}:{line}: {what}")
    assert offenders == [], (
        "read settings in vibeml/settings.py and pass them down (or list a real exception in EXEMPT / "
        "PASSTHROUGH with its reason):\n" + "\n".join(offenders)
    )


def test_no_module_reads_a_vibeml_variable_from_a_mapping() -> None:
    """No ``env.get("VIBEML_…")`` behind an environment passed in as a mapping either."""
    offenders = [
        f"{rel}:{line}: {name}"
        for rel, tree in _modules()
        if not _listed(rel, EXEMPT) and rel not in MACHINE_SIDE
        for line, name in vibeml_name_reads(tree)
    ]
    assert offenders == [], "\n".join(offenders)


def test_only_front_ends_build_settings() -> None:
    offenders = [
        f"{rel}:{line}: {what}"
        for rel, tree in _modules()
        if rel not in FRONT_ENDS
        for line, what in settings_builds(tree)
    ]
    assert offenders == [], "build Settings in a front end and pass it (or its section) in:\n" + "\n".join(offenders)


def test_every_exception_is_still_needed() -> None:
    trees = dict(_modules())
    for key in EXEMPT:
        reads = [r for rel, tree in trees.items() if _listed(rel, {key: ""}) for r in environment_reads(tree)]
        assert reads, f"{key} no longer reads the environment: remove it from EXEMPT"
    for key in PASSTHROUGH:
        assert [r for r in environment_reads(trees[key]) if r[2]], f"{key} no longer copies the environment"
    for key in FRONT_ENDS:
        assert settings_builds(trees[key]), f"{key} no longer builds settings: remove it from FRONT_ENDS"


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("import os\nx = os.environ.get('A')", [(2, "os.environ", False)]),
        ("import os as o\nx = o.getenv('A')", [(2, "os.getenv", False)]),
        ("from os import environ as e\nx = e['A']", [(2, "e", False)]),
        ("import os\nenv = dict(os.environ)", [(2, "os.environ", True)]),
        ("import os\nenv = dict(os.environ, A='1')", [(2, "os.environ", False)]),
        ("# os.environ in a comment\ns = 'os.environ'", []),
    ],
)
def test_the_scanner_finds_reads(source: str, reads: list[tuple[int, str, bool]]) -> None:
    assert environment_reads(ast.parse(source)) == reads


def test_the_scanner_finds_settings_builds_and_vibeml_keys() -> None:
    tree = ast.parse("s = Settings()\nt = Settings.from_env({})\nm = env.get('VIBEML_HOME')\nenv['VIBEML_PYTHON'] = ''")
    assert settings_builds(tree) == [(1, "Settings()"), (2, "Settings.from_env()")]
    assert vibeml_name_reads(tree) == [(3, "VIBEML_HOME")]


# ---------------------------------------------------------------------------------- one name per idea

DOC = ROOT / "docs" / "configuration.md"
_NAME = re.compile(r"\bVIBEML_[A-Z0-9_]+\b")


def _documented_internal() -> set[str]:
    """The first column of the table under "Internal variables", and the other names the text below it
    mentions (legacy wire names, tools' switches)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Internal variables") :]
    rows = {line.split("|")[1].strip(" `") for line in section.splitlines() if line.startswith("| `VIBEML_")}
    prose = {n for line in section.splitlines() if not line.startswith("|") for n in _NAME.findall(line)}
    return rows | (prose - {v.name for v in Settings.variables()})


def _mentions() -> dict[str, set[str]]:
    """Every complete ``VIBEML_*`` name in the package, the tests, the docs, the README, Makefile, tools."""
    files = [*SRC.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "docs").glob("*.md")]
    files += [ROOT / "README.md", ROOT / "Makefile", *(ROOT / "tools").rglob("*"), *(ROOT / "bench").rglob("*.py")]
    found: dict[str, set[str]] = {}
    for path in files:
        if not path.is_file() or path.suffix in (".pyc", ".csv", ".json"):
            continue
        for name in _NAME.findall(path.read_text(encoding="utf-8", errors="replace")):
            if not name.endswith("_"):  # "VIBEML_VAST_<FIELD>": a prefix, not a name
                found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for var in Settings.variables():
        for name in (var.name, *var.aliases, *var.deprecated):
            assert f"`{name}`" in text, f"{name} ({var.path}) is missing from docs/configuration.md"
        assert f"`{var.path}`" in text
        assert var.description, f"{var.path} has no description"
        assert var.description.replace("|", "\\|") in text, f"docs/configuration.md describes {var.path} otherwise"
        assert "<" not in var.description, "markdown would take <…> for a tag"


def test_every_vibeml_name_in_the_tree_is_known() -> None:
    settings = {v.name for v in Settings.variables()}
    old = {d for v in Settings.variables() for d in v.deprecated}
    known = settings | old | _documented_internal()
    unknown = {name: sorted(where) for name, where in _mentions().items() if name not in known}
    assert unknown == {}, "document these in docs/configuration.md (or use the setting's one name)"


def test_old_names_appear_only_where_they_are_deprecated() -> None:
    old = {d for v in Settings.variables() for d in v.deprecated}
    allowed = {"src/vibeml/settings.py", "docs/configuration.md", "tests/test_settings.py"}
    stray = {name: sorted(where - allowed) for name, where in _mentions().items() if name in old and where - allowed}
    assert stray == {}


def test_internal_names_are_not_settings() -> None:
    """A name is either a setting the user sets or a variable VibeML sets for a child: not both (the budget a
    machine keeps travels in the typed payload, not in variables of its own)."""
    settings = {v.name for v in Settings.variables()}
    assert _documented_internal() & settings == set()
