"""Validation of what users ask for: models, datasets and resources, before anything is launched."""

from __future__ import annotations

from vibeml.validation.dataset import DatasetReport, DatasetValidator, TokenStats
from vibeml.validation.model import ModelInfo, ModelValidator
from vibeml.validation.resources import DiskEstimate, ResourceValidator

__all__ = [
    "DatasetReport",
    "DatasetValidator",
    "DiskEstimate",
    "ModelInfo",
    "ModelValidator",
    "ResourceValidator",
    "TokenStats",
]
