"""VibeML's one settings tree, read from the environment once per front end and then passed down.

:class:`Settings` is built by the front end (the CLI's callback, the MCP server at start, ``VibeML()``
and the async API when given nothing) and handed to the service; backends and helpers receive their
section (``settings.vast``, ``settings.skypilot``, ``settings.hub``, ``settings.credentials``) and
never read the environment themselves (``tests/test_settings_contract.py`` checks it). Nothing is read at import.

Each field names its environment variable (:class:`Env`; ``Settings.variables()`` lists them all, and
docs/configuration.md documents each one):

* VibeML's own names start with ``VIBEML_`` (``env_prefix``); a section's fields default to
  ``<section prefix><FIELD>``, e.g. ``VIBEML_VAST_POLL_INTERVAL``.
* Other tools' standard names (``HF_TOKEN``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``VAST_API_KEY``,
  ``VAST_URL``, ``SKY_RUNTIME_DIR``, …) are read here too, so that a setting has one place.
* An old VibeML name still works for one release: it is read with a :class:`SettingDeprecationWarning`
  that names the new one (and is ignored, with a warning, when the new one is set too).

An empty value counts as unset, except where a field says that empty means something
(``VIBEML_REMOTE_INSTALL=""``: VibeML is already on the machine; its default ``ship`` uploads the running
build). A value that does not parse is a
:class:`~vibeml.exceptions.ConfigurationError` naming the variable, never a pydantic traceback.

When ``VIBEML_HOME`` is set, everything VibeML keeps lives under it: data (jobs, database, caches,
SSH keys) and, unless ``VIBEML_CONFIG_DIR`` says otherwise, the configuration and the credential store
(``$VIBEML_HOME/config``).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vibeml.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_IMAGE",
    "CredentialSettings",
    "Env",
    "HubSettings",
    "SettingDeprecationWarning",
    "Settings",
    "SkyPilotSettings",
    "Variable",
    "VastSettings",
]

#: The CUDA PyTorch image Vast instances run. The machine then installs the lock's torch, whose Linux wheels
#: bring their own CUDA runtime (13.0 for torch 2.13.0): the host's driver must support that version, which the
#: default of ``vast.min_cuda`` reads from the lock (:func:`vibeml.locks.cuda_floor`), never typed here.
DEFAULT_IMAGE = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"

_TRUE = frozenset({"1", "true", "yes", "on"})


class SettingDeprecationWarning(FutureWarning):
    """An old setting name was used; it works for this release only (a FutureWarning: shown to users)."""


@dataclass(frozen=True)
class Env:
    """Where a field comes from in the environment (``Annotated`` metadata on a settings field).

    Args:
        name: The variable; default ``<section prefix><FIELD>``.
        aliases: Other tools' standard names for the same thing, read (silently) when ``name`` is unset.
        deprecated: VibeML's old names, read with a :class:`SettingDeprecationWarning` for one release.
        empty: Whether an empty value is a value (else empty = unset).
        secret: Never shown, not even in an error.
    """

    name: str | None = None
    aliases: tuple[str, ...] = ()
    deprecated: tuple[str, ...] = ()
    empty: bool = False
    secret: bool = False


@dataclass(frozen=True)
class Variable:
    """One documented environment variable: the field it sets and the names it is read under."""

    name: str
    path: str
    description: str
    aliases: tuple[str, ...] = ()
    deprecated: tuple[str, ...] = ()


def _env_of(info: FieldInfo, name: str, prefix: str) -> Env:
    found = next((m for m in info.metadata if isinstance(m, Env)), Env())
    if found.name is None:
        return Env(prefix + name.upper(), found.aliases, found.deprecated, found.empty, found.secret)
    return found


def _expand_user(path: Path) -> Path:
    """``~`` and ``~user`` expanded; an unknown user is a value error (named with its variable), not a crash."""
    try:
        return path.expanduser()
    except RuntimeError as exc:  # "Could not determine home directory" for ~nosuchuser
        raise ValueError(f"cannot expand {str(path)[:40]!r}: {exc}") from None


def _lock_cuda_floor() -> float:
    from vibeml.locks import cuda_floor

    return cuda_floor()


class _Section(BaseModel):
    """A settings section: frozen, no unknown fields, its variables under ``env_prefix``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    env_prefix: ClassVar[str] = "VIBEML_"


