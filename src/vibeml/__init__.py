"""VibeML: fine-tune open LLMs on the cheapest GPU that fits, without overspending."""

from __future__ import annotations

__version__ = "0.1.0"
