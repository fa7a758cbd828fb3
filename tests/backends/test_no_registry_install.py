"""No default remote program installs VibeML by name from a registry: PyPI's ``vibeml`` is another project.

Every program VibeML sends a rented machine is rendered here — the Vast.ai onstart (run for real, in bash,
through a real launch against the fake Vast.ai), the runner's setup steps of every workflow, the SkyPilot
task for on-demand and managed (spot) jobs, and ``vibeml sky export``'s YAML (whose setup script is run
for real too) — and each install command is read as pip/uv would read it: its requirement arguments and
``-r`` files are parsed as requirements, and what gets installed must be the shipped wheel of this very
VibeML (byte for byte), never ``vibeml``/``vibeml[...]``/``vibeml==...`` from an index.

The only stand-ins are two recorders on the machine side: an ``uv`` (or the machine's Python, for the pip
branch) that writes down its arguments and the files they name instead of installing into this venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from typer.testing import CliRunner

from tests.backends.test_vast_backend_support import SECRET_KEY, WorkdirTransport, assert_nothing_billing, options
from vibeml.backends.base import LaunchChoice
from vibeml.backends.skypilot.task import SETUP_SCRIPT, export_task_yaml
from vibeml.backends.vast import VastBackend
from vibeml.backends.vast.remote import ONSTART
from vibeml.models import TrainingRequest
from vibeml.remote_build import ship_wheel
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast
from vibeml.workflows.registry import list_workflows, render_program

_VALUE_OPTIONS = {
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
    "--python": None,
    "-p": None,
    "-i": None,
    "--index-url": None,
    "--extra-index-url": None,
    "-f": None,
    "--find-links": None,
}


# ------------------------------------------------------------------------------------------ reading installs


def names_vibeml(requirement: str) -> bool:
    """Whether a requirement line/argument asks an index for VibeML by name (``vibeml``, ``vibeml[train]``,
    ``vibeml==0.1.0``, ``vibeml >= 0`` …). A local wheel or directory path is not a name."""
    text = requirement.split(" #", 1)[0].strip()
    if not text or text.startswith("#"):
        return False
    head = text.split(";")[0].split("[")[0]
    if text.endswith(".whl") or ("/" in head and not text.lower().startswith("vibeml")):
        return False  # a path or URL (a wheel file of our own, a git+https:// build)
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return False
    return req.name.lower().replace("_", "-") == "vibeml" and req.url is None


def install_calls(script: str) -> list[list[str]]:
    """The argument lists after every ``pip install`` in a shell script (static: tokens as the shell sees
    them, commands split at ``;``, ``&&``, ``||``, ``|`` and newlines)."""
    lex = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|()")
    lex.whitespace_split = True
    calls: list[list[str]] = []
    command: list[str] = []
    for token in [*lex, ";"]:
        if token and set(token) <= set(";&|()"):
            for i in range(len(command) - 1):
                if command[i] == "pip" and command[i + 1] == "install":
                    calls.append(command[i + 2 :])
            command = []
        else:
            command.append(token)
    return calls


def requirement_args(args: list[str], cwd: Path | None = None) -> tuple[list[str], list[str]]:
    """(positional requirement arguments, lines of the ``-r``/``-c`` files that exist under ``cwd``)."""
    positional: list[str] = []
    lines: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = True
            if _VALUE_OPTIONS[arg] and cwd is not None and i + 1 < len(args):
                path = cwd / args[i + 1]
                if path.is_file():
                    lines += path.read_text().splitlines()
            continue
        if arg.startswith("-"):
            continue
        positional.append(arg)
    return positional, lines


def assert_no_registry_vibeml(args: list[str], cwd: Path | None = None) -> None:
    positional, lines = requirement_args(args, cwd)
    for item in [*positional, *lines]:
        assert not names_vibeml(item), f"installs VibeML by name from a registry: {item!r} in {args}"


def assert_static_script_clean(script: str) -> None:
    for call in install_calls(script):
        literal = [a for a in call if "$" not in a]
        assert_no_registry_vibeml(literal)
    for bad in ("vibeml[", "vibeml==", "pip install vibeml"):
        assert bad not in script.lower()


def test_the_reader_catches_every_spelling_of_a_named_install(tmp_path: Path) -> None:
    """The checks above would see today's install (``vibeml[train]==0.1.0``) and its variants."""
    for named in ("vibeml", "vibeml[train]==0.1.0", "VibeML==0.1.0", "vibeml >= 0.1", "vibeml ; python_version>'3'"):
        assert names_vibeml(named), named
    for fine in (
        "./vibeml-pkg/vibeml-0.1.0-py3-none-any.whl",
        "git+https://x/vibeml.git",
        "vibeml-fork==1.2",
        "peft==1",
    ):
        assert not names_vibeml(fine), fine
    old = '"$PY" -m pip install -q "vibeml[train]==0.1.0" && pip install --quiet vibeml'
    assert install_calls(old) == [["-q", "vibeml[train]==0.1.0"], ["--quiet", "vibeml"]]
    with pytest.raises(AssertionError):
        assert_static_script_clean(old)
    (tmp_path / "r.txt").write_text("peft==0.17.0\nvibeml[train]==0.1.0\n")
    with pytest.raises(AssertionError):
        assert_no_registry_vibeml(["-q", "-r", "r.txt", "x.whl"], tmp_path)


