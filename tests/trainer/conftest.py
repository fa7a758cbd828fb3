"""Shared fixtures for trainer tests: the tiny demo model (built once), small datasets, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from vibeml.demo.assets import demo_rows
from vibeml.trainer.events import TrainerEvent, read_events

REPO_SRC = Path(__file__).resolve().parents[2] / "src"
E = TypeVar("E")


@pytest.fixture(scope="session")
def tiny_assets(demo_assets_dir: Path) -> Any:
    """The demo's tiny Llama and its dataset (built once per session by the root conftest; read only)."""
    from vibeml.demo import ensure_demo_assets

    return ensure_demo_assets(demo_assets_dir)


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force offline mode in-process: the hub libraries read HF_HUB_OFFLINE once, at import, which may
    have happened (in a session fixture or another test) before the per-test environment was set."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_assets: Any) -> Path:
    return Path(tiny_assets.model_dir)


def _rows(n: int) -> list[dict[str, str]]:
    return demo_rows(n, seed=7)


def _format_rows(fmt: str, n: int = 48) -> list[dict[str, Any]]:
    """``n`` demo examples written in dataset format ``fmt`` (as a user's file would hold them)."""
    out: list[dict[str, Any]] = []
    for r in _rows(n):
        user = r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")
        if fmt == "alpaca":
            out.append(dict(r))
        elif fmt == "messages":
            out.append(
                {
                    "messages": [
                        {"role": "system", "content": "You are terse."},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": r["output"]},
                    ]
                }
            )
        elif fmt == "sharegpt":
            out.append(
                {
                    "conversations": [
                        {"from": "human", "value": user},
                        {"from": "gpt", "value": r["output"]},
                    ]
                }
            )
        elif fmt == "prompt_completion":
            out.append({"prompt": user, "completion": r["output"]})
        elif fmt == "text":
            out.append({"text": f"Q: {user}\nA: {r['output']}"})
        else:  # pragma: no cover - test helper misuse
            raise ValueError(fmt)
    return out


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def format_rows() -> Callable[..., list[dict[str, Any]]]:
    """``format_rows(fmt, n=48)``: demo examples written in a dataset format."""
    return _format_rows


@pytest.fixture(scope="session")
def write_jsonl() -> Callable[[Path, list[Any]], Path]:
    return _write_jsonl


@pytest.fixture
def dataset_file(tmp_path: Path) -> Callable[..., Path]:
    """``dataset_file(fmt, n=48)``: write a small dataset of that format and return its path."""

    def make(fmt: str, n: int = 48) -> Path:
        return _write_jsonl(tmp_path / f"data-{fmt}.jsonl", _format_rows(fmt, n))

    return make


def _trainer_config(workdir: Path, model: str | Path, dataset: str | Path, **overrides: Any) -> dict[str, Any]:
    """A small, fast trainer config as the JSON dict a workflow would write."""
    hp = {
        "max_steps": 3,
        "learning_rate": 3e-3,
        "batch_size": 4,
        "max_seq_length": 64,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "logging_steps": 1,
        "save_steps": 2,
        "save_total_limit": 2,
        "warmup_ratio": 0.0,
    }
    hp.update(overrides.pop("hyperparameters", {}))
    cfg: dict[str, Any] = {
        "job_id": "test",
        "model": str(model),
        "dataset": str(dataset),
        "output_dir": str(workdir / "out"),
        "checkpoint_dir": str(workdir / "ckpt"),
        "events_path": str(workdir / "events.jsonl"),
        "hyperparameters": hp,
        "torch_threads": 1,
    }
    cfg.update(overrides)
    return cfg


@dataclass
class TrainerProcess:
    """A trainer started as ``python -m vibeml.trainer``."""

    proc: subprocess.Popen[str]
    events_path: Path
    workdir: Path

    def wait(self, timeout: float = 240) -> Run:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
            raise AssertionError(f"trainer hung; stderr tail:\n{stderr[-3000:]}") from None
        return Run(self.proc.returncode, list(read_events(self.events_path)), stdout, stderr, self.workdir)

    def events(self) -> list[TrainerEvent]:
        return list(read_events(self.events_path))


@dataclass
class Run:
    rc: int
    events: list[TrainerEvent]
    stdout: str
    stderr: str
    workdir: Path

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def describe(self) -> str:
        return f"rc={self.rc}\nevents={self.events}\nstdout={self.stdout[-2000:]}\nstderr={self.stderr[-3000:]}"


_SCRUB_PREFIXES = ("VIBEML_", "VAST_", "HF_", "HUGGING_FACE", "SKY")


def _env(workdir: Path) -> dict[str, str]:
    """The trainer's environment: offline hub, caches inside ``workdir`` (also for module-scoped runs,
    which start before the per-test environment fixture)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(
        PYTHONPATH=str(REPO_SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(workdir / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        VIBEML_HOME=str(workdir / "vibeml-home"),
        OMP_NUM_THREADS="1",
    )
    return env


def _start_trainer(
    workdir: Path, config: dict[str, Any] | str, extra_env: dict[str, str] | None = None
) -> TrainerProcess:
    """Write ``config`` (a dict, or raw text for broken-config tests) and start the trainer on it
    (``extra_env``: e.g. a fault-injection hook, set only here)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "run.json"
    cfg_path.write_text(config if isinstance(config, str) else json.dumps(config), encoding="utf-8")
    events = Path(config["events_path"]) if isinstance(config, dict) else workdir / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vibeml.trainer", "--config", str(cfg_path)],
        cwd=workdir,
        env={**_env(workdir), **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return TrainerProcess(proc, events, workdir)


def _wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class TrainerCLI:
    """What tests use to drive ``python -m vibeml.trainer`` (handed out by the ``cli`` fixture)."""

    config = staticmethod(_trainer_config)
    start = staticmethod(_start_trainer)
    wait_for = staticmethod(_wait_for)

    @staticmethod
    def run(workdir: Path, config: dict[str, Any] | str, timeout: float = 240) -> Run:
        return _start_trainer(workdir, config).wait(timeout)


@pytest.fixture(scope="session")
def cli() -> type[TrainerCLI]:
    return TrainerCLI
