"""User preferences: launch defaults and budgets, a flat TOML file ``<config dir>/config.toml``.

Read with :mod:`tomllib`; written with ``tomli_w`` when it is installed, else with the small writer
below (the schema is flat: strings, booleans, numbers). Writes are atomic and 0600. Every change is
validated against the whole model first, so an invalid ``set`` leaves the file byte-for-byte as it was;
a damaged file is reported (naming it) and never reset.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vibeml._compat import tomllib
from vibeml.config._files import atomic_write_bytes, ensure_private_dir
from vibeml.exceptions import ConfigurationError, ValidationError

__all__ = ["PREFERENCES_FILENAME", "Preferences", "PreferencesStore", "dump_flat_toml"]

log = logging.getLogger(__name__)

PREFERENCES_FILENAME = "config.toml"
LOCK_FILENAME = ".preferences.lock"
_MAX_FILE_BYTES = 2**20
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_GPU = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_HEADER = "# VibeML preferences. Change with `vibeml config set KEY VALUE` / `vibeml config unset KEY`.\n"


class Preferences(BaseModel):
    """Defaults for launches and the budgets that guard them. Unset fields take the defaults below."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, str_strip_whitespace=True)

    default_backend: str = Field("local", pattern=_NAME, description="Where jobs run: local, vast, skypilot…")
    default_workflow: str = Field("trl-lora", pattern=_NAME, description="Training recipe, e.g. trl-lora or full.")
    default_gpu: str | None = Field(None, pattern=_GPU, description="GPU type for cloud backends, e.g. H100.")
    default_gpu_count: int = Field(1, ge=1, le=64, description="GPUs per node.")
    default_cloud: str | None = Field(None, pattern=_NAME, description="Cloud for SkyPilot, e.g. aws.")
    use_spot: bool = Field(False, description="Prefer interruptible (spot) capacity.")
    max_cost_per_job: float | None = Field(None, gt=0, le=1_000_000, description="Per-job cap in USD.")
    monthly_budget: float | None = Field(None, gt=0, le=10_000_000, description="Monthly cap in USD.")
    budget_warning_threshold: float = Field(
        0.8, ge=0, le=1, description="Warn when this fraction of the monthly budget is spent (0–1)."
    )

    @model_validator(mode="after")
    def _caps_agree(self) -> Preferences:
        if (
            self.max_cost_per_job is not None
            and self.monthly_budget is not None
            and self.max_cost_per_job > self.monthly_budget
        ):
            raise ValueError(
                f"max_cost_per_job (${self.max_cost_per_job:.2f}) exceeds monthly_budget (${self.monthly_budget:.2f})"
            )
        return self


def _check_known_names(prefs: Preferences, keys: set[str]) -> None:
    """Names being set must exist: a catalogued GPU, a registered backend and workflow.

    Only checked when set, so a file written by another VibeML version still reads.

    Raises:
        ConfigurationError: An unknown name; the message lists the known ones (or the closest GPUs).
    """
    if "default_gpu" in keys and prefs.default_gpu:
        from vibeml.catalog.gpus import resolve_gpu

        resolve_gpu(prefs.default_gpu)
    if "default_workflow" in keys:
        from vibeml.workflows.registry import get_workflow

        get_workflow(prefs.default_workflow)
    if "default_backend" in keys:
        from vibeml.backends.registry import BUILTIN_BACKENDS

        if prefs.default_backend not in BUILTIN_BACKENDS:
            raise ConfigurationError(
                f"unknown backend {prefs.default_backend!r}",
                {"backend": prefs.default_backend, "available": list(BUILTIN_BACKENDS)},
                f"Use one of: {', '.join(BUILTIN_BACKENDS)}.",
            )


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dump_flat_toml(data: Mapping[str, str | bool | int | float]) -> str:
    """TOML for a flat table of strings, booleans, ints and finite floats (keys must be bare-safe).

    Raises:
        ValueError: A nested value, a non-finite float or an unsafe key.
    """
    lines = []
    for key, value in data.items():
        if not key or not all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
            raise ValueError(f"not a bare TOML key: {key!r}")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{key}: TOML here holds finite numbers only")
            text = repr(value)
        elif isinstance(value, str):
            text = _toml_string(value)
        else:
            raise ValueError(f"{key}: unsupported value type {type(value).__name__}")
        lines.append(f"{key} = {text}\n")
    return "".join(lines)


def _dumps(data: Mapping[str, Any]) -> str:
    try:
        import tomli_w
    except ImportError:
        return dump_flat_toml(data)
    return tomli_w.dumps(dict(data))


def _first_error(exc: pydantic.ValidationError) -> tuple[str, str]:
    """(field, message) of the first problem, without pydantic's decoration."""
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "preferences"
    msg = str(err.get("msg", "invalid"))
    return where, msg.removeprefix("Value error, ")


