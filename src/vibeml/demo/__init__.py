"""The offline demo: a tiny model and a task dataset built locally, trained in about a minute on CPU."""

from __future__ import annotations

from vibeml.demo.assets import (
    DEMO_SAMPLE_PROMPTS,
    DemoAssets,
    build_demo_dataset,
    build_tiny_model,
    demo_hyperparameters,
    demo_score_examples,
    ensure_demo_assets,
    held_out_rows,
)

__all__ = [
    "DEMO_SAMPLE_PROMPTS",
    "DemoAssets",
    "build_demo_dataset",
    "build_tiny_model",
    "demo_hyperparameters",
    "demo_score_examples",
    "ensure_demo_assets",
    "held_out_rows",
]