# ------------------------------------------------------------------------------------------ sections


class VastSettings(_Section):
    """The Vast.ai backend: where the API is, and how instances are rented, watched and torn down
    (``VIBEML_VAST_<FIELD>``; ``vibeml.backends.vast.options.VastOptions`` is this class)."""

    env_prefix: ClassVar[str] = "VIBEML_VAST_"

    url: Annotated[str | None, Env("VIBEML_VAST_URL", aliases=("VAST_URL",))] = Field(
        None,
        description="Vast.ai API base URL (default https://console.vast.ai; VAST_URL is the vastai client's name).",
    )
    config_home: Annotated[Path | None, Env("XDG_CONFIG_HOME")] = Field(
        None,
        description="The config home the vastai client keeps its key file in (vastai/vast_api_key under it; "
        "default ~/.config).",
    )
    image: str = Field(DEFAULT_IMAGE, min_length=1, max_length=1024, description="Docker image.")
    min_cuda: float = Field(
        default_factory=_lock_cuda_floor,
        ge=0,
        description="Lowest cuda_max_good a host may report (default: the CUDA the locked torch is built for).",
    )
    min_reliability: float = Field(0.98, ge=0, le=1, description="Reliability floor for offers.")
    search_limit: int = Field(500, ge=1, le=10_000, description="Offers fetched per search.")
    bid_margin: float = Field(1.05, ge=1.0, le=10.0, description="Bid = min_bid × this.")
    max_rebid_factor: float = Field(
        1.25, ge=1.0, le=10.0, description="A preempted bid is raised to the new min_bid up to this × the first bid."
    )
    max_rebids: int = Field(5, ge=0, le=100, description="Re-bids per job after preemptions.")
    spot_wait: float = Field(
        900.0, ge=0, description="Seconds a preempted/stopped instance may wait to run again before it is destroyed."
    )
    poll_interval: float = Field(10.0, gt=0, description="Seconds between show_instance polls while starting.")
    start_timeout: float = Field(900.0, gt=0, description="Seconds an instance may take to reach running.")
    boot_timeout: float = Field(
        1800.0, gt=0, description="Seconds after running within which the on-instance runner must report."
    )
    remote_dir: str = Field(
        "/workspace/vibeml", min_length=1, description="Job dir on the instance (relative: under the onstart cwd)."
    )
    remote_python: str = Field("python3", min_length=1, description="Python that runs the remote runner.")
    log_mirror: Annotated[str, Env(empty=True)] = Field(
        "/proc/1/fd/1", description="Where the runner also copies its output ('' = nowhere)."
    )
    linger: float = Field(1800.0, ge=0, description="Seconds the runner waits for the client to collect artifacts.")
    input_wait: float = Field(1800.0, ge=0, description="Seconds the runner waits for uploaded inputs.")
    term_grace: float = Field(120.0, ge=0, description="SIGTERM → SIGKILL grace on the instance (seconds).")
    cap_safety: float = Field(0.95, gt=0, le=1, description="Share of max_cost / dph_total the instance may run.")
    bill_poll: float = Field(
        60.0, ge=1, le=900, description="Seconds between the instance runner's readings of its own bill."
    )
    destroy_reserve: float = Field(
        30.0, ge=0, description="Run time the instance keeps, before its budget or cap ends, for its destroy (s)."
    )
    retry: int = Field(3, ge=1, le=20, description="HTTP attempts per request.")
    http_timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request.")
    create_lookup_grace: float = Field(10.0, ge=0, description="Seconds to look for an ambiguously created instance.")
    landing_grace: float = Field(
        300.0, ge=0, description="Seconds after a create to destroy late-landing instances under its label."
    )
    logs_tail: int = Field(5000, ge=1, le=1_000_000, description="Log lines read per status poll.")
    logs_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a log to be ready.")
    logs_poll: float = Field(0.3, gt=0, description="Seconds between log-ready checks.")
    destroy_attempts: int = Field(3, ge=1, le=20, description="Rounds of destroy retries (each with HTTP retries).")
    ssh_user: str = Field("root", min_length=1, description="User VibeML logs in as on the instance.")


