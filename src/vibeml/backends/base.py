"""The backend contract: launch quickly, poll status, read logs, stop idempotently, fetch artifacts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import BackendError, ConfigurationError
from vibeml.models import JobHandle, JobProgress, LaunchCandidate, LaunchChoice, TrainingRequest

if TYPE_CHECKING:
    from vibeml.catalog.prices import PriceQuote
from vibeml.workflows.registry import TrainingProgram

__all__ = [
    "HANDLE_FILENAME",
    "Backend",
    "Capabilities",
    "Capability",
    "HandleT",
    "LaunchCandidate",
    "LaunchChoice",
    "write_handle_file",
]

#: The handle beside the job (``<job dir>/handle.json``): a launcher killed before the store has the handle
#: still leaves a way to find the process or machine (``VibeML`` adopts it).
HANDLE_FILENAME = "handle.json"

HandleT = TypeVar("HandleT", bound=JobHandle)


def write_handle_file(handle: JobHandle) -> None:
    """Write ``handle`` to ``<job dir>/handle.json`` atomically (0600): a reader sees the old one or the new one.

    Raises:
        BackendError: The job folder cannot be written.
    """
    from vibeml.config._files import atomic_write_bytes

    path = Path(handle.job_dir) / HANDLE_FILENAME
    try:
        atomic_write_bytes(path, handle.model_dump_json(indent=2).encode("utf-8"))
    except OSError as exc:
        raise BackendError(
            f"cannot write the job's handle {path}: {exc.strerror or exc}",
            {"job_id": handle.job_id, "path": str(path)},
            "Check the job folder's permissions and free disk space under VIBEML_HOME.",
        ) from exc


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


class Backend(ABC, Generic[HandleT]):
    """Where a training program runs. Implementations must be usable from any process: all they need
    to find a job again is in its handle, a ``JobHandle`` subclass of the backend's own (``handle_type``):
    ``launch`` returns one, and ``status``/``logs``/``stop``/``fetch_artifacts`` take one (checked with
    :meth:`own`)."""

    name: ClassVar[str]
    #: The handle class this backend makes and reads.
    handle_type: ClassVar[type[JobHandle]]
    description: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: Clouds the planner may choose from for this backend (None: any catalogued cloud).
    clouds: ClassVar[tuple[str, ...] | None] = None
    #: Machines one job may span when the planner chooses (1: one machine; the planner's ``max_nodes``).
    max_nodes: ClassVar[int] = 1

    def live_quotes(self, request: TrainingRequest) -> list[PriceQuote] | None:
        """Live prices for the planner (e.g. current marketplace offers); None when there are none."""
        return None

    def own(self, handle: JobHandle) -> HandleT:
        """``handle`` as this backend's handle.

        Raises:
            BackendError: It is another backend's handle (e.g. a job record naming the wrong backend).
        """
        if not isinstance(handle, self.handle_type):
            raise BackendError(
                f"job {handle.job_id} has a {handle.backend} handle; the {self.name} backend cannot track it",
                {"job_id": handle.job_id, "handle": handle.backend, "backend": self.name},
                "The job record names the wrong backend: it was changed outside VibeML.",
            )
        return cast(HandleT, handle)

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
    ) -> HandleT:
        """Start the program and return at once with a handle (also written with :func:`write_handle_file`).

        Args:
            program: The trainer invocation and its JSON config.
            job_id: VibeML's id for the job (label cloud resources with it).
            job_dir: The job's local directory (logs, events, artifacts land here).
            choice: What the planner chose (GPU, cloud, price, budget-derived runtime cap).
        """

    @abstractmethod
    def status(self, handle: HandleT) -> JobProgress:
        """Current progress and status, reconciled from the program and its events."""

    @abstractmethod
    def logs(self, handle: HandleT, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        """Log lines (the last ``tail``; then, with ``follow``, new ones until the job ends)."""

    @abstractmethod
    def stop(self, handle: HandleT, grace_seconds: float = 30.0) -> None:
        """Stop the job; stopping a job that has already ended is not an error."""

    def orphans(self, live_job_ids: set[str]) -> list[dict[str, Any]]:
        """Paid resources this backend left behind: labelled as VibeML's but with no live job.

        Each item has at least ``id``, ``label`` and ``reason``; the default backend has none.
        """
        return []

    def destroy_orphans(self, ids: list[str]) -> list[str]:
        """Destroy the given orphaned resources (idempotent); returns the ids destroyed."""
        return []

    def settle_launches(self) -> None:
        """Settle earlier launches' creates that may still land (a killed launcher's among them): destroy
        what they rented that no job uses. Called at the start of commands that track jobs; best effort
        (raises ``VibeMLError`` when the provider cannot be asked). The default backend has nothing to do.
        """

    @abstractmethod
    def fetch_artifacts(self, handle: HandleT, dest: Path | None = None) -> Path:
        """Bring the trained adapter/model to ``dest`` (or its default place) and return the path."""
