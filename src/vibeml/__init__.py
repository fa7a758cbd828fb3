"""VibeML: fine-tune open LLMs on the cheapest GPU that fits, without overspending.

The public API is async and imported lazily, so ``import vibeml`` (and the CLI) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vibeml._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "BudgetExceededError": "vibeml.exceptions",
    "ConfigurationError": "vibeml.exceptions",
    "CostEstimate": "vibeml.models",
    "DatasetError": "vibeml.exceptions",
    "JobRecord": "vibeml.models",
    "JobStatus": "vibeml.models",
    "ModelNotFoundError": "vibeml.exceptions",
    "Settings": "vibeml.settings",
    "TrainingRequest": "vibeml.models",
    "VibeML": "vibeml.client",
    "VibeMLError": "vibeml.exceptions",
    "export_model": "vibeml.api",
    "generate": "vibeml.api",
    "get_job_logs": "vibeml.api",
    "get_job_status": "vibeml.api",
    "launch_training": "vibeml.api",
    "list_jobs": "vibeml.api",
    "push_to_hub": "vibeml.api",
    "resume_training": "vibeml.api",
    "stop_job": "vibeml.api",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from vibeml.api import (
        export_model,
        generate,
        get_job_logs,
        get_job_status,
        launch_training,
        list_jobs,
        push_to_hub,
        resume_training,
        stop_job,
    )
    from vibeml.client import VibeML
    from vibeml.exceptions import (
        BudgetExceededError,
        ConfigurationError,
        DatasetError,
        ModelNotFoundError,
        VibeMLError,
    )
    from vibeml.models import CostEstimate, JobRecord, JobStatus, TrainingRequest
    from vibeml.settings import Settings


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
