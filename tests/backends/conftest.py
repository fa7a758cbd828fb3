"""Fixtures the backend tests share."""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from vibeml.testing.fake_vast_machine import FakeMachineImage

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


#: What a CPU stand-in for a CUDA image cannot install (and a CUDA image already has).
_GPU_ONLY = re.compile(r"^(nvidia-|cuda-|triton$|liger-kernel$)")


def _uv_cache() -> Path | None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        return None
    res = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=False)
    path = Path(res.stdout.strip()) if res.returncode == 0 else None
    return path if path is not None and (path / "archive-v0").is_dir() else None


@pytest.fixture(scope="session")
def offline_image(fake_machine_image: FakeMachineImage, tmp_path_factory: pytest.TempPathFactory) -> FakeMachineImage:
    """The clean image plus an offline package source (this host's uv cache) and the GPU-only exclusions
    (why that source: see ``test_vast_faithful_e2e``'s docstring)."""
    from vibeml.locks import load_lock

    cache = _uv_cache()
    if cache is None:
        pytest.skip("needs uv and its cache (the machine installs offline from it)")
    config = tmp_path_factory.mktemp("uv-image-config")
    if os.stat(cache).st_dev != os.stat(config).st_dev:  # each container would copy the whole cache
        pytest.skip("uv's cache is on another filesystem than the test's temporary folders (no hard links)")
    gpu_only = sorted({p.name for p in load_lock("main") if _GPU_ONLY.match(p.name)})
    (config / "excludes.txt").write_text("".join(f"{n}\n" for n in gpu_only), encoding="utf-8")
    # Where this host's venv was not built with uv, its cache cannot install the job: say so, do not fail.
    from vibeml.workflows.registry import get_workflow

    reqs = config / "requirements.txt"
    reqs.write_text("".join(f"{r}\n" for r in get_workflow("trl-lora").remote_requirements()), encoding="utf-8")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    probe = [uv, "pip", "install", "--dry-run", "--offline", "--quiet", "--cache-dir", str(cache)]
    probe += ["--python", str(fake_machine_image.venv / "bin" / "python"), "--excludes", str(config / "excludes.txt")]
    res = subprocess.run([*probe, "-r", str(reqs)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"uv's cache here cannot install the job's requirements offline: {res.stderr.strip()[-300:]}")
    from vibeml.testing.fake_vast_machine import FakeMachineImage

    return FakeMachineImage(
        venv=fake_machine_image.venv,
        mounts=(*fake_machine_image.mounts, config),
        seed={"/root/.cache/uv": cache},
        extra_env={"UV_OFFLINE": "1", "UV_EXCLUDE": str(config / "excludes.txt"), "UV_PYTHON_DOWNLOADS": "never"},
    )
