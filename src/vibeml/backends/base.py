"""The backend contract: launch quickly, poll status, read logs, stop idempotently, fetch artifacts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import ConfigurationError
from vibeml.models import JobHandle, JobProgress, TrainingRequest

if TYPE_CHECKING:
    from vibeml.catalog.prices import PriceQuote
from vibeml.workflows.registry import TrainingProgram

__all__ = ["Backend", "Capabilities", "Capability", "LaunchChoice"]


class LaunchChoice(BaseModel):
    """What the planner chose for a job, handed to ``Backend.launch``.

    Cloud backends rent what it names (or the closest match they find); the local backend ignores it.
    ``max_runtime_seconds`` is the hard wall-clock cap derived from the budget: backends enforce it on
    the machine (the trainer checkpoints and stops at it; the machine is torn down after).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_type: str | None = None
    gpu_count: int = 1
    num_nodes: int = 1
    cloud: str | None = None
    region: str | None = None
    use_spot: bool = False
    hourly_rate: float = 0.0
    max_cost: float | None = None
    estimated_hours: float = 0.0
    required_memory_gib: float | None = None
    disk_gb: float = 50.0
    max_runtime_seconds: float | None = None
    candidates: tuple[LaunchCandidate, ...] = ()


class LaunchCandidate(BaseModel):
    """Another equally good (cloud, region, GPU) choice a backend may fall back to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_type: str
    gpu_count: int = 1
    cloud: str | None = None
    region: str | None = None
    use_spot: bool = False
    hourly_rate: float = 0.0


LaunchChoice.model_rebuild()


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
    free: bool = Field(False, description="Runs cost nothing (no planner, no budget needed).")


class Backend(ABC):
    """Where a training program runs. Implementations must be usable from any process: all they need
    to find a job again is in its ``JobHandle``."""

    name: ClassVar[str]
    description: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: Clouds the planner may choose from for this backend (None: any catalogued cloud).
    clouds: ClassVar[tuple[str, ...] | None] = None

    def live_quotes(self, request: TrainingRequest) -> list[PriceQuote] | None:
        """Live prices for the planner (e.g. current marketplace offers); None when there are none."""
        return None

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
    def launch(
        self, program: TrainingProgram, job_id: str, job_dir: Path, choice: LaunchChoice | None = None
    ) -> JobHandle:
        """Start the program and return at once with a handle.

        Args:
            program: The trainer invocation and its JSON config.
            job_id: VibeML's id for the job (label cloud resources with it).
            job_dir: The job's local directory (logs, events, artifacts land here).
            choice: What the planner chose (GPU, cloud, price, budget-derived runtime cap).
        """

    @abstractmethod
    def status(self, handle: JobHandle) -> JobProgress:
        """Current progress and status, reconciled from the program and its events."""

    @abstractmethod
    def logs(self, handle: JobHandle, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        """Log lines (the last ``tail``; then, with ``follow``, new ones until the job ends)."""

    @abstractmethod
    def stop(self, handle: JobHandle, grace_seconds: float = 30.0) -> None:
        """Stop the job; stopping a job that has already ended is not an error."""

    def orphans(self, live_job_ids: set[str]) -> list[dict[str, Any]]:
        """Paid resources this backend left behind: labelled as VibeML's but with no live job.

        Each item has at least ``id``, ``label`` and ``reason``; the default backend has none.
        """
        return []

    def destroy_orphans(self, ids: list[str]) -> list[str]:
        """Destroy the given orphaned resources (idempotent); returns the ids destroyed."""
        return []

    @abstractmethod
    def fetch_artifacts(self, handle: JobHandle, dest: Path | None = None) -> Path:
        """Bring the trained adapter/model to ``dest`` (or its default place) and return the path."""
