"""End to end through the real `vibeml` command: real processes, real SQLite, real training on CPU."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vibeml.trainer.events import read_events

pytestmark = [pytest.mark.needs_train, pytest.mark.slow]

VIBEML = [sys.executable, "-m", "vibeml"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "120"
    return env


def cli(*args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*VIBEML, *args], capture_output=True, text=True, timeout=timeout, env=_env())
    if check and res.returncode != 0:
        raise AssertionError(f"vibeml {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def wait_for(pred: Any, timeout: float = 120, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


@pytest.fixture
def demo_home(vibeml_env: Path, demo_assets_dir: Path) -> Path:
    """A fresh VIBEML_HOME with the demo assets (built once per session) already in place."""
    import shutil

    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    return vibeml_env


def test_demo_trains_and_the_adapter_answers(demo_home: Path) -> None:
    """The `make demo` path, whole: the loss falls by ≥30% and the adapter loads and answers."""
    res = cli("launch", "--demo", "--follow", timeout=600)
    assert "VibeML job summary" in res.stdout and "completed" in res.stdout
    assert "Loss:" in res.stdout and "Use it:" in res.stdout and "before:" in res.stdout
    [job] = cli_json("jobs")
    assert job["status"] == "completed"
    p = job["progress"]
    assert p["loss"] <= 0.7 * p["first_loss"], p  # the demo's promise: the loss falls by ≥ 30%
    # ... and it visibly learns: exact match on ≥ 50 held-out prompts, printed before → after
    before, after = p["score_before"], p["score_after"]
    assert before["total"] == after["total"] >= 50, p
    assert after["exact_match"] >= 0.6 and after["correct"] > before["correct"], p
    line = re.search(r"Held-out exact match: (\d+)% \((\d+)/(\d+)\) → (\d+)% \((\d+)/(\d+)\)", res.stdout)
    assert line, res.stdout
    assert (int(line[5]), int(line[6])) == (after["correct"], after["total"]) and int(line[4]) >= 60
    curves = re.search(r"Curves: (\S+\.png)", res.stdout)
    assert curves and Path(curves[1]).read_bytes().startswith(b"\x89PNG"), res.stdout

    out = Path(job["output_dir"])
    assert (out / "adapter_config.json").exists()
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "How many words are in: moon cake frog river?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tok.decode(gen[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answer.strip() == "4", answer  # a held-out prompt, answered right by the adapter reloaded


def test_two_launches_at_once_keep_the_store_whole(demo_home: Path) -> None:
    procs = [
        subprocess.Popen(
            [*VIBEML, "launch", "--demo", "--max-steps", "8", "--follow", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    jobs = cli_json("jobs")
    assert len(jobs) == 2 and {j["status"] for j in jobs} == {"completed"}
    assert len({j["job_id"] for j in jobs}) == 2
    db = demo_home / "vibeml.db"
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _events(home: Path, kinds: set[str]) -> str | None:
    """The id of a job whose event stream has one of ``kinds`` (read from its file: polling through the
    CLI would start a Python process every few hundred ms beside the trainer on a 2-core machine)."""
    for path in (home / "jobs").glob("*/events.jsonl"):
        if any(e.event in kinds for e in read_events(path)):  # a line being written is skipped
            return path.parent.name
    return None


def _running_job(home: Path) -> dict[str, Any]:
    job_id = wait_for(lambda: _events(home, {"step"}), every=0.2)
    job = cli_json("status", job_id)
    assert job["status"] == "running" and job["progress"]["step"] > 0, job
    return job  # type: ignore[no-any-return]


def test_stop_a_running_job_checkpoints_it(demo_home: Path) -> None:
    job = cli_json("launch", "--demo", "--max-steps", "2000", "--save-steps", "1000")
    _running_job(demo_home)
    stopped = cli_json("stop", job["job_id"], "--grace", "60")
    assert stopped["status"] == "stopped"
    assert stopped["progress"]["last_checkpoint"], stopped
    assert Path(stopped["progress"]["last_checkpoint"]).exists()
    again = cli_json("stop", job["job_id"])  # idempotent
    assert again["status"] == "stopped"
    text = cli("logs", job["job_id"]).stdout
    assert text.strip()


def test_killing_the_cli_loses_nothing(demo_home: Path) -> None:
    cli_proc = subprocess.Popen(
        [*VIBEML, "launch", "--demo", "--max-steps", "40", "--follow"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    job = _running_job(demo_home)
    cli_proc.send_signal(signal.SIGKILL)
    cli_proc.wait(10)
    status = cli_json("status", job["job_id"])
    assert status["status"] == "running"
    wait_for(lambda: _events(demo_home, {"done", "error"}), timeout=240, every=0.5)
    final = wait_for(
        lambda: (s := cli_json("status", job["job_id"]))["status"] in ("completed", "failed") and s,
        timeout=60,
        every=1.0,
    )
    assert final["status"] == "completed", final.get("error")


def test_corrupt_dataset_is_refused_before_anything_starts(demo_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "hi", "output": "ok"}\n{this is not json\n')
    model_dir = next((demo_home / "demo").rglob("config.json")).parent
    res = cli("launch", "--model", str(model_dir), "--dataset", str(bad), "--max-steps", "3", check=False)
    assert res.returncode == 3, res.stdout + res.stderr  # DatasetError
    assert "line 2 is not valid JSON" in res.stderr and "Traceback" not in res.stderr + res.stdout
    assert cli_json("jobs") == []


def test_corrupt_weights_fail_the_job_cleanly(demo_home: Path, tmp_path: Path) -> None:
    import shutil

    model_dir = tmp_path / "broken-model"
    shutil.copytree(next((demo_home / "demo").rglob("config.json")).parent, model_dir)
    (model_dir / "model.safetensors").write_bytes(b"\x00" * 64)
    data = next((demo_home / "demo").rglob("*.jsonl"))
    t0 = time.monotonic()
    res = cli(
        "launch",
        "--model",
        str(model_dir),
        "--dataset",
        str(data),
        "--max-steps",
        "3",
        "--follow",
        check=False,
        timeout=180,
    )
    assert res.returncode == 9, res.stdout + res.stderr
    assert time.monotonic() - t0 < 120
    [job] = cli_json("jobs")
    assert job["status"] == "failed"
    assert job["error"] and "Traceback" not in job["error"]
    assert "could not load the model in" in job["error"] and "offline" not in job["error"]
