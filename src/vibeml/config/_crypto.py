"""The credential store's on-disk envelope and its key sources (OS keyring, scrypt, key file).

Envelope (JSON, ASCII)::

    {"format": "vibeml-credentials", "version": 1, "cipher": "AES-256-GCM",
     "key_source": "passphrase" | "keyring" | "keyfile",
     "kdf": {"name": "scrypt", "salt": b64(16 random bytes), "n": 131072, "r": 8, "p": 1},  # passphrase
     "key_id": 32 hex chars,                                                               # keyring/keyfile
     "key_check": b64(HMAC-SHA256(key, info)[:16]),
     "nonce": b64(12 random bytes, new on every write), "ciphertext": b64(AES-GCM output)}

Every field but ``nonce`` and ``ciphertext`` is the AEAD's associated data, so a changed header fails
decryption. ``cryptography`` and ``keyring`` are imported only when needed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pydantic import SecretStr

from vibeml.config._files import POSIX, atomic_write_bytes
from vibeml.exceptions import CredentialError

log = logging.getLogger(__name__)

KeySource = Literal["keyring", "passphrase", "keyfile"]

FORMAT = "vibeml-credentials"
VERSION = 1
CIPHER = "AES-256-GCM"
KEYRING_SERVICE = "vibeml"

#: scrypt cost for new stores: OWASP's recommended minimum (128 MiB, ~0.5 s on one core).
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MIN_N = 2**10  # tests go this low through the constructor; the default never does
SCRYPT_MAX_MEMORY = 2**30  # refuse parameters (e.g. from a doctored header) that need more than 1 GiB
MAX_STORE_BYTES = 8 * 2**20
_KEY_CHECK_INFO = b"vibeml-credentials/key-check/v1"
_KEY_ID = re.compile(r"[0-9a-f]{32}")

Credentials = dict[str, dict[str, dict[str, str]]]


class Corrupt(Exception):
    """The envelope, payload or key file is not what we wrote; the caller names the file."""


@dataclass(repr=False)
class Unlocked:
    """A store's header and data key, ready to re-encrypt. Its repr never shows the key."""

    header: dict[str, Any]  # everything but nonce and ciphertext
    key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"<unlocked {self.header.get('key_source')} key>"


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(value: Any, what: str, *, size: int | None = None, min_size: int = 1) -> bytes:
    if not isinstance(value, str):
        raise Corrupt(f"{what} is missing")
    try:
        out = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise Corrupt(f"{what} is not valid base64") from exc
    if (size is not None and len(out) != size) or len(out) < min_size:
        raise Corrupt(f"{what} has the wrong length")
    return out


def key_check(key: bytes) -> str:
    """A short MAC of a constant under ``key``: tells a wrong key from a damaged file.

    It reveals nothing the GCM tag doesn't: testing a passphrase guess against either costs one scrypt.
    """
    return b64e(hmac.new(key, _KEY_CHECK_INFO, hashlib.sha256).digest()[:16])


def check_scrypt_params(n: int, r: int, p: int) -> bool:
    return n >= 2 and not n & (n - 1) and 1 <= r <= 64 and 1 <= p <= 16 and 128 * n * r <= SCRYPT_MAX_MEMORY


