"""Credential tests never touch the developer's real OS keyring: a failing keyring by default, an
in-memory one where a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vibeml.config.credentials import CredentialManager

PASSPHRASE = "correct horse battery staple"
FAST_N = 2**10  # tests only: the default (2**17) is asserted separately


@pytest.fixture(autouse=True)
def no_os_keyring() -> Iterator[None]:
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        yield
        return
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> Iterator[Any]:
    """An in-memory keyring that ``backend="auto"`` will consider usable."""
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 5  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.entries: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.entries.pop((service, username), None)

    ring = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return tmp_path / "cfg"


@pytest.fixture
def passphrase() -> str:
    return PASSPHRASE


@pytest.fixture
def make_manager(cfg: Path) -> Any:
    """Build managers on ``cfg`` with the fast scrypt cost (pass any constructor keyword)."""

    def make(**kwargs: Any) -> CredentialManager:
        kwargs.setdefault("scrypt_n", FAST_N)
        return CredentialManager(kwargs.pop("config_dir", cfg), **kwargs)

    return make


@pytest.fixture
def manager(make_manager: Any) -> CredentialManager:
    return make_manager(passphrase=PASSPHRASE, backend="passphrase")
