"""``vibeml.cloud`` (stable) and ``vibeml.scripts`` (beta), the modules the API reference names: each name is
the one implementation re-exported, and importing them pulls in no torch or SkyPilot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import vibeml.backends.base
import vibeml.backends.registry
import vibeml.catalog.prices
import vibeml.cloud
import vibeml.estimate.cost
import vibeml.models
import vibeml.scripts
import vibeml.workflows.script


def test_the_names_are_the_implementations() -> None:
    assert vibeml.cloud.CostEstimator is vibeml.estimate.cost.CostEstimator
    assert vibeml.cloud.CostEstimate is vibeml.models.CostEstimate
    assert vibeml.cloud.Backend is vibeml.backends.base.Backend
    assert vibeml.cloud.BackendRegistry is vibeml.backends.registry.BackendRegistry
    assert vibeml.cloud.PriceTable is vibeml.catalog.prices.PriceTable
    assert vibeml.scripts.ScriptGenerator is vibeml.workflows.script.ScriptGenerator
    for module in (vibeml.cloud, vibeml.scripts):
        assert set(module.__all__) == set(module._EXPORTS)
        for name in module.__all__:
            assert getattr(module, name) is not None
            assert name in dir(module)
        with pytest.raises(AttributeError):
            module.NoSuchName  # noqa: B018


def test_importing_them_stays_light() -> None:
    code = (
        "import json, sys\n"
        "from vibeml.cloud import CostEstimator, Backend, BackendRegistry, default_registry\n"
        "from vibeml.scripts import ScriptGenerator\n"
        "CostEstimator().estimate_cost(gpu_type='L40S', estimated_hours=1.0)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'sky', 'transformers', 'datasets') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ), timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
