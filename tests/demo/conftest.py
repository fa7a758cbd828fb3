"""Demo fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def demo_assets(demo_assets_dir: Path) -> Any:
    """The session's demo assets (built once by the root conftest; read only)."""
    from vibeml.demo import ensure_demo_assets

    return ensure_demo_assets(demo_assets_dir)