class SkyPilotSettings(_Section):
    """The SkyPilot backend (``VIBEML_SKY_<FIELD>``) and where SkyPilot keeps its files."""

    env_prefix: ClassVar[str] = "VIBEML_SKY_"

    bucket: str | None = Field(None, description="Bucket URL for outputs and checkpoints (e.g. s3://my-bucket/vibeml).")
    managed: bool | None = Field(
        None, description="Force managed jobs on (1) or off (0); default: managed for spot, clusters for on-demand."
    )
    runtime_dir: Annotated[Path | None, Env("SKY_RUNTIME_DIR")] = Field(
        None, description="SkyPilot's runtime folder (its catalogues are in .sky/catalogs under it; default your home)."
    )


class HubSettings(_Section):
    """The Hugging Face hub, under the hub's own variable names (read when settings are built, not when
    ``huggingface_hub`` was imported)."""

    endpoint: Annotated[str | None, Env("HF_ENDPOINT")] = Field(
        None, description="Hub URL (default https://huggingface.co)."
    )
    offline: Annotated[bool, Env("HF_HUB_OFFLINE")] = Field(
        False, description="Never reach the hub (1/true/yes/on, as huggingface_hub reads it)."
    )
    hub_cache: Annotated[Path | None, Env("HF_HUB_CACHE")] = Field(None, description="The hub's download cache.")
    hf_home: Annotated[Path | None, Env("HF_HOME")] = Field(
        None, description="The hub's home (its cache is the hub folder in it when HF_HUB_CACHE is unset)."
    )
    datasets_cache: Annotated[Path | None, Env("HF_DATASETS_CACHE")] = Field(
        None, description="The datasets library's cache (default: the datasets folder in HF_HOME)."
    )

    @field_validator("endpoint", mode="after")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return (value.rstrip("/") or None) if value else None

    @field_validator("offline", mode="before")
    @classmethod
    def _lenient_bool(cls, value: Any) -> Any:
        return value.strip().lower() in _TRUE if isinstance(value, str) else value

    @property
    def cache_dir(self) -> Path | None:
        """The hub's download cache: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the library's default."""
        return self.hub_cache or (self.hf_home / "hub" if self.hf_home else None)


