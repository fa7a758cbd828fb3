"""Validation of what users ask for: models (and, later, datasets and resources)."""

from __future__ import annotations

from vibeml.validation.model import ModelValidator

__all__ = ["ModelValidator"]
