"""The one remote supervisor (``python -m vibeml.remote``): its typed payload, its launcher, and its budget
clock run for real as a process with a stand-in trainer (no provider: the SkyPilot flavour destroys nothing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import vibeml
from vibeml.backends.skypilot.task import RUN_SCRIPT
from vibeml.backends.vast.remote import ONSTART
from vibeml.remote.payload import PAYLOAD_ENV, RemoteBudget, RemoteJob, decode_payload, encode_payload
from vibeml.remote.supervisor import PROVIDERS, main, parse_runner_lines, provider_class
from vibeml.trainer.events import ECHO_PREFIX, StoppedEvent, parse_event_lines

SRC = Path(vibeml.__file__).resolve().parents[1]

#: A stand-in trainer: announces itself, then runs until SIGTERM (a checkpoint-and-stop) or ``SECONDS``.
TRAINER = """\
import json, os, pathlib, signal, sys, time
cfg = json.loads(pathlib.Path(sys.argv[sys.argv.index("--config") + 1]).read_text())
out = pathlib.Path(os.environ["MARKS"])
def stop(*_):
    out.write_text(json.dumps({"got": "SIGTERM", "max_runtime_seconds": cfg.get("max_runtime_seconds")}))
    print('@@vibeml-event {"event": "stopped", "time": 1.0, "reason": "signal", "step": 3}', flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("trainer up", flush=True)
end = time.time() + float(os.environ.get("SECONDS_TO_RUN", "30"))
while time.time() < end:
    time.sleep(0.05)
out.write_text(json.dumps({"got": "nothing", "max_runtime_seconds": cfg.get("max_runtime_seconds")}))
print('@@vibeml-event {"event": "done", "time": 2.0, "step": 9}', flush=True)
"""


def _job(**budget: Any) -> RemoteJob:
    return RemoteJob(
        provider="skypilot",
        module="stand_in_trainer",
        config={"events_path": "events.jsonl", "max_runtime_seconds": 10_000},
        relative_fields=("events_path",),
        budget=RemoteBudget(**budget),
    )


def _start(tmp_path: Path, job: RemoteJob, **env: str) -> tuple[subprocess.Popen[str], Path]:
    mods = tmp_path / "mods"
    mods.mkdir(exist_ok=True)
    (mods / "stand_in_trainer.py").write_text(TRAINER)
    marks = tmp_path / "marks.json"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("VIBEML_", "SKYPILOT_"))}
    full.update(
        {
            PAYLOAD_ENV: encode_payload(job),
            "VIBEML_REMOTE_DIR": str(tmp_path / "job"),
            "PYTHONPATH": f"{mods}{os.pathsep}{SRC}",
            "MARKS": str(marks),
            **env,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "vibeml.remote"], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, marks


def test_one_program_for_every_provider() -> None:
    assert ONSTART.endswith('exec "$PY" -m vibeml.remote')
    assert RUN_SCRIPT.rstrip().endswith("-m vibeml.remote")
    for provider in PROVIDERS:
        assert provider_class(provider).__module__ == PROVIDERS[provider]


def test_the_payload_is_typed_and_round_trips() -> None:
    job = _job(max_runtime_seconds=60, max_cost_usd=1.5)
    for text in (encode_payload(job), encode_payload(job, compress=False)):
        assert decode_payload(text) == job
    assert encode_payload(job).startswith("v2:")
    for bad in ("", "v1:abc", "v2:not-base64!", "{not json", '{"provider": "aws"}', '{"provider": "vast", "x": 1}'):
        with pytest.raises(ValueError):
            decode_payload(bad)
    with pytest.raises(ValueError, match="not valid: env") as info:
        decode_payload(json.dumps({"provider": "vast", "env": {"BAD NAME; rm -rf ~": "secret-value"}}))
    assert "secret-value" not in str(info.value)  # the message names the field, never a value
    for bad_budget in ({"max_runtime_seconds": -1}, {"max_runtime_seconds": float("inf")}, {"max_cost_usd": 0}):
        with pytest.raises(ValueError):
            RemoteBudget(**bad_budget)


def test_a_bad_payload_gives_up_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main({PAYLOAD_ENV: "garbage"}) == 2
    [record] = parse_runner_lines(capsys.readouterr().out.splitlines())
    assert record["phase"] == "gave-up" and "bad job payload" in record["reason"]


def test_the_supervisor_uses_the_one_launcher(tmp_path: Path) -> None:
    from vibeml.backends.vast.remote import VastSupervisor
    from vibeml.launch import Rendezvous, trainer_command

    config = tmp_path / "config.json"
    for gpus in (1, 4):
        job = RemoteJob(provider="vast", gpus_per_node=gpus)
        argv = VastSupervisor(job, {"VIBEML_REMOTE_DIR": str(tmp_path)}).trainer_argv(config)
        assert argv == trainer_command(sys.executable, config, Rendezvous(nproc_per_node=gpus), "vibeml.trainer")
    assert argv[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=4" in argv


def test_the_budget_stops_the_trainer_gracefully(tmp_path: Path) -> None:
    job = _job(max_runtime_seconds=4, stop_grace_seconds=1, reserve_seconds=0)
    proc, marks = _start(tmp_path, job)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    mark = json.loads(marks.read_text())
    assert mark["got"] == "SIGTERM"  # stopped at the budget, not left to run its 30 s
    assert mark["max_runtime_seconds"] <= 4 - 2 * 1  # and told to stop itself two graces before the end
    records = parse_runner_lines(out.splitlines())
    stopping = [r for r in records if r["phase"] == "stopping"]
    assert stopping and stopping[0]["reason"] == "budget" and stopping[0]["by"] == "time"
    assert records[-1]["phase"] == "finished" and records[-1]["why"] == "budget"
    assert records[-1]["outcome"] == "stopped"
    state = json.loads((tmp_path / "job" / "runner_state.json").read_text())
    assert state["phase"] == "finished" and 3.0 <= state["used_seconds"] <= 4.5


def test_a_platform_sigterm_is_forwarded_and_the_run_resumes_later(tmp_path: Path) -> None:
    job = _job(max_runtime_seconds=600, stop_grace_seconds=5)
    proc, marks = _start(tmp_path, job)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("trainer up"):
            break
    proc.send_signal(signal.SIGTERM)  # preemption / cancel
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert json.loads(marks.read_text())["got"] == "SIGTERM"  # the trainer checkpointed
    assert parse_runner_lines(out.splitlines())[-1]["phase"] == "interrupted"
    state = json.loads((tmp_path / "job" / "runner_state.json").read_text())
    assert state["phase"] == "training" and state["used_seconds"] > 0  # not finished: the next start resumes
    # The next start on this disk runs the trainer again, with the time already used still counted.
    marks.unlink()
    again, marks = _start(tmp_path, job, SECONDS_TO_RUN="0.2")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, out
    assert json.loads(marks.read_text())["got"] == "nothing"
    assert json.loads((tmp_path / "job" / "runner_state.json").read_text())["runs"] == 2


def test_a_stop_request_and_a_spent_budget(tmp_path: Path) -> None:
    job = _job(max_runtime_seconds=600, stop_grace_seconds=5)
    proc, marks = _start(tmp_path, job)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("trainer up"):
            break
    (tmp_path / "job" / "STOP").write_text("")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(marks.read_text())["got"] == "SIGTERM"
    assert parse_runner_lines(out.splitlines())[-1]["why"] == "stop-requested"
    # A recovered run whose budget is spent never starts the trainer: the trainer contract's stopped event.
    spent = tmp_path / "spent"
    (spent / "job").mkdir(parents=True)
    (spent / "job" / "runner_state.json").write_text(json.dumps({"used_seconds": 598.0, "boots": ["x"]}))
    proc, marks = _start(spent, job)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and not marks.exists()
    [event] = parse_event_lines([line for line in out.splitlines() if line.startswith(ECHO_PREFIX)])
    assert isinstance(event, StoppedEvent) and event.reason == "max_runtime"
