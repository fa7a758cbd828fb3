"""Every ```python block of the documents VibeML was specified from (``../shared/seeds`` beside the repository:
the API reference and the Vast.ai SDK overview) runs exactly as written.

Each document runs once, in a subprocess (``tests/seed_examples_runner.py``: blocks in order, one namespace,
top-level ``await`` run as a coroutine), on a machine as a new user has it: ``HOME`` and ``VIBEML_HOME`` in a
temp dir, no OS keyring (``PYTHON_KEYRING_BACKEND=keyring.backends.fail.Keyring``), no passphrase, the hub
offline (``HF_HUB_OFFLINE=1``) and every HTTP(S) request sent to a closed local port (proxy variables), so
nothing leaves the machine. A block passes when it completes; a block that needs the hub or the network, or
calls with a ``...`` placeholder, may instead stop at a typed :class:`~vibeml.exceptions.VibeMLError` — never
a ``TypeError``, ``AttributeError`` or ``NameError``.

The SDK overview imports the official client's name (``from vastai import VastAI``); the subprocess maps that
module to VibeML's mirror, :class:`vibeml.vast.VastAI` (a one-line ``vastai`` package on its path), which is
what the overview's examples are checked against. Blocks that need SDK surface the mirror lacks are
``xfail(strict=True)`` naming what is missing, so they turn into failures the day it is added.
"""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import vibeml
from vibeml import exceptions

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"
RUNNER = Path(__file__).with_name("seed_examples_runner.py")
API_DOC = "vibeml_api_reference.md"
VAST_DOC = "vastai_sdk_overview.md"
DOCS = (API_DOC, VAST_DOC)
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, so a request fails at once

if not SEEDS.is_dir():
    pytest.skip(f"the seed documents are not here ({SEEDS} is absent)", allow_module_level=True)

from tests.seed_examples_runner import extract_blocks  # noqa: E402 - after the skip: it reads no seeds


class MissingVastSurface(AssertionError):
    """A block failed because :class:`vibeml.vast.VastAI` lacks the SDK surface it calls."""


@dataclass(frozen=True)
class Expect:
    """How one block (found by a snippet of its source) must end."""

    snippet: str
    completes: bool  # True: must complete; False: may also stop at a typed VibeMLError
    why: str = ""
    missing_vast: str | None = None  # the VastAI surface the block needs and the mirror lacks


EXPECT: dict[str, list[Expect]] = {
    API_DOC: [
        Expect('workflow="unsloth",\n    max_cost=15.0', completes=True),
        Expect(
            'result = await launch_training(\n    model="meta-llama/Llama-3.2-1B"',
            completes=False,
            why="the hub is offline: a typed error now, or a job that ends with one (checked below)",
        ),
        Expect("launch_training(...)", completes=False, why="`...` placeholder"),
        Expect("estimate = CostEstimate(", completes=True),
        Expect("ModelValidator()", completes=False, why="needs the hub, which is offline"),
        Expect("manager = CredentialManager()", completes=True),
        Expect("estimator = CostEstimator()", completes=True),
        Expect("generator = ScriptGenerator()", completes=True),
    ],
    VAST_DOC: [
        Expect("offers = client.search_offers(limit=10)", completes=False, why="needs the network"),
        Expect("client.show_instance(id=99999)", completes=True, why="its `except Exception` prints the error"),
        Expect(
            "result = client.create_instance(...)",
            completes=False,
            why="`...` placeholder: the offer id is checked before anything is sent (a typed error)",
        ),
    ],
}


def _blocks(doc: str) -> list[tuple[int, str]]:
    return extract_blocks((SEEDS / doc).read_text(encoding="utf-8"))


def _expectation(doc: str, source: str) -> Expect:
    found = [e for e in EXPECT[doc] if e.snippet in source]
    assert len(found) <= 1, f"several expectations match one block: {found}"
    return found[0] if found else Expect("", completes=False, why="a block this test does not know yet")


def _params() -> list[Any]:
    params = []
    for doc in DOCS:
        for index, (line, source) in enumerate(_blocks(doc)):
            exp = _expectation(doc, source)
            marks = []
            if exp.missing_vast:
                marks.append(pytest.mark.xfail(raises=MissingVastSurface, strict=True, reason=exp.missing_vast))
            params.append(pytest.param(doc, index, id=f"{doc.split('_')[0]}-block{index}-line{line}", marks=marks))
    return params


# ----------------------------------------------------------------------------------------- the runs


@dataclass
class Run:
    doc: str
    results: list[dict[str, Any]]
    stderr: str
    home: Path
    vibeml_home: Path
    cwd: Path
    env: dict[str, str]


def _env(root: Path) -> dict[str, str]:
    shim = root / "shim" / "vastai"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        '"""The official client\'s name for VibeML\'s mirror."""\nfrom vibeml.vast import VastAI\n'
    )
    src = Path(vibeml.__file__).resolve().parents[1]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(root / "home"),
        "VIBEML_HOME": str(root / "vibeml-home"),
        "XDG_CONFIG_HOME": str(root / "home" / ".config"),
        "HF_HOME": str(root / "home" / ".cache" / "huggingface"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONPATH": os.pathsep.join([str(src), str(root / "shim")]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = DEAD_PROXY
    for folder in ("home", "vibeml-home", "cwd"):
        (root / folder).mkdir()
    return env


_RUNS: dict[str, Run] = {}  # each document runs once per session


def _run(doc: str, factory: pytest.TempPathFactory) -> Run:
    if doc in _RUNS:
        return _RUNS[doc]
    root = factory.mktemp(doc.split("_")[0])
    env = _env(root)
    out = root / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(SEEDS / doc), str(out)],
        cwd=root / "cwd",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Run(doc, json.loads(out.read_text()), proc.stderr, root / "home", root / "vibeml-home", root / "cwd", env)
    _RUNS[doc] = run
    return run


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(API_DOC, tmp_path_factory)


