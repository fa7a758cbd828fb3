"""Fixtures the backend tests share."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import pytest

SKY_REASON = "SkyPilot is an optional extra (pip install 'vibeml[sky]'); `make install` adds it for tests"


@pytest.fixture(scope="session")
def sky(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """``import sky`` with HOME and SKY_RUNTIME_DIR in a temp dir (the import writes ~/.sky/…)."""
    home = tmp_path_factory.mktemp("sky-home")
    handlers, level = logging.root.handlers[:], logging.root.level
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("SKY_RUNTIME_DIR", str(home))
        try:
            mod = pytest.importorskip("sky", reason=SKY_REASON)
            importlib.import_module("sky.jobs")
        finally:  # importing SkyPilot configures the root logger; keep other tests' logging as it was
            logging.root.handlers[:] = handlers
            logging.root.setLevel(level)
    return mod
