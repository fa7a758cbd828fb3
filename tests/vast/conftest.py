"""Fixtures for the Vast SDK tests: a fake Vast.ai on loopback and clients pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vast.vast_helpers import SECRET_KEY, fast_sleep
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep ~/.vast_api_key and ~/.config of the machine running the tests out of reach."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def make_fake(tmp_path: Path) -> Iterator[Callable[..., FakeVast]]:
    """Build FakeVast servers with tiny delays; all are closed at the end of the test."""
    made: list[FakeVast] = []

    def make(**kwargs: Any) -> FakeVast:
        options: dict[str, Any] = {
            "api_key": SECRET_KEY,
            "created_delay": 0.005,
            "loading_delay": 0.01,
            "logs_delay": 0.01,
            "kill_grace": 0.5,
            "tick_interval": 0.005,
            "workdir_root": tmp_path / f"fake-vast-{len(made)}",
        }
        options.update(kwargs)
        fake = FakeVast(**options).start()
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


@pytest.fixture
def fake(make_fake: Callable[..., FakeVast]) -> FakeVast:
    return make_fake()


@pytest.fixture
def make_client(fake: FakeVast) -> Iterator[Callable[..., VastAI]]:
    made: list[VastAI] = []

    def make(**kwargs: Any) -> VastAI:
        options: dict[str, Any] = {
            "api_key": SECRET_KEY,
            "server_url": fake.url,
            "sleep": fast_sleep,
            "timeout": 5.0,
            "create_lookup_grace": 1.0,
        }
        options.update(kwargs)
        client = VastAI(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., VastAI]) -> VastAI:
    return make_client()
