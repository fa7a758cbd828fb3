"""The backend contract: launch quickly, poll status, read logs, stop idempotently, fetch artifacts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from vibeml.exceptions import ConfigurationError
from vibeml.models import JobHandle, JobProgress, TrainingRequest
from vibeml.workflows.registry import TrainingProgram

__all__ = ["Backend", "Capabilities", "Capability"]


class Capability(BaseModel):
    """Whether a backend can do something, and why not when it can't."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    supported: bool
    reason: str = ""


class Capabilities(BaseModel):
    """What a backend declares; checked against a request before launch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spot: Capability
    multi_gpu: Capability
    multi_node: Capability
    artifacts: Capability
    gpu_selection: Capability
    budget_cap: Capability


class Backend(ABC):
    """Where a training program runs. Implementations must be usable from any process: all they need
    to find a job again is in its ``JobHandle``."""

    name: ClassVar[str]
    description: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def check(self, request: TrainingRequest) -> None:
        """Raise ``ConfigurationError`` when the request needs something this backend cannot do."""
        caps = self.capabilities
        needs: list[tuple[str, Capability]] = []
        if request.use_spot:
            needs.append(("spot", caps.spot))
        if request.gpu_count > 1:
            needs.append(("multi_gpu", caps.multi_gpu))
        if request.gpu_type or request.cloud:
            needs.append(("gpu_selection", caps.gpu_selection))
        for what, cap in needs:
            if not cap.supported:
                raise ConfigurationError(
                    f"the {self.name} backend does not support {what.replace('_', '-')}: {cap.reason}",
                    {"backend": self.name, "capability": what},
                    "Drop that option, or choose another backend with --backend.",
                )

    @abstractmethod
    def launch(self, program: TrainingProgram, job_id: str, job_dir: Path) -> JobHandle:
        """Start the program and return at once with a handle."""

    @abstractmethod
    def status(self, handle: JobHandle) -> JobProgress:
        """Current progress and status, reconciled from the program and its events."""

    @abstractmethod
    def logs(self, handle: JobHandle, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        """Log lines (the last ``tail``; then, with ``follow``, new ones until the job ends)."""

    @abstractmethod
    def stop(self, handle: JobHandle, grace_seconds: float = 30.0) -> None:
        """Stop the job; stopping a job that has already ended is not an error."""

    @abstractmethod
    def fetch_artifacts(self, handle: JobHandle, dest: Path | None = None) -> Path:
        """Bring the trained adapter/model to ``dest`` (or its default place) and return the path."""
