"""The fake hub on loopback, with huggingface_hub's offline switch off for the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vibeml.testing.fake_hub import FakeHub

#: Tokens the fake hub knows: "good" may be granted access to gated/private repos, "other" never is.
TOKENS = {"good": "hf_" + "a" * 34, "other": "hf_" + "b" * 34}


@pytest.fixture
def tokens() -> dict[str, str]:
    return dict(TOKENS)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with FakeHub(tokens={TOKENS["good"]: "alice", TOKENS["other"]: "bob"}) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake
