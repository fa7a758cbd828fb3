"""Shared pieces of the Vast backend tests (no tests here): a fake Vast.ai over real HTTP, the service
pointed at it, and the one stand-in these tests use.

The stand-in is :class:`WorkdirTransport`: real Vast.ai has no file API, so the backend moves files
over SSH; here they are copied into and out of the fake instance's working directory
(``FakeVast.workdir``) instead. Everything else — search, create, the onstart running the real remote
runner and trainer as a local process, logs, billing, destroy — is the real code over real HTTP.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from vibeml.backends.base import LaunchChoice
from vibeml.backends.registry import default_registry
from vibeml.backends.vast import VastBackend
from vibeml.backends.vast.options import VastOptions
from vibeml.backends.vast.transport import ArtifactTransport
from vibeml.client import VibeML
from vibeml.exceptions import BackendError
from vibeml.models import JobRecord, VastHandle
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI
from vibeml.workflows.registry import TrainingProgram

HERE = Path(__file__).parent
#: fake_program and the VibeML it imports: this checkout's, not whichever is installed
FAKE_PATH = os.pathsep.join([str(HERE), str(Path(__file__).resolve().parents[2] / "src")])

#: Looks like a real key; the tests assert it never shows up anywhere.
SECRET_KEY = "vk_live_5e1f0c9b8a7d6e5f4a3b2c1d0e9f8a7b"


class WorkdirTransport(ArtifactTransport):
    """Test stand-in for SSH/scp: copies into and out of ``FakeVast.workdir(instance id)``."""

    name = "fake-workdir"

    def __init__(self, fake: FakeVast) -> None:
        self.fake = fake
        self.prepared: list[int] = []
        self.downloads: list[str] = []

    def _path(self, instance: Mapping[str, Any], remote: str) -> Path:
        rel = PurePosixPath(remote)
        assert not rel.is_absolute(), "tests use a job directory relative to the onstart's cwd"
        return self.fake.workdir(int(instance["id"])) / rel

    def prepare(self, vast: VastAI, instance: Mapping[str, Any]) -> None:
        self.prepared.append(int(instance["id"]))

    def upload(self, instance: Mapping[str, Any], local: Path, remote: str) -> None:
        dst = self._path(instance, remote)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if local.is_dir():
            shutil.copytree(local, dst)
        else:
            shutil.copy2(local, dst)

    def download(self, instance: Mapping[str, Any], remote: str, local: Path) -> None:
        src = self._path(instance, remote)
        if not src.exists():
            raise BackendError(f"{remote} does not exist on the instance")
        self.downloads.append(remote)
        if src.is_dir():
            shutil.copytree(src, local)
        else:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, local)

    def put_text(self, instance: Mapping[str, Any], remote: str, text: str) -> None:
        dst = self._path(instance, remote)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text, encoding="utf-8")


class FakeProgramVast(VastBackend):
    """The Vast backend, running tests/backends/fake_program.py instead of the trainer (for the plumbing
    tests: fault matrix, budget, spot policy). ``mode`` as in fake_program."""

    def __init__(self, settings: Settings, *, mode: str = "complete", **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.mode = mode

    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> VastHandle:
        env = {**program.env, "VIBEML_TEST_MODE": self.mode, "PYTHONPATH": FAKE_PATH}
        # fake_program needs no setup (the workflow's import checks would only add seconds to each case)
        program = program.model_copy(update={"module": "fake_program", "env": env, "setup_commands": {}})
        return super().launch(program, job_id, job_dir, choice)


def options(**overrides: Any) -> VastOptions:
    """Tiny timings; the instance runs this venv's Python; the job dir sits in the fake's instance dir."""
    values: dict[str, Any] = {
        "poll_interval": 0.05,
        "start_timeout": 30.0,
        "boot_timeout": 60.0,
        "remote_dir": "vibeml-job",
        "remote_python": sys.executable,
        "log_mirror": "",
        "logs_poll": 0.02,
        "logs_timeout": 5.0,
        "linger": 30.0,
        "term_grace": 1.0,
        "http_timeout": 5.0,
        "create_lookup_grace": 0.5,
        "landing_grace": 2.0,
        "spot_wait": 30.0,
        "input_wait": 30.0,
    }
    values.update(overrides)
    base = Settings.from_env().vast  # the URL (VIBEML_VAST_URL) and the rest from the test's environment
    return VastOptions.model_validate({**base.model_dump(), **values})


def make_service(
    fake: FakeVast,
    *,
    backend_cls: type[VastBackend] = VastBackend,
    clock: Callable[[], float] = time.time,
    backend_kwargs: Mapping[str, Any] | None = None,
    **opts: Any,
) -> tuple[VibeML, VastBackend]:
    """The real service with the real Vast backend pointed at ``fake`` (via VIBEML_VAST_URL)."""
    settings = Settings.from_env()
    backend = backend_cls(
        settings, options=options(**opts), transport=WorkdirTransport(fake), clock=clock, **dict(backend_kwargs or {})
    )
    registry = default_registry(settings)
    registry.register("vast", lambda _s: backend)
    return VibeML(settings, backends=registry), backend


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeVast]:
    server = FakeVast(
        api_key=SECRET_KEY,
        created_delay=0.01,
        loading_delay=0.02,
        logs_delay=0.01,
        kill_grace=1.0,
        tick_interval=0.01,
        workdir_root=tmp_path / "fake-vast",
    ).start()
    yield server
    server.close()


@pytest.fixture
def vast_env(fake: FakeVast, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeVast:
    """Point VibeML at the fake: URL and key from the environment, nothing to pip-install remotely."""
    monkeypatch.setenv("VIBEML_VAST_URL", fake.url)
    monkeypatch.setenv("VAST_API_KEY", SECRET_KEY)
    monkeypatch.setenv("VIBEML_REMOTE_INSTALL", "")
    home = tmp_path / "user-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))  # keep this machine's ~/.vast_api_key out of reach
    return fake


@pytest.fixture
def demo_home(vibeml_env: Path, demo_assets_dir: Path) -> Path:
    """VIBEML_HOME with the demo model and dataset in place (built once per session)."""
    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    return vibeml_env


def wait_terminal(
    svc: VibeML,
    job_id: str,
    timeout: float = 120.0,
    every: float = 0.2,
    on_poll: Callable[[JobRecord], None] | None = None,
) -> JobRecord:
    """Poll the service (the client-side watchdog runs on each poll) until the job ends."""
    deadline = time.monotonic() + timeout
    while True:
        record = svc.get_status(job_id)
        if on_poll is not None:
            on_poll(record)
        if record.status.is_terminal:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {record.status} after {timeout}s: {record.progress}")
        time.sleep(every)


def assert_nothing_billing(fake: FakeVast) -> None:
    """Zero instances left (running, stopped or exited), and the bill has stopped growing."""
    assert fake.instance_ids() == [], [fake.instance(i) for i in fake.instance_ids()]
    before = fake.total_accrued_cost()
    time.sleep(0.15)
    assert fake.total_accrued_cost() == before


def all_text_under(root: Path) -> str:
    """Every readable file under ``root`` (bytes decoded leniently), for leak checks."""
    chunks = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                chunks.append(path.read_bytes().decode("utf-8", errors="replace"))
            except OSError:
                continue
    return "\n".join(chunks)


def environ_without_vast() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VAST_")}
