"""The local backend running the stand-in trainer (tests/backends/fake_program.py) instead of training:
real processes, events, logs and stops, in a fraction of a second, for tests of what follows a job."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from tests.backends.test_vast_backend_support import FAKE_PATH
from vibeml.backends.local import LocalBackend
from vibeml.backends.registry import default_registry
from vibeml.client import VibeML
from vibeml.models import LocalHandle
from vibeml.settings import Settings
from vibeml.workflows.registry import TrainingProgram

__all__ = ["StandInLocal", "standin_service"]


class StandInLocal(LocalBackend):
    """The local backend, running the stand-in trainer in ``mode`` (complete: 5 steps; graceful: step 1, then
    waits for SIGTERM and records `stopped`; see fake_program)."""

    mode: ClassVar[str] = "complete"

    def launch(self, program: TrainingProgram, job_id: str, job_dir: Path, choice: Any = None) -> LocalHandle:
        program = program.model_copy(update={"module": "fake_program", "setup_commands": {}})
        program.env.update({"VIBEML_TEST_MODE": self.mode, "PYTHONPATH": FAKE_PATH})
        return super().launch(program, job_id, job_dir, choice)


def standin_service(settings: Settings | None = None) -> VibeML:
    """A service whose ``local`` backend is :class:`StandInLocal` (its jobs read back as ordinary local jobs)."""
    settings = settings or Settings.from_env()
    registry = default_registry(settings)
    registry.register("local", StandInLocal)
    return VibeML(settings, backends=registry)