class CredentialSettings(_Section):
    """The credential store's key source, and the providers' credentials found in the environment."""

    backend: Annotated[Literal["auto", "keyring", "passphrase", "keyfile"], Env("VIBEML_CREDENTIAL_BACKEND")] = Field(
        "auto",
        description=(
            "Where the store's key lives: auto (the OS keyring, else the passphrase if set, else a key file only "
            "you can read, with a one-time warning), keyring, passphrase or keyfile."
        ),
    )
    passphrase: Annotated[SecretStr | None, Env("VIBEML_PASSPHRASE", secret=True)] = Field(
        None, description="Passphrase of a passphrase-locked store (else a terminal prompts)."
    )
    vast_api_key: Annotated[SecretStr | None, Env("VAST_API_KEY", secret=True)] = Field(
        None, description="Vast.ai API key (wins over the store, as in the vastai client)."
    )
    hf_token: Annotated[SecretStr | None, Env("HF_TOKEN", aliases=("HUGGING_FACE_HUB_TOKEN",), secret=True)] = Field(
        None, description="Hugging Face token (the store's `huggingface token` wins over it)."
    )
    wandb_api_key: Annotated[SecretStr | None, Env("WANDB_API_KEY", secret=True)] = Field(
        None, description="Weights & Biases API key (checked by `vibeml config check-credentials`)."
    )
    wandb_mode: Annotated[str | None, Env("WANDB_MODE")] = Field(
        None, description="W&B's own mode: offline or disabled needs no key for `--report-to wandb`."
    )

    @field_validator("backend", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


# ------------------------------------------------------------------------------------ the source


@dataclass
class _Reading:
    """One read of an environment: the mapping, and which variable set which field."""

    env: Mapping[str, str]
    origins: dict[tuple[str, ...], str] = field(default_factory=dict)


_READING: ContextVar[_Reading | None] = ContextVar("vibeml_settings_reading", default=None)


def _sections(model: type[BaseModel], prefix: str, path: tuple[str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every leaf field: (path, FieldInfo, Env); sections are walked with their own prefix."""
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, _Section):
            yield from _sections(ann, ann.env_prefix, (*path, name))
        else:
            yield (*path, name), info, _env_of(info, name, prefix)


def _warn(message: str) -> None:
    warnings.warn(message, SettingDeprecationWarning, stacklevel=2)


class EnvironmentSource(PydanticBaseSettingsSource):
    """pydantic-settings source: the values of the tree's variables in one environment mapping
    (``os.environ`` unless ``Settings.from_env`` was given another), foreign and old names included."""

    def __init__(self, settings_cls: type[BaseSettings], reading: _Reading) -> None:
        super().__init__(settings_cls)
        self.reading = reading

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ walks the whole tree

    def __call__(self) -> dict[str, Any]:
        env = self.reading.env
        out: dict[str, Any] = {}
        for path, _info, spec in _sections(self.settings_cls, str(self.config.get("env_prefix", ""))):
            found: tuple[str, str] | None = None
            for var in (spec.name, *spec.aliases):
                value = env.get(var)
                if value is not None and (value != "" or spec.empty):
                    found = (var, value)
                    break
            for old in spec.deprecated:
                value = env.get(old)
                if value is None or (value == "" and not spec.empty):
                    continue
                if found is not None:
                    _warn(f"{old} is ignored: {found[0]} is set (unset {old}; it is the old name)")
                    continue
                _warn(f"{old} is deprecated and will stop working in the next release: use {spec.name}")
                found = (old, value)
            if found is None:
                continue
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = found[1]
            self.reading.origins[path] = found[0]
        return out


def _invalid(exc: ValidationError, reading: _Reading) -> ConfigurationError:
    """A pydantic error as one ConfigurationError naming each bad variable (secret values never shown)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    fields = {path: (info, spec) for path, info, spec in _sections(Settings, prefix)}
    problems: list[str] = []
    names: list[str] = []
    hint = ""
    for err in exc.errors(include_url=False):
        loc = tuple(str(x) for x in err["loc"])
        path = next((loc[:i] for i in range(len(loc), 0, -1) if loc[:i] in fields), loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        var = reading.origins.get(path)
        if var is None:  # a keyword argument, not the environment
            problems.append(f"{'.'.join(loc) or 'settings'}: {msg}")
            continue
        info, spec = fields[path]
        shown = "" if spec.secret else f"={reading.env.get(var, '')[:80]!r}"
        problems.append(f"{var}{shown}: {msg}")
        if not names:
            hint = f" ({info.description[:1].lower()}{info.description[1:].rstrip('.')})" if info.description else ""
        names.append(var)
    return ConfigurationError(
        "invalid setting: " + "; ".join(problems[:10]),
        {"variables": names} if names else {"fields": [p.split(":", 1)[0] for p in problems]},
        f"Fix or unset {' and '.join(names) or 'the named setting'}{hint}; docs/configuration.md lists every setting.",
    )


# ------------------------------------------------------------------------------------------ the tree


class Settings(BaseSettings):
    """Where VibeML keeps things, which endpoints it talks to, and each backend's section.

    ``Settings()`` reads ``os.environ``; ``Settings.from_env(mapping, **overrides)`` reads a mapping
    instead (tests and seeds); keyword arguments win over the environment in both.

    Raises:
        ConfigurationError: A value that does not parse or is out of range (naming its variable).
    """

    model_config = SettingsConfigDict(env_prefix="VIBEML_", frozen=True, extra="forbid")

    home: Annotated[Path, Env("VIBEML_HOME")] = Field(
        description="Root for jobs, the database, caches and SSH keys, and (by default) the config "
        "(default: the platform's user data dir, e.g. ~/.local/share/vibeml)."
    )
    config_dir: Annotated[Path, Env("VIBEML_CONFIG_DIR")] = Field(
        description="Preferences and the credential store (default: $VIBEML_HOME/config when VIBEML_HOME is "
        "set, else the platform's user config dir, e.g. ~/.config/vibeml)."
    )
    python: Annotated[str, Env("VIBEML_PYTHON")] = Field(
        default_factory=lambda: sys.executable, min_length=1, description="Python that runs the local trainer."
    )
    cpu_processes: Annotated[int, Env("VIBEML_CPU_PROCESSES")] = Field(
        0,
        ge=0,
        le=64,
        description="Local runs on a machine without a GPU: --gpu-count N may start up to this many CPU "
        "trainer processes (gloo); 0 = refuse (for tests and trials).",
    )
    stop_grace_seconds: Annotated[float, Env("VIBEML_STOP_GRACE_SECONDS", deprecated=("VIBEML_STOP_GRACE",))] = Field(
        30.0, ge=0, le=86_400, description="Seconds between SIGTERM and SIGKILL when a job is stopped."
    )
    remote_install: Annotated[str, Env("VIBEML_REMOTE_INSTALL", empty=True)] = Field(
        "ship",
        description="How VibeML gets onto a rented machine: 'ship' = a wheel of the running build is uploaded "
        "and installed; a pip requirement of your own published build (wheel URL, git+https://…, a fork's "
        "name==version); '' = already installed there. Never the 'vibeml' name on PyPI (another project).",
    )
    vast: VastSettings = Field(default_factory=VastSettings, description="The Vast.ai backend.")
    skypilot: SkyPilotSettings = Field(default_factory=SkyPilotSettings, description="The SkyPilot backend.")
    hub: HubSettings = Field(default_factory=HubSettings, description="The Hugging Face hub.")
    credentials: CredentialSettings = Field(default_factory=CredentialSettings, description="Credentials.")

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        reading = _READING.get()
        token = _READING.set(_Reading(os.environ)) if reading is None else None
        current = _READING.get() or _Reading({})
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _invalid(exc, current) from None
        finally:
            if token is not None:
                _READING.reset(token)
        given = set(values)  # a keyword argument replaced what the environment said there
        self._origins = {".".join(p): var for p, var in current.origins.items() if p[0] not in given}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then one environment mapping (no .env files, no secrets dir)."""
        return init_settings, EnvironmentSource(settings_cls, _READING.get() or _Reading(os.environ))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from an environment mapping (``os.environ`` by default); ``overrides`` win.

        Raises:
            ConfigurationError: A value that does not parse or is out of range (naming its variable).
        """
        token = _READING.set(_Reading(os.environ if env is None else env))
        try:
            return cls(**overrides)
        finally:
            _READING.reset(token)

    @model_validator(mode="before")
    @classmethod
    def _places(cls, data: Any) -> Any:
        """Default folders: with a home given, the config lives under it too."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("home") in (None, ""):
            from platformdirs import user_data_dir

            data["home"] = Path(user_data_dir("vibeml", appauthor=False))
            home_given = False
        else:
            home_given = True
        if data.get("config_dir") in (None, ""):
            if home_given:
                data["config_dir"] = Path(data["home"]) / "config"  # expanded with home, below
            else:
                from platformdirs import user_config_dir

                data["config_dir"] = Path(user_config_dir("vibeml", appauthor=False))
        return data

    @field_validator("home", "config_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return _expand_user(value)

    @classmethod
    def variables(cls) -> list[Variable]:
        """Every environment variable the tree reads, in field order (docs/configuration.md lists them)."""
        return [
            Variable(spec.name, ".".join(path), info.description or "", spec.aliases, spec.deprecated)
            for path, info, spec in _sections(cls, str(cls.model_config.get("env_prefix", "")))
        ]

    def source(self, path: str) -> str | None:
        """The variable that set the field at dotted ``path`` (``"vast.url"`` → ``"VAST_URL"``), if any."""
        return self._origins.get(path)

    def credential_env(self) -> dict[str, SecretStr]:
        """The providers' credentials found in the environment, under the variable each came from
        (``VAST_API_KEY``, ``HF_TOKEN`` or ``HUGGING_FACE_HUB_TOKEN``, ``WANDB_API_KEY``): the credential
        store falls back to these and checks them."""
        names = {v.path: v.name for v in self.variables()}
        out: dict[str, SecretStr] = {}
        for name in ("vast_api_key", "hf_token", "wandb_api_key"):
            value = getattr(self.credentials, name)
            if value is not None:
                path = f"credentials.{name}"
                out[self.source(path) or names[path]] = value
        return out

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def db_path(self) -> Path:
        return self.home / "vibeml.db"

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def ssh_dir(self) -> Path:
        return self.home / "ssh"
