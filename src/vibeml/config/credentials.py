"""The encrypted credential store (API keys, hub tokens).

One file, ``<config dir>/credentials.enc``, holds every credential, encrypted with AES-256-GCM (format in
:mod:`vibeml.config._crypto`). The 256-bit data key comes from one of three sources (docs/credentials.md):

* ``keyring``: a random key kept in the OS keyring (macOS Keychain, Windows Credential Locker, Secret
  Service). Chosen by ``backend="auto"`` when a usable keyring exists.
* ``passphrase``: derived from ``VIBEML_PASSPHRASE`` (``settings.credentials.passphrase``) or a prompt with
  scrypt (N=2**17, r=8, p=1: 128 MiB and about half a second per unlock; a random 16-byte salt per store).
  Chosen by ``"auto"`` when there is no keyring and a passphrase is given.
* ``keyfile``: a random key in ``credentials.key`` beside the store, readable only by the user (as ``gh``,
  ``huggingface-cli`` and ``llm`` keep tokens): whoever can read that file can read the credentials.
  Chosen by ``"auto"`` when there is neither a keyring nor a passphrase, with a one-time warning (when the
  key file is made) naming the stronger choices.

Files are 0600 in a 0700 directory, written atomically. A damaged or wrongly-keyed store raises
:class:`~vibeml.exceptions.CredentialError` and is never rewritten. ``get_credential`` returns the plain
``str`` (as the API reference documents); listings and checks show only masked forms, and nothing here logs
or formats a secret.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, SecretStr

from vibeml.config import _crypto as crypto
from vibeml.config._crypto import SCRYPT_N, Credentials, KeySource, Unlocked
from vibeml.config._files import POSIX, atomic_write_bytes, ensure_private_dir
from vibeml.exceptions import ConfigurationError, CredentialError

if TYPE_CHECKING:
    from vibeml.settings import Settings

__all__ = [
    "KNOWN_CREDENTIALS",
    "Backend",
    "CredentialCheck",
    "CredentialInfo",
    "CredentialManager",
    "CredentialSpec",
    "PassphraseRequiredError",
    "mask",
    "normalize_name",
]

log = logging.getLogger(__name__)

Backend = Literal["auto", "keyring", "passphrase", "keyfile"]

STORE_FILENAME = "credentials.enc"
KEYFILE_FILENAME = "credentials.key"
LOCK_FILENAME = ".credentials.lock"
_MIN_NEW_PASSPHRASE = 8
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_PROVIDER_ALIASES = {"hf": "huggingface", "hugging_face": "huggingface", "vastai": "vast", "vast.ai": "vast"}


def mask(value: str | SecretStr | None) -> str:
    """A display form showing at most a short prefix such as ``hf_`` and the last 4 characters.

    ``mask("sk-abcdef0123456789f3a9") == "sk-…f3a9"``; values shorter than 12 characters show nothing.
    """
    if value is None:
        return "(not set)"
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if len(raw) < 12 or not raw[-4:].isprintable():
        return "****"
    prefix = re.match(r"^[A-Za-z]{2,4}[_-]", raw)
    return f"{prefix.group(0) if prefix else ''}…{raw[-4:]}"


def normalize_name(value: str, what: str) -> str:
    """Lower-case and check a provider or credential-type name (``hf`` → ``huggingface``).

    Raises:
        ConfigurationError: It is not 1–64 of ``a-z 0-9 _ . -``.
    """
    name = value.strip().lower()
    if what == "provider":
        name = _PROVIDER_ALIASES.get(name, name)
    if not _NAME_RE.match(name):
        raise ConfigurationError(
            f"invalid {what} name {value[:80]!r}",
            {what.replace(" ", "_"): value[:80]},
            "Use 1–64 characters from a-z, 0-9, '_', '.', '-' (e.g. `vast api_key`, `huggingface token`).",
        )
    return name


# ------------------------------------------------------------------------------ public models


class CredentialSpec(BaseModel):
    """What a known credential looks like (format checks only; nothing is sent anywhere)."""

    model_config = ConfigDict(frozen=True)

    pattern: str
    env: tuple[str, ...]
    hint: str


#: provider → credential type → spec. Other providers may be stored too; only their presence is checked.
KNOWN_CREDENTIALS: dict[str, dict[str, CredentialSpec]] = {
    "vast": {
        "api_key": CredentialSpec(
            pattern=r"[A-Za-z0-9_-]{20,128}",
            env=("VAST_API_KEY",),
            hint="a Vast.ai API key (64 letters and digits; https://cloud.vast.ai/account/)",
        )
    },
    "huggingface": {
        "token": CredentialSpec(
            pattern=r"hf_[A-Za-z0-9]{30,}",
            env=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
            hint="a Hugging Face token starting with hf_ (https://huggingface.co/settings/tokens)",
        )
    },
    "wandb": {
        "api_key": CredentialSpec(
            pattern=r"[A-Za-z0-9_-]{40,128}",
            env=("WANDB_API_KEY",),
            hint="a Weights & Biases API key (40+ characters; https://wandb.ai/authorize)",
        )
    },
}


class CredentialInfo(BaseModel):
    """A stored credential's names, never its value (``masked`` only when asked for)."""

    model_config = ConfigDict(frozen=True)

    provider: str
    credential_type: str
    updated_at: datetime | None = None
    masked: str | None = None