# ----------------------------------------------------------------------------------------- the tests


def test_every_python_block_is_found() -> None:
    for doc in DOCS:
        text = (SEEDS / doc).read_text(encoding="utf-8")
        fences = len(re.findall(r"^[ \t]*```python[ \t]*$", text, re.M))
        assert fences > 0 and len(_blocks(doc)) == fences, doc
        for _line, source in _blocks(doc):  # each one is Python as written (top-level await allowed)
            compile(source, doc, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    # Every expectation still names a block (a reworded document must not silently drop a check).
    for doc, expectations in EXPECT.items():
        sources = [s for _l, s in _blocks(doc)]
        for exp in expectations:
            assert sum(exp.snippet in s for s in sources) == 1, (doc, exp.snippet)


@pytest.mark.parametrize(("doc", "index"), _params())
def test_block_runs_as_written(doc: str, index: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = _run(doc, tmp_path_factory)
    result = run.results[index]
    assert result["index"] == index
    exp = _expectation(doc, result["source"])
    where = f"{doc} line {result['line']} (block line {result['where']})"
    if result["completed"]:
        return
    typed = "vibeml.exceptions.VibeMLError" in result["mro"]
    detail = f"{where}: {result['error']}: {result['message']}"
    if exp.missing_vast and result["error"] in ("TypeError", "AttributeError"):
        name = exp.missing_vast.split()[0].split(".")[-1]
        if name in (result["message"] or ""):
            raise MissingVastSurface(detail)
    assert not exp.completes, f"must complete, stopped at {detail}"
    assert typed, f"may stop only at a typed VibeMLError, got {detail}"


def test_api_reference_results(api_run: Run) -> None:
    """What the reference's blocks promise, checked on what they bound and left behind."""
    bound: dict[str, str] = {}
    for r in api_run.results:
        bound.update(r["bound"])
    assert bound["request"] == "TrainingRequest"
    assert bound["estimate"] == "CostEstimate"
    assert bound["cost"] == "CostEstimate"
    assert bound["api_key"] == "str"  # get_credential returns the plain string, as the reference uses it
    assert bound["script"] == "str"
    printed = "".join(r["stdout"] for r in api_run.results)
    assert re.search(r"Expected: \$\d+\.\d\d\nRange: \$\d+\.\d\d - \$\d+\.\d\d", printed)
    ast.parse((api_run.cwd / "train.py").read_text(encoding="utf-8"))  # the generated script, written as shown


def test_api_reference_credentials_need_no_keyring_or_passphrase(api_run: Run) -> None:
    """The store lands under VIBEML_HOME as a 0600 key file in a 0700 folder, said once on stderr; the value
    reads back in another process; HOME gets nothing of it."""
    from vibeml.config.credentials import CredentialManager

    config = api_run.vibeml_home / "config"
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    for name in ("credentials.key", "credentials.enc"):
        assert stat.S_IMODE((config / name).stat().st_mode) == 0o600
    assert b"your-key" not in (config / "credentials.enc").read_bytes()
    assert CredentialManager(config, backend="keyfile").get_credential("nebius", "api_key") == "your-key"
    assert api_run.stderr.count("no OS keyring and no passphrase") == 1
    assert "VIBEML_PASSPHRASE" in api_run.stderr and "VIBEML_CREDENTIAL_BACKEND" in api_run.stderr
    assert "your-key" not in api_run.stderr + "".join(r["stdout"] for r in api_run.results)
    assert not [p for p in api_run.home.rglob("*") if "credentials" in p.name]


def test_api_reference_launch_ends_as_a_typed_error(api_run: Run) -> None:
    """``launch_training`` with the hub offline: a typed error at once, or a job that ends failed with one."""
    from vibeml import Settings, VibeML
    from vibeml.models import JobStatus

    [launch] = [r for r in api_run.results if "result = await launch_training(\n" in r["source"]]
    if not launch["completed"]:
        assert "vibeml.exceptions.VibeMLError" in launch["mro"], launch
        return
    service = VibeML(Settings.from_env({k: api_run.env[k] for k in ("VIBEML_HOME", "HF_HUB_OFFLINE", "HF_HOME")}))
    [job] = service.list_jobs()
    deadline = time.monotonic() + 120
    while not job.status.is_terminal and time.monotonic() < deadline:
        time.sleep(0.5)
        job = service.get_status(job.job_id)
    if not job.status.is_terminal:
        service.stop(job.job_id, grace_seconds=5)
        pytest.fail(f"the launched job did not end: {job.status}")
    assert job.status is JobStatus.FAILED and job.error
    events = [json.loads(line) for line in (service.job_dir(job.job_id) / "events.jsonl").read_text().splitlines()]
    [error] = [e for e in events if e.get("event") == "error"]
    error_type = getattr(exceptions, error["error_type"], None)
    assert isinstance(error_type, type) and issubclass(error_type, exceptions.VibeMLError), error
    assert error["recovery_suggestion"]


def test_vast_overview_calls_only_methods_the_mirror_has() -> None:
    """Every method the overview calls on a client exists on VibeML's VastAI (even those the blocks never
    reach, such as ``create_instance`` after a failed search)."""
    from vibeml.vast import VastAI

    called = set()
    for _line, source in _blocks(VAST_DOC):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "client":
                    called.add(node.func.attr)
    assert called >= {"search_offers", "create_instance", "show_instances", "show_instance"}
    assert sorted(m for m in called if not callable(getattr(VastAI, m, None))) == []
