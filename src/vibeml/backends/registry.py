"""Backend registry. Built-ins register the way a third-party plugin would: by name, lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from vibeml.backends.base import Backend
from vibeml.exceptions import ConfigurationError
from vibeml.settings import Settings

__all__ = ["BackendRegistry", "default_registry"]

BackendFactory = Callable[[Settings], Backend]


def _lazy(module: str, attr: str) -> BackendFactory:
    def factory(settings: Settings) -> Backend:
        cls = getattr(importlib.import_module(module), attr)
        backend: Backend = cls(settings)
        return backend

    return factory


class BackendRegistry:
    """Name → backend factory; instances are created on first use and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._factories: dict[str, BackendFactory] = {}
        self._instances: dict[str, Backend] = {}

    def register(self, name: str, factory: BackendFactory) -> None:
        self._factories[name] = factory
        self._instances.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Backend:
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


def default_registry(settings: Settings) -> BackendRegistry:
    registry = BackendRegistry(settings)
    registry.register("local", _lazy("vibeml.backends.local", "LocalBackend"))
    registry.register("vast", _lazy("vibeml.backends.vast", "VastBackend"))
    registry.register("skypilot", _lazy("vibeml.backends.skypilot", "SkyPilotBackend"))
    return registry