class PreferencesStore:
    """Load, validate and atomically save :class:`Preferences`.

    Args:
        config_dir: Directory of ``config.toml`` (``settings.config_dir``).
    """

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = Path(config_dir)
        self._mutex = threading.RLock()

    def __repr__(self) -> str:
        return f"PreferencesStore(path={str(self.path)!r})"

    @property
    def path(self) -> Path:
        """The TOML file."""
        return self.config_dir / PREFERENCES_FILENAME

    @staticmethod
    def keys() -> list[str]:
        """The preference names, in schema order."""
        return list(Preferences.model_fields)

    def load(self) -> Preferences:
        """The saved preferences (defaults when there is no file yet; nothing is created).

        Raises:
            ConfigurationError: The file is unreadable, not TOML, or holds invalid settings.
        """
        with self._mutex:
            return self._validate_file(self._read_data())

    def save(self, prefs: Preferences) -> Path:
        """Validate ``prefs`` and write the fields it sets (defaults stay implicit). Returns the path.

        Raises:
            ConfigurationError: ``prefs`` is invalid or the file cannot be written.
        """
        try:
            checked = Preferences.model_validate(prefs.model_dump(exclude_unset=True))
        except pydantic.ValidationError as exc:
            where, msg = _first_error(exc)
            raise ValidationError(f"invalid preferences: {where}: {msg}", {"key": where}) from None
        with self._locked():
            self._write(checked)
        return self.path

    def set(self, key: str, value: str) -> Preferences:
        """Parse ``value`` to ``key``'s type, validate the whole model, save. Returns the new preferences.

        Raises:
            ConfigurationError: Unknown key, a value that does not parse or validate, or a damaged file;
                the file is then left exactly as it was.
        """
        name = self._known_key(key)
        with self._locked():
            data = self._read_data()
            self._validate_file(data)
            data[name] = value
            try:
                new = Preferences.model_validate(data)
            except pydantic.ValidationError as exc:
                _, msg = _first_error(exc)
                shown = value if len(value) <= 60 else value[:57] + "..."
                raise ValidationError(
                    f"invalid value for {name}: {shown!r}: {msg}",
                    {"key": name},
                    f"See `vibeml config show` for the current settings; {self._describe(name)}.",
                ) from None
            _check_known_names(new, {name})
            self._write(new)
        log.info("preference %s set", name)
        return new

    def update(self, **values: Any) -> Preferences:
        """Set several typed values at once; all are validated together before anything is written.

        Raises:
            ConfigurationError: Unknown key, an invalid value or combination, or a damaged file; the file
                is then left exactly as it was.
        """
        names = {self._known_key(k): v for k, v in values.items()}
        with self._locked():
            data = self._read_data()
            self._validate_file(data)
            data.update(names)
            try:
                new = Preferences.model_validate(data)
            except pydantic.ValidationError as exc:
                where, msg = _first_error(exc)
                raise ValidationError(
                    f"invalid budget settings: {where}: {msg}",
                    {"keys": sorted(names)},
                    "Nothing was changed; see `vibeml budget show` for the current settings.",
                ) from None
            _check_known_names(new, set(names))
            self._write(new)
        return new

    def unset(self, key: str) -> Preferences:
        """Remove ``key`` from the file so its default applies again. Returns the new preferences.

        Raises:
            ConfigurationError: Unknown key or a damaged file (left as it was).
        """
        name = self._known_key(key)
        with self._locked():
            data = self._read_data()
            current = self._validate_file(data)
            if name not in data:
                return current
            del data[name]
            try:
                new = Preferences.model_validate(data)
            except pydantic.ValidationError as exc:  # unreachable today (defaults never conflict); kept safe
                where, msg = _first_error(exc)
                raise ValidationError(f"cannot unset {name}: {where}: {msg}", {"key": name}) from None
            self._write(new)
        return new

    # ------------------------------------------------------------------------------ internals

    def _describe(self, name: str) -> str:
        info = Preferences.model_fields[name]
        default = "unset" if info.default is None else repr(info.default)
        return f"{name}: {info.description or 'see docs/credentials.md'} (default: {default})"

    def _known_key(self, key: str) -> str:
        name = key.strip().replace("-", "_")
        if name not in Preferences.model_fields:
            near = difflib.get_close_matches(name, self.keys(), n=1)
            hint = f"Did you mean {near[0]!r}? " if near else ""
            raise ConfigurationError(
                f"unknown preference {key[:60]!r}",
                {"key": key[:60]},
                f"{hint}Known keys: {', '.join(self.keys())}.",
            )
        return name

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize read-modify-write across threads and processes."""
        from filelock import FileLock, Timeout

        with self._mutex:
            ensure_private_dir(self.config_dir)
            lock = FileLock(str(self.config_dir / LOCK_FILENAME), timeout=30, mode=0o600)
            try:
                lock.acquire()
            except Timeout as exc:
                raise ConfigurationError(
                    "another VibeML process is changing the preferences", {"path": str(self.path)}, "Retry shortly."
                ) from exc
            try:
                yield
            finally:
                lock.release()

    def _damaged(self, reason: str) -> ConfigurationError:
        return ConfigurationError(
            f"the preferences file {self.path} {reason}",
            {"path": str(self.path)},
            f"Fix it by hand, or move it aside (mv '{self.path}' '{self.path}.broken') to start from the "
            "defaults. Nothing was changed.",
        )

    def _read_data(self) -> dict[str, Any]:
        try:
            with self.path.open("rb") as fh:
                raw = fh.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._damaged(f"cannot be read: {exc.strerror or exc}") from exc
        if len(raw) > _MAX_FILE_BYTES:
            raise self._damaged("is far too large to be a preferences file")
        try:
            return tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise self._damaged("is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise self._damaged(f"is not valid TOML ({exc})") from None

    def _validate_file(self, data: Mapping[str, Any]) -> Preferences:
        try:
            return Preferences.model_validate(data)
        except pydantic.ValidationError as exc:
            where, msg = _first_error(exc)
            raise self._damaged(f"has an invalid setting: {where}: {msg}") from None

    def _write(self, prefs: Preferences) -> None:
        data = prefs.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        ordered = {k: data[k] for k in Preferences.model_fields if k in data}
        text = _HEADER + _dumps(ordered)
        try:
            atomic_write_bytes(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the preferences file {self.path}: {exc.strerror or exc}",
                {"path": str(self.path)},
                "The previous file was left as it was. Check free disk space and permissions.",
            ) from exc