# ------------------------------------------------------------------------------------------ recorders


def _recorder(path: Path, log: Path, exit_code: int = 0) -> str:
    """An executable that appends its argv, cwd and the sha256 of every file argument to ``log``."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import hashlib, json, os, sys\n"
        "files = {a: hashlib.sha256(open(a, 'rb').read()).hexdigest() for a in sys.argv[1:] if os.path.isfile(a)}\n"
        "texts = {a: open(a).read() for a in sys.argv[1:] if os.path.isfile(a) and a.endswith('.txt')}\n"
        "marker = os.path.exists(os.path.join(os.environ.get('VIBEML_REMOTE_DIR', 'vibeml-job'), 'inputs/.complete'))\n"
        f"with open({str(log)!r}, 'a') as fh:\n"
        "    fh.write(json.dumps({'tool': os.path.basename(sys.argv[0]), 'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "        'files': files, 'texts': texts, 'marker': marker,\n"
        "        'env': {k: v for k, v in os.environ.items() if k.endswith('BREAK_SYSTEM_PACKAGES')}}) + '\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    path.chmod(0o755)
    return str(path)


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ Vast.ai


def _program(tmp_path: Path, workflow: str = "trl-lora") -> Any:
    request = TrainingRequest(model="org/model", dataset="org/data", max_steps=5, workflow=workflow)
    job = tmp_path / "job"
    return render_program(
        request, "vml-ship", output_dir=str(job / "o"), checkpoint_dir=str(job / "c"), events_path=str(job / "e")
    )


_CHOICE = LaunchChoice(
    gpu_type="RTX 3090", hourly_rate=0.2, max_cost=1.0, estimated_hours=0.01, required_memory_gib=1.0, disk_gb=10.0
)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_the_vast_onstart_installs_the_uploaded_wheel_of_this_vibeml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str
) -> None:
    bin_dir = tmp_path / "machine-bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    if installer == "uv":
        _recorder(bin_dir / "uv", log)
    python = _recorder(bin_dir / "machine-python", log)
    path = os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])  # no uv of this machine unless recorded
    fake = FakeVast(
        api_key=SECRET_KEY,
        created_delay=0.01,
        loading_delay=0.02,
        logs_delay=0.01,
        kill_grace=1.0,
        tick_interval=0.01,
        workdir_root=tmp_path / "fake-vast",
        base_env={"PATH": path, "HOME": str(tmp_path / "machine-home")},
    ).start()
    try:
        monkeypatch.setenv("VIBEML_VAST_URL", fake.url)
        monkeypatch.setenv("VAST_API_KEY", SECRET_KEY)
        monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
        monkeypatch.delenv("VIBEML_REMOTE_INSTALL", raising=False)  # the default: ship the running build
        settings = Settings.from_env()
        backend = VastBackend(settings, options=options(remote_python=python), transport=WorkdirTransport(fake))
        program = _program(tmp_path)
        handle = backend.launch(program, "vml-ship", tmp_path / "job", _CHOICE)
        iid = int(handle.data.instance_id or 0)
        deadline = time.monotonic() + 30
        while not any("vibeml.remote" in r["argv"] for r in _records(log)):
            assert time.monotonic() < deadline, _records(log)
            time.sleep(0.05)
        calls = _records(log)
        for call in calls:  # whatever the machine was told to install, read as pip reads it
            assert_no_registry_vibeml(call["argv"], Path(call["cwd"]))
        inst = fake.instance(iid)
        assert inst["onstart"] == ONSTART
        assert_static_script_clean(ONSTART)
        env = dict(inst["extra_env"])
        for value in env.values():
            assert not names_vibeml(value)
        wheel = ship_wheel(settings.cache_dir)
        assert env.get("VIBEML_WHEEL") == f"inputs/{wheel.filename}" and env["VIBEML_INSTALL"] == ""
        workdir = fake.workdir(iid)
        # The upload: the wheel of this VibeML, byte for byte, beside the pinned requirements.
        uploaded = workdir / "vibeml-job" / "inputs" / wheel.filename
        assert _sha(uploaded) == _sha(wheel.path)
        pins = (workdir / "vibeml-job" / "inputs" / "requirements.txt").read_text().splitlines()
        assert pins == list(program.requirements) and pins and not any(names_vibeml(p) for p in pins)

        install, run = calls[0], calls[-1]
        prefix = ["pip", "install", "-q", "--python", python] if installer == "uv" else ["-m", "pip", "install", "-q"]
        assert install["tool"] == ("uv" if installer == "uv" else "machine-python")
        rel_wheel = f"vibeml-job/inputs/{wheel.filename}"
        assert install["argv"] == [*prefix, "-r", "vibeml-job/inputs/requirements.txt", rel_wheel]
        assert install["marker"], "the install ran before the inputs were complete"
        assert install["files"][rel_wheel] == _sha(wheel.path)  # what gets installed is the shipped wheel
        assert_no_registry_vibeml(install["argv"], Path(install["cwd"]))
        # Then, and only then, the runner from what was installed.
        assert run["tool"] == "machine-python" and run["argv"] == ["-m", "vibeml.remote"]
        assert len(calls) == 2
    finally:
        for iid in fake.instance_ids():
            VastBackend(Settings.from_env(), options=options(), transport=WorkdirTransport(fake)).destroy(iid)
        assert_nothing_billing(fake)
        fake.close()


@pytest.mark.parametrize("workflow", [w.name for w in list_workflows()])
def test_no_workflow_setup_step_or_requirement_names_vibeml(tmp_path: Path, workflow: str) -> None:
    program = _program(tmp_path, workflow)
    assert program.requirements and not any(names_vibeml(r) for r in program.requirements)
    for backend in ("vast", "skypilot", "local"):
        for command in program.setup_for(backend):
            assert_static_script_clean(command)
    payload = VastBackend._payload(program, [], "vast")  # what the Vast runner runs and installs
    for command in payload.setup:
        assert_static_script_clean(command)
    assert not any(names_vibeml(r) for r in payload.requirements)


# ------------------------------------------------------------------------------------------ SkyPilot


def _run_setup(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Run the task's real setup script on a 'node' whose file mounts are in place; returns the install."""
    node = tmp_path / "node-home"
    node.mkdir()
    for remote, local in (config.get("file_mounts") or {}).items():
        if isinstance(local, str) and remote.startswith("~/"):
            dst = node / remote[2:]
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(Path(local).read_bytes())
    bin_dir = tmp_path / "node-bin"
    bin_dir.mkdir()
    log = tmp_path / "node-calls.jsonl"
    _recorder(bin_dir / "uv", log)
    python = _recorder(bin_dir / "node-python", log)
    env = {k: str(v) for k, v in (config.get("envs") or {}).items()}
    env.update(HOME=str(node), PATH=os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]), VIBEML_REMOTE_PYTHON=python)
    proc = subprocess.run(
        ["bash", "-c", config["setup"]], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    calls = _records(log)
    assert [c["tool"] for c in calls] == ["uv", "node-python"], calls
    assert calls[1]["argv"] == ["-c", "import vibeml.trainer"]
    return {**calls[0], "python": python, "node": node}


def _check_sky_yaml(text: str, tmp_path: Path, settings: Settings) -> None:
    config = yaml.safe_load(text)
    assert config["setup"] == SETUP_SCRIPT
    assert_static_script_clean(config["setup"])
    assert_static_script_clean(config["run"])
    wheel = ship_wheel(settings.cache_dir)
    envs = config["envs"]
    assert envs["VIBEML_INSTALL"] == f"./vibeml-pkg/{wheel.filename}"
    assert config["file_mounts"][f"~/vibeml-pkg/{wheel.filename}"] == str(wheel.path)
    for key, value in envs.items():
        if key != "VIBEML_JOB":  # the payload: the user's config is data in it
            assert not any(names_vibeml(line) for line in str(value).splitlines()), key
    install = _run_setup(tmp_path, config)
    assert install["argv"] == [
        "pip",
        "install",
        "--quiet",
        "--python",
        install["python"],
        "-r",
        "vibeml-job/requirements.txt",
        f"./vibeml-pkg/{wheel.filename}",
    ]
    assert install["files"][f"./vibeml-pkg/{wheel.filename}"] == _sha(wheel.path)
    assert install["texts"]["vibeml-job/requirements.txt"].split() == envs["VIBEML_REQUIREMENTS"].split()
    assert_no_registry_vibeml(install["argv"], Path(install["cwd"]))


@pytest.mark.parametrize("spot", [False, True], ids=["on-demand", "managed-spot"])
def test_the_skypilot_task_mounts_and_installs_the_shipped_wheel(
    sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spot: bool
) -> None:
    monkeypatch.delenv("VIBEML_REMOTE_INSTALL", raising=False)
    settings = Settings.from_env()
    choice = LaunchChoice(gpu_type="L4", cloud="aws", hourly_rate=0.8, max_cost=4.0, disk_gb=60, use_spot=spot)
    request = TrainingRequest(model="Qwen/Qwen2.5-0.5B", dataset="tatsu-lab/alpaca", max_steps=5, backend="skypilot")
    text = export_task_yaml(request, settings=settings, choice=choice, job_id="vml-sky")
    assert "vibeml[" not in text
    _check_sky_yaml(text, tmp_path, settings)


def test_vibeml_sky_export_ships_the_wheel(sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vibeml.cli.main import app

    monkeypatch.delenv("VIBEML_REMOTE_INSTALL", raising=False)
    args = ["sky", "export", "-m", "Qwen/Qwen2.5-0.5B", "-d", "tatsu-lab/alpaca", "--gpu", "L4", "--max-cost", "5"]
    result = CliRunner().invoke(app, [*args, "--max-steps", "5", "--spot"])
    assert result.exit_code == 0, result.stdout + result.stderr
    _check_sky_yaml(result.stdout, tmp_path, Settings.from_env())


def test_a_users_own_build_is_still_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vibeml.backends.skypilot.task import SkyOptions, build_task_spec

    own = "git+https://example.org/me/vibeml-fork.git@v1"
    settings = Settings.from_env({"VIBEML_REMOTE_INSTALL": own, "VIBEML_HOME": str(tmp_path / "h")})
    spec = build_task_spec(_program(tmp_path), "vml-own", None, SkyOptions.from_settings(settings))
    assert spec.envs["VIBEML_INSTALL"] == own and not spec.file_mounts
    backend = VastBackend(settings, options=options())
    assert backend._shipped() is None


def _onstart(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.jsonl"
    _recorder(bin_dir / "uv", log)
    full = {
        "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path / "home"),
        "VIBEML_REMOTE_PYTHON": _recorder(bin_dir / "machine-python", log),
        **env,
    }
    proc = subprocess.run(["bash", "-c", ONSTART], env=full, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    return proc, _records(log)


def test_the_onstart_waits_a_bounded_time_for_the_wheel_then_gives_up_and_destroys(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc, calls = _onstart(
        tmp_path, {"VIBEML_WHEEL": "inputs/vibeml-0.1.0-py3-none-any.whl", "VIBEML_INPUT_WAIT": "1.0"}
    )
    assert 0.9 < time.monotonic() - t0 < 10 and proc.returncode == 1
    assert '"reason": "the inputs were never uploaded"' in proc.stdout
    assert [c["tool"] for c in calls] == ["machine-python"] and calls[0]["argv"][0] == "-c"  # the DELETE, no install
    assert "DELETE" in calls[0]["argv"][1]


def test_the_onstart_finds_a_home_relative_job_dir(tmp_path: Path) -> None:
    inputs = tmp_path / "home" / "job" / "inputs"
    inputs.mkdir(parents=True)
    (inputs / "w.whl").write_bytes(b"PK")
    (inputs / "requirements.txt").write_text("peft==0.17.0\n")
    (inputs / ".complete").write_text("ok\n")
    proc, calls = _onstart(tmp_path, {"VIBEML_WHEEL": "inputs/w.whl", "VIBEML_REMOTE_DIR": "~/job"})
    assert proc.returncode == 0, proc.stderr
    home = tmp_path / "home"
    assert calls[0]["argv"][-3:] == ["-r", f"{home}/job/inputs/requirements.txt", f"{home}/job/inputs/w.whl"]
    assert calls[1]["argv"] == ["-m", "vibeml.remote"]
    # A rented container is this job's alone: an image whose system Python is "externally managed" (PEP 668,
    # Debian/Ubuntu images) must not refuse the install after the GPU is paid for. Both installers read these.
    assert calls[0]["env"] == {"PIP_BREAK_SYSTEM_PACKAGES": "1", "UV_BREAK_SYSTEM_PACKAGES": "1"}
