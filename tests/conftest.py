"""Every test gets its own VIBEML_HOME and an environment with nothing leaking in or out."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from vibeml.testing.fake_hub import FakeHub
    from vibeml.testing.fake_vast import FakeVast
    from vibeml.testing.fake_vast_machine import FakeMachineImage

_SCRUB_PREFIXES = ("VIBEML_", "VAST_", "HF_", "HUGGING_FACE", "SKY")

# huggingface_hub and datasets read HF_HUB_OFFLINE once, at import: set it before anything imports them,
# so no test (or session fixture) ever reaches for the network. Tests of hub code use a fake hub on loopback.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


#: What tests marked ``needs_train`` import: VibeML's train extra. `make test-compat` runs the suite without it
#: on every Python from 3.10 to 3.13, and those tests skip themselves there; `make test` has it and runs them.
_TRAIN_STACK = ("torch", "transformers", "datasets", "peft", "trl", "pyarrow", "safetensors")
HAVE_TRAIN_STACK = all(importlib.util.find_spec(m) is not None for m in _TRAIN_STACK)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_TRAIN_STACK:
        return
    skip = pytest.mark.skip(reason="needs the train extra (torch, transformers, datasets): `make test` runs it")
    for item in items:
        if item.get_closest_marker("needs_train") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def vibeml_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith(_SCRUB_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "vibeml-home"
    monkeypatch.setenv("VIBEML_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    yield home


@pytest.fixture(scope="session")
def demo_assets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo model and dataset, built once per test session (copy it; don't modify it)."""
    from vibeml.demo.assets import ensure_demo_assets

    root = tmp_path_factory.mktemp("demo-assets")
    ensure_demo_assets(root)
    return root


# ------------------------------------------------------------------ the fake Hugging Face hub (loopback)

#: Tokens the fake hub knows: "good" may be granted access to gated/private repos, "other" never is.
TOKENS = {"good": "hf_" + "a" * 34, "other": "hf_" + "b" * 34}


@pytest.fixture
def tokens() -> dict[str, str]:
    return dict(TOKENS)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """The fake hub on loopback, with huggingface_hub's offline switch off for the test."""
    import huggingface_hub.constants

    from vibeml.testing.fake_hub import FakeHub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with FakeHub(tokens={TOKENS["good"]: "alice", TOKENS["other"]: "bob"}) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


# ------------------------------------------------------------------ the fake Vast.ai with faithful machines


@pytest.fixture(scope="session")
def fake_machine_image(tmp_path_factory: pytest.TempPathFactory) -> FakeMachineImage:
    """The clean "CUDA PyTorch image" (torch, pip, uv; no VibeML), built once per session, offline.

    Skips where instances cannot be sandboxed (no mount namespaces) or torch is not in uv's cache.
    """
    from vibeml.testing.fake_vast_machine import FakeMachineImage

    problem = FakeMachineImage.sandbox_problem()
    if problem is not None:
        pytest.skip(problem)
    try:
        return FakeMachineImage.build(tmp_path_factory.mktemp("fake-machine-image") / "venv")
    except RuntimeError as exc:
        pytest.skip(str(exc).splitlines()[0])


@pytest.fixture
def faithful_vast(fake_machine_image: FakeMachineImage, tmp_path: Path) -> Iterator[FakeVast]:
    """A started fake Vast.ai whose instances are faithful machines (clean image, container root, real SSH).

    Short delays (an instance runs ~0.1 s after creation); ``fake.api_key`` / ``fake.url`` for clients,
    ``fake.workdir(iid)`` is the container's ``/``, ``fake.ssh_port(iid)`` its SSH endpoint.
    See :mod:`vibeml.testing.fake_vast_machine`.
    """
    with faithful_fake_vast(fake_machine_image, tmp_path) as fake:
        yield fake


@contextmanager
def faithful_fake_vast(image: FakeMachineImage, tmp_path: Path, **options: Any) -> Iterator[FakeVast]:
    """A started fake Vast.ai with ``image``'s faithful machines and short delays (``options`` override)."""
    from vibeml.testing.fake_vast import FakeVast

    settings: dict[str, Any] = {
        "created_delay": 0.02,
        "loading_delay": 0.05,
        "logs_delay": 0.01,
        "kill_grace": 1.0,
        "tick_interval": 0.01,
        "workdir_root": tmp_path / "fake-vast",
        **options,
    }
    with FakeVast(machine=image, **settings) as fake:
        yield fake