def _aad(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    """Check the envelope; return ``(header, nonce, ciphertext)``.

    Raises:
        Corrupt: With a reason a user can read.
    """
    if len(raw) > MAX_STORE_BYTES:
        raise Corrupt("it is far larger than a credential store can be")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Corrupt("it is not a VibeML credential store (not JSON)") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise Corrupt("it is not a VibeML credential store (no format marker)")
    version = doc.get("version")
    if version != VERSION:
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise Corrupt(f"it was written by a newer VibeML (format version {version}); upgrade VibeML")
        raise Corrupt(f"unknown format version {str(version)[:20]!r}")
    if doc.get("cipher") != CIPHER:
        raise Corrupt(f"unknown cipher {str(doc.get('cipher'))[:20]!r}")
    source = doc.get("key_source")
    if source not in get_args(KeySource):
        raise Corrupt(f"unknown key source {str(source)[:20]!r}")
    header: dict[str, Any] = {k: doc[k] for k in ("format", "version", "cipher", "key_source")}
    b64d(doc.get("key_check"), "the key check", size=16)
    header["key_check"] = doc["key_check"]
    if source == "passphrase":
        kdf = doc.get("kdf")
        if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
            raise Corrupt("the scrypt parameters are missing")
        b64d(kdf.get("salt"), "the salt", min_size=16)
        n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (n, r, p)):
            raise Corrupt("the scrypt parameters are not integers")
        if not check_scrypt_params(cast(int, n), cast(int, r), cast(int, p)):
            raise Corrupt("the scrypt parameters are out of range")
        header["kdf"] = {"name": "scrypt", "salt": kdf["salt"], "n": n, "r": r, "p": p}
    else:
        key_id = doc.get("key_id")
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise Corrupt("the key id is missing")
        header["key_id"] = key_id
    nonce = b64d(doc.get("nonce"), "the nonce", size=12)
    ciphertext = b64d(doc.get("ciphertext"), "the ciphertext", min_size=16)
    return header, nonce, ciphertext


def decrypt(key: bytes, header: Mapping[str, Any], nonce: bytes, ciphertext: bytes) -> Credentials:
    """Decrypt and check the payload.

    Raises:
        Corrupt: The integrity check fails or the payload is not ours.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, _aad(header))
    except InvalidTag:
        raise Corrupt("its contents fail the integrity check (damaged or edited)") from None
    try:
        doc = json.loads(plaintext.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Corrupt("the decrypted contents are not valid") from None
    creds = doc.get("credentials") if isinstance(doc, dict) else None
    if not isinstance(creds, dict) or not all(
        isinstance(types, dict) and all(isinstance(e, dict) and isinstance(e.get("value"), str) for e in types.values())
        for types in creds.values()
    ):
        raise Corrupt("the decrypted contents are not valid")
    return cast(Credentials, creds)


def encrypt(unlocked: Unlocked, creds: Credentials) -> bytes:
    """The full envelope for ``creds``, with a fresh nonce (a GCM nonce must never repeat under a key)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    # ensure_ascii keeps every string (lone surrogates included) representable and round-trippable.
    plaintext = json.dumps({"credentials": creds}, ensure_ascii=True, sort_keys=True).encode("ascii")
    nonce = secrets.token_bytes(12)
    ciphertext = AESGCM(unlocked.key).encrypt(nonce, plaintext, _aad(unlocked.header))
    doc = {**unlocked.header, "nonce": b64e(nonce), "ciphertext": b64e(ciphertext)}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("ascii")


def base_header(source: KeySource, key: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "cipher": CIPHER,
        "key_source": source,
        **extra,
        "key_check": key_check(key),
    }


# ------------------------------------------------------------------------------------ scrypt


def new_scrypt_kdf(n: int) -> dict[str, Any]:
    return {"name": "scrypt", "salt": b64e(secrets.token_bytes(16)), "n": n, "r": SCRYPT_R, "p": SCRYPT_P}


def derive_scrypt(passphrase: SecretStr, kdf: Mapping[str, Any]) -> bytes:
    """The 32-byte data key for ``passphrase`` under the stored scrypt parameters."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    salt = base64.b64decode(kdf["salt"])
    scrypt = Scrypt(salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
    return scrypt.derive(passphrase.get_secret_value().encode("utf-8", "surrogatepass"))


# ------------------------------------------------------------------------------------ keyring


def keyring_backend() -> Any | None:
    """The OS keyring when a usable one exists, else ``None`` (keyring is an optional dependency)."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:
        return None
    try:
        backend = keyring.get_keyring()
        priority = float(getattr(backend, "priority", 0))
    except Exception:
        return None
    if isinstance(backend, fail.Keyring) or priority <= 0:
        return None
    return backend