class CredentialCheck(BaseModel):
    """The outcome of a presence and format check for one credential."""

    model_config = ConfigDict(frozen=True)

    provider: str
    credential_type: str
    present: bool
    source: str | None = None  # "store" or "env:NAME"
    valid_format: bool | None = None  # None: a provider whose format we don't know
    masked: str | None = None
    message: str

    @property
    def ok(self) -> bool:
        return self.present and self.valid_format is not False


class PassphraseRequiredError(CredentialError):
    """The store is passphrase-locked and no passphrase is available (no argument, env var or prompt)."""

    default_suggestion = "Set VIBEML_PASSPHRASE, or run the command in a terminal to be prompted."


# ------------------------------------------------------------------------------- the manager


class CredentialManager:
    """Store, read and check credentials, encrypted at rest. Thread-safe; safe across processes.

    Front ends build it with :meth:`from_settings` (the config dir, ``VIBEML_CREDENTIAL_BACKEND``,
    ``VIBEML_PASSPHRASE`` and the providers' variables, all from the settings). ``CredentialManager()``
    with no arguments (the seed's form) is its own front end: it reads the settings from the environment
    once, and ``fallback_env`` then names any variable of the process environment, read when asked.

    Args:
        config_dir: Directory of the store (``settings.config_dir``); omitted: the settings are read from
            the environment (``Settings()``) for it, the passphrase and the key source.
        passphrase: Passphrase for the ``passphrase`` key source (else ``prompt``).
        backend: Where the data key lives: ``"auto"`` (an existing store's own source; for a new store the OS
            keyring when usable, else the passphrase when one is given, else a key file readable only by
            the user, with a one-time warning), ``"keyring"``, ``"passphrase"`` or ``"keyfile"``.
        prompt: Called with a message to read a passphrase interactively (hiding input is the caller's job):
            to open a passphrase store, or to make one with ``backend="passphrase"`` (``"auto"`` never
            prompts for a new store).
        scrypt_n: scrypt cost for a *new* store (a power of two, 2**10 … 2**20); existing stores use their own.
        env: The variables ``fallback_env`` and the checks may read (``Settings.credential_env()``: the
            providers' ``VAST_API_KEY``, ``HF_TOKEN``, …). Omitted: the process environment, read when a
            fallback is asked for.

    Raises:
        ConfigurationError: An unknown backend or an out-of-range ``scrypt_n``.
    """

    def __init__(
        self,
        config_dir: Path | None = None,
        *,
        passphrase: str | SecretStr | None = None,
        backend: Backend | None = None,
        prompt: Callable[[str], str] | None = None,
        scrypt_n: int = SCRYPT_N,
        env: Mapping[str, str | SecretStr] | None = None,
    ) -> None:
        if config_dir is None:
            from vibeml.settings import Settings

            settings = Settings()
            config_dir = settings.config_dir
            passphrase = settings.credentials.passphrase if passphrase is None else passphrase
            backend = settings.credentials.backend if backend is None else backend
        backend = "auto" if backend is None else backend
        if backend not in get_args(Backend):
            raise ConfigurationError(
                f"unknown credential backend {str(backend)[:40]!r}",
                {"backend": str(backend)[:40]},
                "Use one of: auto, keyring, passphrase, keyfile.",
            )
        if scrypt_n < crypto.SCRYPT_MIN_N or not crypto.check_scrypt_params(scrypt_n, crypto.SCRYPT_R, crypto.SCRYPT_P):
            raise ConfigurationError(
                f"scrypt_n must be a power of two from 2**10 to 2**20, got {scrypt_n}", {"scrypt_n": scrypt_n}
            )
        self.config_dir = Path(config_dir)
        self.backend: Backend = backend
        self._passphrase = SecretStr(passphrase) if isinstance(passphrase, str) else passphrase
        self._prompted = False
        self._prompt = prompt
        self._scrypt_n = scrypt_n
        # A given mapping is held as secrets (no repr shows it); without one, the process environment is read
        # when a variable is asked for (and never held).
        self._env: dict[str, SecretStr] | None = (
            None if env is None else {k: v if isinstance(v, SecretStr) else SecretStr(v) for k, v in env.items()}
        )
        self._keys: dict[str, bytes] = {}
        self._mutex = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings, *, prompt: Callable[[str], str] | None = None) -> CredentialManager:
        """The manager the settings describe: ``settings.config_dir``, the ``credentials`` section's key
        source and passphrase, and the providers' variables found in the environment."""
        section = settings.credentials
        return cls(
            settings.config_dir,
            passphrase=section.passphrase,
            backend=section.backend,
            prompt=prompt,
            env=settings.credential_env(),
        )

    def __repr__(self) -> str:
        return f"CredentialManager(config_dir={str(self.config_dir)!r}, backend={self.backend!r})"

    __str__ = __repr__

    @property
    def path(self) -> Path:
        """The encrypted store file."""
        return self.config_dir / STORE_FILENAME

    @property
    def keyfile_path(self) -> Path:
        """The key file of the ``keyfile`` key source."""
        return self.config_dir / KEYFILE_FILENAME

    def exists(self) -> bool:
        """Whether a store file exists (reading it may still fail)."""
        return self.path.exists()

    def key_source(self) -> KeySource | None:
        """The existing store's key source (read from its header, nothing decrypted), else ``None``."""
        raw = self._read_raw()
        return None if raw is None else cast(KeySource, self._parse(raw)[0]["key_source"])

    # ------------------------------------------------------------------------------ public API

    def store_credential(self, provider: str, credential_type: str, value: str | SecretStr) -> None:
        """Encrypt and store one credential, replacing any previous value.

        Raises:
            ConfigurationError: A bad name or an empty value.
            CredentialError: The store cannot be unlocked, read or written (it is then left unchanged).
        """
        prov, ctype = normalize_name(provider, "provider"), normalize_name(credential_type, "credential type")
        secret = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(secret, str) or secret == "":
            raise ConfigurationError(
                "refusing to store an empty credential",
                {"provider": prov, "credential_type": ctype},
                f"To remove it use `vibeml config delete-credential {prov} {ctype}`.",
            )
        with self._transaction() as (creds, unlocked):
            creds.setdefault(prov, {})[ctype] = {"value": secret, "updated_at": datetime.now(timezone.utc).isoformat()}
            self._save(creds, unlocked)
        log.info("stored credential %s/%s", prov, ctype)

    def get_credential(self, provider: str, credential_type: str, fallback_env: str | None = None) -> str | None:
        """The stored value, else ``$fallback_env`` (when named and non-empty), else ``None``.

        The value is the plain ``str``, as the API reference uses it: hand it to the client that needs it and
        never log or print it (show it with :func:`mask`). A store that needs a passphrase nobody supplied also
        falls back to ``fallback_env`` when it is set.

        Raises:
            CredentialError: The store is damaged, or the key or passphrase is wrong or missing.
        """
        prov, ctype = normalize_name(provider, "provider"), normalize_name(credential_type, "credential type")
        env_value = self._env_value(fallback_env)
        try:
            creds = self._load_credentials()
        except PassphraseRequiredError:
            if env_value:
                log.debug("credential store locked; using $%s for %s/%s", fallback_env, prov, ctype)
                return env_value
            raise
        entry = creds.get(prov, {}).get(ctype)
        if entry is not None:
            return str(entry["value"])
        return env_value or None

    def delete_credential(self, provider: str, credential_type: str) -> bool:
        """Remove one credential. Returns whether it existed (deleting a missing one writes nothing)."""
        prov, ctype = normalize_name(provider, "provider"), normalize_name(credential_type, "credential type")
        if not self.exists():
            return False
        with self._transaction() as (creds, unlocked):
            if ctype not in creds.get(prov, {}):
                return False
            del creds[prov][ctype]
            if not creds[prov]:
                del creds[prov]
            self._save(creds, unlocked)
        log.info("deleted credential %s/%s", prov, ctype)
        return True

    def list_providers(self, *, with_masked: bool = False) -> list[CredentialInfo]:
        """Stored credentials by provider and type, sorted: never values; masked forms on request."""
        out: list[CredentialInfo] = []
        for prov, types in sorted(self._load_credentials().items()):
            for ctype, entry in sorted(types.items()):
                updated = None
                with contextlib.suppress(TypeError, ValueError):
                    updated = datetime.fromisoformat(str(entry.get("updated_at")))
                masked = mask(entry["value"]) if with_masked else None
                out.append(CredentialInfo(provider=prov, credential_type=ctype, updated_at=updated, masked=masked))
        return out

    def validate_credentials(self, provider: str | None = None) -> dict[str, dict[str, CredentialCheck]]:
        """Presence and format checks (no network) for the known providers and whatever is stored.

        Args:
            provider: Check only this provider.

        Returns:
            ``{provider: {credential_type: CredentialCheck}}``. A known credential that is not stored is
            looked for in its usual environment variables (``VAST_API_KEY``, ``HF_TOKEN``, …).
        """
        stored = self._load_credentials()
        if provider:
            names = [normalize_name(provider, "provider")]
        else:
            names = sorted(set(KNOWN_CREDENTIALS) | set(stored))
        report: dict[str, dict[str, CredentialCheck]] = {}
        for prov in names:
            known = KNOWN_CREDENTIALS.get(prov, {})
            have = stored.get(prov, {})
            report[prov] = {}
            for ctype in sorted(set(known) | set(have)):
                spec = known.get(ctype)
                value: str | None = None
                source: str | None = None
                if ctype in have:
                    value, source = have[ctype]["value"], "store"
                elif spec is not None:
                    var = next((v for v in spec.env if self._env_value(v)), None)
                    if var is not None:
                        value, source = self._env_value(var), f"env:{var}"
                report[prov][ctype] = _check(prov, ctype, value, source, spec)
        return report

    def _env_value(self, name: str | None) -> str | None:
        """The plain value of variable ``name`` in this manager's environment (``None``: unnamed or unset)."""
        if not name:
            return None
        if self._env is None:
            return os.environ.get(name)
        found = self._env.get(name)
        return None if found is None else found.get_secret_value()

    def credential_lookup(
        self, provider: str, credential_type: str, fallback_env: str | None = None
    ) -> Callable[[], str | None]:
        """A zero-argument callable returning the plain value, for clients with a lookup hook
        (e.g. ``VastAI(credential_lookup=manager.credential_lookup("vast", "api_key"))``)."""

        def lookup() -> str | None:
            return self.get_credential(provider, credential_type, fallback_env)

        return lookup

    # ---------------------------------------------------------------------------- store I/O

    def _corrupt(self, reason: str) -> CredentialError:
        return CredentialError(
            f"the credential store {self.path} cannot be read: {reason}",
            {"path": str(self.path)},
            "Nothing was changed. Restore the file from a backup, or move it aside "
            f"(mv '{self.path}' '{self.path}.broken') and store your credentials again with "
            "`vibeml config set-credential PROVIDER TYPE`.",
        )

    def _read_raw(self) -> bytes | None:
        try:
            with self.path.open("rb") as fh:
                raw = fh.read(crypto.MAX_STORE_BYTES + 1)
                if POSIX and stat.S_IMODE(os.fstat(fh.fileno()).st_mode) & 0o077:
                    log.warning("credential store %s is readable by other users; `chmod 600` it", self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CredentialError(
                f"cannot read the credential store {self.path}: {exc.strerror or exc}",
                {"path": str(self.path)},
                "Check the file's owner and permissions (it should be yours, mode 600).",
            ) from exc
        return raw

    def _parse(self, raw: bytes) -> tuple[dict[str, Any], bytes, bytes]:
        try:
            return crypto.parse_envelope(raw)
        except crypto.Corrupt as exc:
            raise self._corrupt(str(exc)) from None

    def _load(self) -> tuple[Credentials, Unlocked | None]:
        raw = self._read_raw()
        if raw is None:
            return {}, None
        header, nonce, ciphertext = self._parse(raw)
        key = self._key_for(header)
        try:
            creds = crypto.decrypt(key, header, nonce, ciphertext)
        except crypto.Corrupt as exc:
            raise self._corrupt(str(exc)) from None
        return creds, Unlocked(header, key)

    def _load_credentials(self) -> Credentials:
        with self._mutex:
            return self._load()[0]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[tuple[Credentials, Unlocked]]:
        """Read-modify-write under a thread lock and an inter-process file lock."""
        from filelock import FileLock, Timeout

        with self._mutex:
            ensure_private_dir(self.config_dir)
            lock = FileLock(str(self.config_dir / LOCK_FILENAME), timeout=30, mode=0o600)
            try:
                lock.acquire()
            except Timeout as exc:
                raise CredentialError(
                    "another VibeML process holds the credential store lock",
                    {"path": str(self.path)},
                    "Wait for it to finish and retry.",
                ) from exc
            try:
                creds, unlocked = self._load()
                yield creds, unlocked or self._new_key()
            finally:
                lock.release()

    def _save(self, creds: Credentials, unlocked: Unlocked) -> None:
        try:
            atomic_write_bytes(self.path, crypto.encrypt(unlocked, creds))
        except OSError as exc:
            raise CredentialError(
                f"cannot write the credential store {self.path}: {exc.strerror or exc}",
                {"path": str(self.path)},
                "The previous file was left as it was. Check free disk space and permissions.",
            ) from exc

    # ------------------------------------------------------------------------------ key sources

    def _key_for(self, header: Mapping[str, Any]) -> bytes:
        source = cast(KeySource, header["key_source"])
        if self.backend not in ("auto", source):
            raise CredentialError(
                f"the credential store {self.path} is locked with the {source} key source, not {self.backend}",
                {"path": str(self.path), "key_source": source},
                f"Use backend '{source}' (VIBEML_CREDENTIAL_BACKEND={source}) or 'auto'.",
            )
        if source == "passphrase":
            kdf = header["kdf"]
            cache_id = f"scrypt:{kdf['salt']}:{kdf['n']}:{kdf['r']}:{kdf['p']}"
        else:
            cache_id = str(header["key_id"])
        if cache_id in self._keys:
            return self._keys[cache_id]
        if source == "passphrase":
            key = crypto.derive_scrypt(self._get_passphrase(new=False), header["kdf"])
        elif source == "keyring":
            key = crypto.keyring_get(cache_id, self.path)
        else:
            key = crypto.keyfile_get(self.keyfile_path, cache_id)
        if not hmac.compare_digest(crypto.key_check(key), str(header["key_check"])):
            if source != "passphrase":
                raise CredentialError(
                    f"the key from the {source} does not open the credential store",
                    {"path": str(self.path), "key_id": cache_id},
                    "Nothing was changed. The key was replaced or belongs to another store: restore it, or "
                    f"move '{self.path}' aside and store the credentials again.",
                )
            if self._prompted:
                self._passphrase, self._prompted = None, False  # a retry prompts again
            raise CredentialError(
                "wrong passphrase for the credential store",
                {"path": str(self.path)},
                "Nothing was changed. Check VIBEML_PASSPHRASE (or what you typed) and retry. A lost passphrase "
                f"cannot be recovered: move '{self.path}' aside and store the credentials again.",
            )
        self._keys[cache_id] = key
        return key

    def _new_key(self) -> Unlocked:
        """Make the data key for a store that does not exist yet."""
        choice: KeySource
        auto = self.backend == "auto"
        # auto: the keyring, else a passphrase given to us, else the key file (never a prompt for a new store)
        without_keyring: KeySource = "passphrase" if self._has_passphrase() else "keyfile"
        if auto:
            choice = "keyring" if crypto.keyring_backend() is not None else without_keyring
        else:
            choice = cast(KeySource, self.backend)
        if choice == "keyring":
            key, key_id = secrets.token_bytes(32), secrets.token_hex(16)
            try:
                crypto.keyring_set(key_id, key)
            except CredentialError:
                if not auto:
                    raise
                log.warning("the OS keyring refused the key; the credential store will use a %s", without_keyring)
                choice = without_keyring
            else:
                return Unlocked(crypto.base_header("keyring", key, key_id=key_id), key)
        if choice == "keyfile":
            key_id, key, created = crypto.keyfile_create(self.keyfile_path)
            if auto and created:
                _keyfile_notice(self.keyfile_path, self.path)
            return Unlocked(crypto.base_header("keyfile", key, key_id=key_id), key)
        kdf = crypto.new_scrypt_kdf(self._scrypt_n)
        key = crypto.derive_scrypt(self._get_passphrase(new=True), kdf)
        return Unlocked(crypto.base_header("passphrase", key, kdf=kdf), key)

    def _has_passphrase(self) -> bool:
        return self._passphrase is not None and self._passphrase.get_secret_value() != ""

    def _get_passphrase(self, *, new: bool) -> SecretStr:
        found: SecretStr | None
        if self._passphrase is not None and self._passphrase.get_secret_value():
            found = self._passphrase
        elif self._prompt is not None:
            found = self._ask_passphrase(new)
        else:
            found = None
        if found is None:
            raise PassphraseRequiredError(
                "the credential store needs a passphrase and none was given", {"path": str(self.path)}
            )
        if new and len(found.get_secret_value()) < _MIN_NEW_PASSPHRASE:
            raise CredentialError(
                f"the passphrase is too short for a new credential store (at least {_MIN_NEW_PASSPHRASE} characters)",
                {"path": str(self.path)},
                "Choose a longer passphrase (a few random words work well).",
            )
        return found

    def _ask_passphrase(self, new: bool) -> SecretStr | None:
        assert self._prompt is not None
        try:
            if not new:
                value = self._prompt("Passphrase for the VibeML credential store")
            else:
                value = self._prompt("New passphrase for the VibeML credential store")
                if self._prompt("Repeat the passphrase") != value:
                    raise CredentialError("the two passphrases differ", recovery_suggestion="Run the command again.")
        except EOFError:
            return None
        if not value:
            return None
        self._passphrase, self._prompted = SecretStr(value), True
        return self._passphrase


def _keyfile_notice(keyfile: Path, store: Path) -> None:
    """Said once per config dir (when ``auto`` makes its key file): where the key is, and the stronger choices."""
    log.warning(
        "VibeML found no OS keyring and no passphrase, so the key of the credential store %s is kept in %s, "
        "readable only by you (as gh and huggingface-cli keep tokens): anyone who can read your files as you "
        "can read the credentials. For stronger protection set VIBEML_CREDENTIAL_BACKEND=passphrase with "
        "VIBEML_PASSPHRASE (from a secret manager), or install an OS keyring (VIBEML_CREDENTIAL_BACKEND=keyring); "
        "then move both files aside and store the credentials again.",
        store,
        keyfile,
    )


def _check(
    provider: str, ctype: str, value: str | None, source: str | None, spec: CredentialSpec | None
) -> CredentialCheck:
    if value is None:
        hint = f" (or set {' / '.join(spec.env)})" if spec else ""
        return CredentialCheck(
            provider=provider,
            credential_type=ctype,
            present=False,
            message=f"not set: `vibeml config set-credential {provider} {ctype}`{hint}",
        )
    valid: bool | None
    if spec is None:
        valid, message = None, "stored (format not checked for this provider)"
    elif re.fullmatch(spec.pattern, value):
        valid, message = True, "looks valid (format only; not checked with the provider)"
    else:
        valid, message = False, f"does not look like {spec.hint}"
    return CredentialCheck(
        provider=provider,
        credential_type=ctype,
        present=True,
        source=source,
        valid_format=valid,
        masked=mask(value),
        message=message,
    )
