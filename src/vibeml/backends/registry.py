"""Backend registry. Built-ins register the way a third-party plugin would: by name, lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from vibeml.backends.base import Backend
from vibeml.exceptions import ConfigurationError
from vibeml.settings import Settings

__all__ = ["BUILTIN_BACKENDS", "BackendRegistry", "default_registry"]

BackendFactory = Callable[[Settings], Backend[Any]]


def _lazy(module: str, attr: str) -> BackendFactory:
    def factory(settings: Settings) -> Backend[Any]:
        cls = getattr(importlib.import_module(module), attr)
        backend: Backend[Any] = cls(settings)
        return backend

    return factory


class BackendRegistry:
    """Name → backend factory; instances are created on first use and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._factories: dict[str, BackendFactory] = {}
        self._instances: dict[str, Backend[Any]] = {}

    def register(self, name: str, factory: BackendFactory) -> None:
        self._factories[name] = factory
        self._instances.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Backend[Any]:
        if name not in self._instances:
            factory = self._factories.get(name)
            if factory is None:
                raise ConfigurationError(
                    f"unknown backend {name!r}",
                    {"backend": name, "available": self.names()},
                    f"Use one of: {', '.join(self.names())}.",
                )
            self._instances[name] = factory(self.settings)
        return self._instances[name]


#: The backends VibeML ships: name -> (module, class), imported on first use.
_BUILTIN: dict[str, tuple[str, str]] = {
    "local": ("vibeml.backends.local", "LocalBackend"),
    "vast": ("vibeml.backends.vast", "VastBackend"),
    "skypilot": ("vibeml.backends.skypilot", "SkyPilotBackend"),
}
BUILTIN_BACKENDS: tuple[str, ...] = tuple(_BUILTIN)


def default_registry(settings: Settings) -> BackendRegistry:
    registry = BackendRegistry(settings)
    for name, (module, cls) in _BUILTIN.items():
        registry.register(name, _lazy(module, cls))
    return registry
