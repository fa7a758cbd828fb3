"""Settings, resolved once when a ``Settings`` is built and then passed in (never read at import)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Settings"]


class Settings(BaseModel):
    """Where VibeML keeps things and which endpoints it talks to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(description="Root for jobs, the database and caches (env VIBEML_HOME).")
    python: str = Field(description="Python that runs the local trainer (env VIBEML_PYTHON).")
    hf_endpoint: str | None = Field(None, description="Hugging Face hub URL (env HF_ENDPOINT).")
    stop_grace_seconds: float = Field(30.0, ge=0, description="SIGTERM → SIGKILL grace (env VIBEML_STOP_GRACE).")
    remote_install: str = Field(
        description="pip requirement that installs VibeML on a rented machine (env VIBEML_REMOTE_INSTALL); "
        "empty = already installed there."
    )
    vast_url: str | None = Field(None, description="Vast.ai API base URL (env VIBEML_VAST_URL or VAST_URL).")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from an environment mapping (``os.environ`` by default)."""
        env = os.environ if env is None else env
        home = env.get("VIBEML_HOME")
        if home:
            home_path = Path(home).expanduser()
        else:
            from platformdirs import user_data_dir

            home_path = Path(user_data_dir("vibeml", appauthor=False))
        from vibeml import __version__

        values: dict[str, object] = {
            "home": home_path,
            "remote_install": env.get("VIBEML_REMOTE_INSTALL", f"vibeml[train]=={__version__}"),
            "vast_url": env.get("VIBEML_VAST_URL") or env.get("VAST_URL") or None,
            "python": env.get("VIBEML_PYTHON") or sys.executable,
            "hf_endpoint": env.get("HF_ENDPOINT") or None,
        }
        grace = env.get("VIBEML_STOP_GRACE")
        if grace:
            values["stop_grace_seconds"] = float(grace)
        values.update(overrides)
        return cls.model_validate(values)

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def db_path(self) -> Path:
        return self.home / "vibeml.db"

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"
