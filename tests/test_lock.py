"""The lock is the one source of versions: the environment the tests run in, and what rented machines install."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vibeml.exceptions import ConfigurationError
from vibeml.locks import LOCKS, Pin, canonical, closure, load_lock, parse_lock, pinned, project_requirements
from vibeml.models import TrainingRequest
from vibeml.workflows import get_workflow, list_workflows, render_program

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _applies(pin: Pin, python: str | None = None) -> bool:
    """Whether the pin is for this environment (or this one with another ``python`` version, e.g. "3.12.1")."""
    from packaging.markers import Marker, default_environment

    env: dict[str, str] = dict(default_environment())
    if python:
        env.update(python_full_version=python, python_version=".".join(python.split(".")[:2]))
    return pin.marker is None or Marker(pin.marker).evaluate(env)


def locked_version(name: str, lock: str = "main", python: str | None = None) -> str:
    versions = {p.version for p in load_lock(lock) if p.name == canonical(name) and _applies(p, python)}
    assert len(versions) == 1, (name, versions)
    return versions.pop()


def _public(version: str) -> str:
    """``2.13.0+cpu`` → ``2.13.0``: a local build label (the CPU wheel of torch) is the same release."""
    return version.split("+", 1)[0]


# ------------------------------------------------------------------------------------- drift


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    """Every distribution installed here (`make test`'s .venv) is in the lock, at the locked version."""
    lock: dict[str, list[Pin]] = {}
    for pin in load_lock("main"):
        if _applies(pin):
            lock.setdefault(pin.name, []).append(pin)
    drift, unlocked = [], []
    # The environment's own folders, not all of sys.path: importing setuptools (torch does, in some tests)
    # puts setuptools/_vendor on sys.path, whose vendored copies are not installed distributions.
    places = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for dist in metadata.distributions(path=places):
        name = canonical(dist.metadata["Name"])
        if name == "vibeml":
            continue
        pins = lock.get(name)
        if not pins:
            unlocked.append(f"{name}=={dist.version}")
        elif _public(dist.version) not in {p.version for p in pins}:
            drift.append(f"{name}: installed {dist.version}, locked {pins[0].version}")
    assert not drift, f"installed versions differ from the lock (run `make test` to rebuild .venv): {drift}"
    assert not unlocked, f"installed but not in the lock (add it to pyproject.toml, then `make lock`): {unlocked}"


@pytest.mark.needs_train
def test_every_dependency_of_the_test_set_is_installed_at_its_locked_version() -> None:
    for name in project_requirements(("train", "dev", "qlora")):
        pins = [p for p in load_lock("main") if p.name == name and _applies(p)]
        if not pins:  # a dependency for another Python only (tomli on 3.10)
            continue
        assert _public(metadata.version(name)) == pins[0].version, name
    # the versions the main workflows send a rented machine of this Python are the ones tested here
    for name in ("transformers", "peft", "trl", "datasets", "accelerate", "torch", "bitsandbytes"):
        assert locked_version(name) == _public(metadata.version(name)), name


# ------------------------------------------------------------------------------ rented machines


@pytest.mark.parametrize("workflow", [w.name for w in list_workflows()])
def test_rented_machines_install_the_locked_versions(workflow: str) -> None:
    """The requirements a workflow's program carries are lines of its lock: same name, version and marker."""
    wf = get_workflow(workflow)
    request = TrainingRequest(model="Qwen/Qwen2.5-0.5B", dataset="d.jsonl", workflow=workflow)
    program = render_program(request, "j", output_dir="o", checkpoint_dir="c", events_path="e")
    lines = {p.requirement for p in load_lock(wf.lock)}
    assert program.requirements and set(program.requirements) <= lines
    sent = {canonical(r.split("==")[0]) for r in program.requirements}
    for name in project_requirements(wf.extras):
        assert name in sent or not any(p.name == name for p in load_lock(wf.lock)), name
    for name in ("torch", "transformers", "peft", "trl", "datasets", "accelerate"):
        # every line the lock has for it (one per Python range where it forks), and nothing else
        sent_lines = {r for r in program.requirements if canonical(r.split("==")[0]) == name}
        assert sent_lines == {p.requirement for p in load_lock(wf.lock) if p.name == name}, name
    wanted = {"qlora": "bitsandbytes", "unsloth": "unsloth", "trl-lora": "liger-kernel", "full": "liger-kernel"}
    assert wanted[workflow] in sent


def test_the_unsloth_lock_keeps_unsloth_within_its_caps() -> None:
    """Unsloth caps transformers (<= 5.17 for 2026.10.9): its workflow gets its own, consistent lock."""
    from packaging.requirements import Requirement

    pins = {p.name: p.version for p in load_lock("unsloth")}
    assert "unsloth" in pins and "unsloth-zoo" in pins
    assert "unsloth" not in {p.name for p in load_lock("main")}
    # every pin of the unsloth lock that unsloth itself constrains satisfies that constraint
    unsloth_caps = [Requirement("transformers<=5.17.0"), Requirement("trl<=1.15.0"), Requirement("datasets<5.0.0")]
    if pins["unsloth"] == "2026.10.9":  # the caps of this release (its metadata); a newer one is checked by uv
        for cap in unsloth_caps:
            assert pins[canonical(cap.name)] in cap.specifier, cap


def test_the_skypilot_task_and_the_vast_payload_carry_the_lock_lines() -> None:
    from vibeml.backends.skypilot.task import _requirements

    request = TrainingRequest(model="Qwen/Qwen2.5-0.5B", dataset="d.jsonl", workflow="qlora")
    program = render_program(request, "j", output_dir="o", checkpoint_dir="c", events_path="e")
    assert _requirements(program) == list(program.requirements)  # markers with parentheses pass the check


# --------------------------------------------------------------------------------- the files


def test_committed_set_up_files_name_no_index_host_or_local_path() -> None:
    files = [
        *(ROOT / "src" / "vibeml" / "locks").glob("*.txt"),
        *(ROOT / "requirements").glob("*"),
        ROOT / "Makefile",
        ROOT / "pyproject.toml",
        *(ROOT / "tools").glob("*"),
        ROOT / ".ci" / "run",
    ]
    banned = (
        "://",
        "--index-url",
        "--extra-index-url",
        "--find-links",
        "-f /",
        "/opt/",
        "/root/",
        "/tmp/",
        "/home/",
        "+cpu",
        "pythonhosted",
        "pypi.org",
    )
    for path in (f for f in files if f.is_file()):
        text = path.read_text(encoding="utf-8")
        found = [b for b in banned if b in text]
        assert not found, f"{path.relative_to(ROOT)} names {found}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_locks_are_exact_universal_and_from_make_lock(lock: str) -> None:
    text = (ROOT / "src" / "vibeml" / "locks" / LOCKS[lock]).read_text(encoding="utf-8")
    assert "#    make lock" in text.splitlines()[1]
    pins = load_lock(lock)
    assert len(pins) > 50 and all(p.version and "*" not in p.version for p in pins)
    # one line per package for each Python from 3.10 to 3.13 (Linux x86_64 here), and the trainer's libraries
    # the same on every Python from 3.11: what `make test` tests here is what a 3.12 image installs
    for python in ("3.10.13", "3.11.7", "3.12.1", "3.13.0"):
        names = [p.name for p in pins if _applies(p, python)]
        assert len(names) == len(set(names)), python
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes"):
        if any(p.name == name for p in pins):
            assert len({locked_version(name, lock, py) for py in ("3.11.7", "3.12.1", "3.13.0")}) == 1, name


def test_the_lock_ships_inside_the_package() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlib import resources; import vibeml.locks as m; "
            "print(sorted(p.name for p in resources.files(m).iterdir() if p.name.endswith('.txt')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == str(sorted(LOCKS.values()))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"locks/*.txt"' in pyproject


# ------------------------------------------------------------------------------- the parser

_UV_STYLE = """\
# This file was autogenerated by uv via the following command:
#    make lock
a==1.0
    # via vibeml (pyproject.toml)
b==2.0 ; python_full_version < '3.11'
    # via
    #   -r requirements/x.in
    #   a
b==2.1 ; python_full_version >= '3.11'
    # via a
c==3.0 ; (sys_platform == 'linux' and platform_machine == 'x86_64') or sys_platform == 'win32'
    # via
    #   --override requirements/overrides.in
    #   b
d==4.0
    # via vibeml (pyproject.toml)
"""


def test_parse_lock_reads_pins_markers_and_dependents() -> None:
    pins = parse_lock(_UV_STYLE)
    assert [p.requirement for p in pins] == [
        "a==1.0",
        "b==2.0 ; python_full_version < '3.11'",
        "b==2.1 ; python_full_version >= '3.11'",
        "c==3.0 ; (sys_platform == 'linux' and platform_machine == 'x86_64') or sys_platform == 'win32'",
        "d==4.0",
    ]
    assert [p.required_by for p in pins] == [("vibeml",), ("a",), ("a",), ("b",), ("vibeml",)]
    assert [p.name for p in closure(pins, ["a"])] == ["a", "b", "b", "c"]
    assert [p.name for p in closure(pins, ["D"])] == ["d"]
    with pytest.raises(ConfigurationError) as err:
        closure(pins, ["a", "nope"])
    assert "nope" in str(err.value) and "make lock" in (err.value.recovery_suggestion or "")


@pytest.mark.parametrize("bad", ["a>=1.0\n", "--index-url x\n", "-e .\n", "a==1.0 \\\n    --hash=sha256:ab\n"])
def test_parse_lock_refuses_what_make_lock_never_writes(bad: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        parse_lock(bad)
    assert "make lock" in (err.value.recovery_suggestion or "")


def test_unknown_lock_and_unknown_package() -> None:
    with pytest.raises(ConfigurationError):
        load_lock("nope")
    with pytest.raises(ConfigurationError):
        pinned(["no-such-package-anywhere"])
    with pytest.raises(ConfigurationError):
        project_requirements(("no-such-extra",))


_NAME = st.from_regex(r"[a-z][a-z0-9]{0,6}([-_.][a-z0-9]{1,4})?", fullmatch=True)
_VERSION = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}(\.post[0-9])?", fullmatch=True)
_MARKER = st.sampled_from(
    [
        None,
        "python_full_version < '3.11'",
        "sys_platform == 'linux'",
        "(platform_machine == 'x86_64' or platform_machine == 'aarch64') and sys_platform == 'linux'",
    ]
)


@given(
    st.lists(
        st.tuples(_NAME, _VERSION, _MARKER, st.lists(_NAME, max_size=3)),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[0],
    )
)
def test_parse_lock_round_trips_what_uv_writes(rows: list[tuple[str, str, str | None, list[str]]]) -> None:
    text = ["# This file was autogenerated by uv via the following command:", "#    make lock"]
    for name, version, marker, via in rows:
        text.append(f"{name}=={version}" + (f" ; {marker}" if marker else ""))
        if len(via) == 1:
            text.append(f"    # via {via[0]}")
        elif via:
            text += ["    # via", *(f"    #   {v}" for v in via)]
    pins = parse_lock("\n".join(text) + "\n")
    assert [(p.name, p.version, p.marker) for p in pins] == [(canonical(n), v, m) for n, v, m, _ in rows]
    assert [p.required_by for p in pins] == [tuple(dict.fromkeys(canonical(v) for v in via)) for *_, via in rows]
    # the closure of everything is everything; of nothing, nothing
    assert closure(pins, [p.name for p in pins]) == pins and closure(pins, []) == ()


def test_rented_hosts_must_run_the_cuda_the_locked_torch_is_built_for() -> None:
    """torch's Linux wheels carry their CUDA runtime: a host whose driver is older cannot run the trainer."""
    from vibeml.backends.vast.options import VastOptions
    from vibeml.locks import cuda_floor
    from vibeml.settings import Settings

    runtime = [p for p in load_lock("main") if p.name.startswith("nvidia-cuda-runtime")]
    assert runtime and cuda_floor() == max(float(".".join(p.version.split(".")[:2])) for p in runtime)
    assert VastOptions().min_cuda == cuda_floor() and Settings.from_env({}).vast.min_cuda == cuda_floor()
    assert VastOptions(min_cuda=12.4).min_cuda == 12.4  # a user's own image may choose otherwise
