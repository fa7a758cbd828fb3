"""Cost estimation and the cloud/provider interfaces (API stability: **stable**).

The names the API reference documents under ``vibeml.cloud``. Each one is the implementation it names,
re-exported (``vibeml.cloud.CostEstimator is vibeml.estimate.cost.CostEstimator``), and imported only when
first used, so ``import vibeml.cloud`` stays light (no torch, no SkyPilot):

* estimating: :class:`CostEstimator` (``estimate_cost``, ``estimate_request``, ``best_quote``),
  :class:`~vibeml.models.CostEstimate`, :class:`JobEstimate`, :func:`estimate_job`;
* prices and hardware: :class:`PriceTable`, :class:`PriceQuote`, :class:`CloudInfo`, ``CLOUDS``,
  :func:`load_price_table`, :class:`GPUSpec`, :func:`resolve_gpu`, :func:`list_gpus`;
* providers: the backend contract :class:`Backend` (with :class:`Capabilities` / :class:`Capability`) and
  :class:`BackendRegistry` / :func:`default_registry` / ``BUILTIN_BACKENDS``, which a provider plugin
  registers with.

Example::

    from vibeml.cloud import CostEstimator

    cost = CostEstimator().estimate_cost(gpu_type="L40S", estimated_hours=12.0, use_spot=True, cloud="nebius")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vibeml._lazy import lazy_exports

_EXPORTS = {
    "BUILTIN_BACKENDS": "vibeml.backends.registry",
    "Backend": "vibeml.backends.base",
    "BackendRegistry": "vibeml.backends.registry",
    "CLOUDS": "vibeml.catalog.prices",
    "Capabilities": "vibeml.backends.base",
    "Capability": "vibeml.backends.base",
    "CloudInfo": "vibeml.catalog.prices",
    "CostEstimate": "vibeml.models",
    "CostEstimator": "vibeml.estimate.cost",
    "GPUSpec": "vibeml.catalog.gpus",
    "JobEstimate": "vibeml.estimate.cost",
    "PriceQuote": "vibeml.catalog.prices",
    "PriceTable": "vibeml.catalog.prices",
    "default_registry": "vibeml.backends.registry",
    "estimate_job": "vibeml.estimate.cost",
    "list_gpus": "vibeml.catalog.gpus",
    "load_price_table": "vibeml.catalog.prices",
    "resolve_gpu": "vibeml.catalog.gpus",
}

__all__ = [
    "BUILTIN_BACKENDS",
    "CLOUDS",
    "Backend",
    "BackendRegistry",
    "Capabilities",
    "Capability",
    "CloudInfo",
    "CostEstimate",
    "CostEstimator",
    "GPUSpec",
    "JobEstimate",
    "PriceQuote",
    "PriceTable",
    "default_registry",
    "estimate_job",
    "list_gpus",
    "load_price_table",
    "resolve_gpu",
]

if TYPE_CHECKING:  # pragma: no cover
    from vibeml.backends.base import Backend, Capabilities, Capability
    from vibeml.backends.registry import BUILTIN_BACKENDS, BackendRegistry, default_registry
    from vibeml.catalog.gpus import GPUSpec, list_gpus, resolve_gpu
    from vibeml.catalog.prices import CLOUDS, CloudInfo, PriceQuote, PriceTable, load_price_table
    from vibeml.estimate.cost import CostEstimator, JobEstimate, estimate_job
    from vibeml.models import CostEstimate


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
