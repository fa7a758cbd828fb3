"""The one catalogue of facts: GPUs, prices and model architectures.

Nothing outside this package holds a GPU name, a price or a model shape.
"""

from __future__ import annotations

from vibeml.catalog.architectures import (
    ModelArchitecture,
    architecture_from_config,
    builtin_architecture,
    fetch_hub_config,
    list_builtin_models,
    resolve_architecture,
)
from vibeml.catalog.gpus import GPUS, GPUSpec, list_gpus, normalize_gpu_name, resolve_gpu, try_resolve_gpu
from vibeml.catalog.prices import CLOUDS, CloudInfo, PriceQuote, PriceTable, load_price_table

__all__ = [
    "CLOUDS",
    "GPUS",
    "CloudInfo",
    "GPUSpec",
    "ModelArchitecture",
    "PriceQuote",
    "PriceTable",
    "architecture_from_config",
    "builtin_architecture",
    "fetch_hub_config",
    "list_builtin_models",
    "list_gpus",
    "load_price_table",
    "normalize_gpu_name",
    "resolve_architecture",
    "resolve_gpu",
    "try_resolve_gpu",
]