def _keyring_or_fail() -> Any:
    backend = keyring_backend()
    if backend is None:
        raise CredentialError(
            "no usable OS keyring on this machine",
            recovery_suggestion="Use a passphrase (VIBEML_CREDENTIAL_BACKEND=passphrase with VIBEML_PASSPHRASE), "
            "or install and unlock a keyring (macOS Keychain, Windows Credential Locker, GNOME Keyring, KWallet).",
        )
    return backend


def _keyring_user(key_id: str) -> str:
    return f"credentials-key:{key_id}"


def keyring_get(key_id: str, store: Path) -> bytes:
    """The data key for ``key_id`` from the OS keyring."""
    backend = _keyring_or_fail()
    try:
        encoded = backend.get_password(KEYRING_SERVICE, _keyring_user(key_id))
    except Exception as exc:  # keyring backends raise their own types
        raise CredentialError(
            f"the OS keyring refused to give the credential store key ({type(exc).__name__})",
            {"key_id": key_id},
            "Unlock your keyring (log in to the desktop session) and retry.",
        ) from None
    if not encoded:
        raise CredentialError(
            "the credential store's key is not in the OS keyring",
            {"path": str(store), "key_id": key_id},
            "Nothing was changed. If the keyring entry was deleted the values cannot be recovered: "
            f"move '{store}' aside and store the credentials again.",
        )
    try:
        return b64d(encoded, "the keyring entry", size=32)
    except Corrupt as exc:
        raise CredentialError(f"the OS keyring entry for the credential store is damaged: {exc}") from None


def keyring_set(key_id: str, key: bytes) -> None:
    backend = _keyring_or_fail()
    try:
        backend.set_password(KEYRING_SERVICE, _keyring_user(key_id), b64e(key))
    except Exception as exc:
        raise CredentialError(
            f"the OS keyring refused to store the credential store key ({type(exc).__name__})",
            recovery_suggestion="Unlock your keyring, or use VIBEML_CREDENTIAL_BACKEND=passphrase.",
        ) from None


# ------------------------------------------------------------------------------------ key file


def keyfile_read(path: Path) -> tuple[str, bytes] | None:
    """``(key_id, key)`` from the key file, ``None`` when there is none."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(4096)
            if POSIX and stat.S_IMODE(os.fstat(fh.fileno()).st_mode) & 0o077:
                log.warning("the credential key file %s is readable by other users; `chmod 600` it", path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialError(f"cannot read the key file {path}: {exc.strerror or exc}", {"path": str(path)}) from exc
    try:
        doc = json.loads(raw.decode("ascii"))
        key_id = doc["key_id"]
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise Corrupt("bad key id")
        return key_id, b64d(doc["key"], "the key", size=32)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, Corrupt):
        raise CredentialError(
            f"the key file {path} is damaged", {"path": str(path)}, "Restore it from a backup; nothing was changed."
        ) from None


def keyfile_get(path: Path, key_id: str) -> bytes:
    found = keyfile_read(path)
    if found is None:
        raise CredentialError(
            f"the key file {path} is missing",
            {"path": str(path)},
            "Restore it from a backup; without it the stored values cannot be recovered.",
        )
    if found[0] != key_id:
        raise CredentialError(
            f"the key file {path} belongs to another credential store",
            {"path": str(path), "key_id": key_id},
            "Restore the matching key file; nothing was changed.",
        )
    return found[1]


def keyfile_create(path: Path) -> tuple[str, bytes, bool]:
    """Reuse the key file if there is one (it may belong to a store moved aside), else write a new one (0600,
    atomically). Returns ``(key_id, key, created)``."""
    existing = keyfile_read(path)
    if existing is not None:
        return (*existing, False)
    key_id, key = secrets.token_hex(16), secrets.token_bytes(32)
    body = json.dumps({"key_id": key_id, "key": b64e(key), "note": "VibeML credential key: keep it private"})
    try:
        atomic_write_bytes(path, (body + "\n").encode("ascii"))
    except OSError as exc:
        raise CredentialError(f"cannot write the key file {path}: {exc.strerror or exc}", {"path": str(path)}) from exc
    return key_id, key, True
