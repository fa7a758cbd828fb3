"""The encrypted credential store: round trips, encryption at rest, file modes, atomic writes, and clear
errors that never reset or modify the file and never show a secret."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from vibeml.config import _crypto
from vibeml.config.credentials import (
    CredentialManager,
    PassphraseRequiredError,
    mask,
)
from vibeml.exceptions import ConfigurationError, CredentialError
from vibeml.settings import Settings

SECRET = "vk-Zx81qPLmN0aBcDeFgHiJkLmNoPqRsTuV0123f3a9"
HF = "hf_" + "a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVw"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _tmp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def _encodings(secret: str) -> list[bytes]:
    """The secret and its base64/hex forms at every 3-byte alignment (padding-free cores)."""
    raw = secret.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for shift in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            forms.append(enc(raw[shift:]).rstrip(b"=")[:-4])
    return forms


# ------------------------------------------------------------------------------- round trips


def test_round_trip_and_listing(manager: CredentialManager, make_manager: Any, passphrase: str) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    manager.store_credential("HF", "token", SecretStr(HF))  # provider alias, SecretStr input
    got = manager.get_credential("vast", "api_key")
    assert type(got) is str  # the plain value, as the API reference uses it
    assert got == SECRET
    # A fresh manager (another process) opens it with the same passphrase.
    again = make_manager(passphrase=passphrase)
    assert again.get_credential("huggingface", "token") == HF
    names = [(i.provider, i.credential_type, i.masked) for i in again.list_providers()]
    assert names == [("huggingface", "token", None), ("vast", "api_key", None)]
    masked = {i.provider: i.masked for i in again.list_providers(with_masked=True)}
    assert masked == {"huggingface": "hf_…TuVw", "vast": "vk-…f3a9"}
    assert again.key_source() == "passphrase"


def test_replace_and_delete(manager: CredentialManager) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    manager.store_credential("vast", "api_key", SECRET + "x")
    assert manager.get_credential("vast", "api_key") == SECRET + "x"
    assert manager.delete_credential("vast", "api_key") is True
    assert manager.delete_credential("vast", "api_key") is False
    assert manager.get_credential("vast", "api_key") is None
    assert manager.list_providers() == []


def test_reads_never_create_files(manager: CredentialManager, cfg: Path) -> None:
    assert manager.get_credential("vast", "api_key") is None
    assert manager.list_providers() == []
    assert manager.delete_credential("vast", "api_key") is False
    assert manager.key_source() is None
    assert not cfg.exists()


def test_empty_value_and_bad_names_refused(manager: CredentialManager, cfg: Path) -> None:
    with pytest.raises(ConfigurationError, match="empty credential"):
        manager.store_credential("vast", "api_key", "")
    for provider in ("", "with space", "../etc", "x" * 65, "Ünïcode"):
        with pytest.raises(ConfigurationError, match="invalid provider name"):
            manager.store_credential(provider, "api_key", SECRET)
    assert not (cfg / "credentials.enc").exists()


def test_default_scrypt_cost_is_not_weakened(cfg: Path, passphrase: str) -> None:
    assert (_crypto.SCRYPT_N, _crypto.SCRYPT_R, _crypto.SCRYPT_P) == (2**17, 8, 1)
    CredentialManager(cfg, passphrase=passphrase).store_credential("vast", "api_key", SECRET)
    kdf = json.loads((cfg / "credentials.enc").read_text())["kdf"]
    assert (kdf["n"], kdf["r"], kdf["p"]) == (2**17, 8, 1)
    assert len(base64.b64decode(kdf["salt"])) == 16
    with pytest.raises(ConfigurationError):
        CredentialManager(cfg, scrypt_n=1000)  # not a power of two
    with pytest.raises(ConfigurationError):
        CredentialManager(cfg, scrypt_n=2**4)  # below the floor


# ------------------------------------------------------------------------------ at rest


def test_ciphertext_contains_no_plaintext(manager: CredentialManager, cfg: Path) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    manager.store_credential("huggingface", "token", HF)
    data = (cfg / "credentials.enc").read_bytes()
    for secret in (SECRET, HF):
        for form in _encodings(secret):
            assert form not in data
    # Metadata is encrypted too: provider and type names are not in the clear.
    for name in (b"vast", b"huggingface", b"api_key", b'token"'):
        assert name not in data
    # Two writes of the same content never reuse a nonce.
    nonce1 = json.loads(data)["nonce"]
    manager.store_credential("vast", "api_key", SECRET)
    assert json.loads((cfg / "credentials.enc").read_bytes())["nonce"] != nonce1


@posix_only
def test_file_and_directory_modes(make_manager: Any, cfg: Path, passphrase: str) -> None:
    old = os.umask(0)  # modes must not depend on a friendly umask
    try:
        make_manager(passphrase=passphrase).store_credential("vast", "api_key", SECRET)
        make_manager(config_dir=cfg / "kf", backend="keyfile").store_credential("vast", "api_key", SECRET)
    finally:
        os.umask(old)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o700
    assert stat.S_IMODE((cfg / "credentials.enc").stat().st_mode) == 0o600
    assert stat.S_IMODE((cfg / "kf").stat().st_mode) == 0o700
    assert stat.S_IMODE((cfg / "kf" / "credentials.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((cfg / "kf" / "credentials.enc").stat().st_mode) == 0o600


def test_atomic_write_leaves_no_temp_files(manager: CredentialManager, cfg: Path) -> None:
    for i in range(5):
        manager.store_credential("vast", "api_key", f"{SECRET}{i}")
    assert _tmp_files(cfg) == []


@pytest.mark.parametrize("fail_at", ["replace", "fsync"])
def test_failed_write_keeps_old_file(
    manager: CredentialManager, cfg: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    before = (cfg / "credentials.enc").read_bytes()

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail_at, boom)
    with pytest.raises(CredentialError, match="cannot write") as info:
        manager.store_credential("vast", "api_key", "another-value-entirely-1234")
    monkeypatch.undo()
    assert "left as it was" in (info.value.recovery_suggestion or "")
    assert (cfg / "credentials.enc").read_bytes() == before
    assert _tmp_files(cfg) == []
    assert manager.get_credential("vast", "api_key") == SECRET


# -------------------------------------------------------------------------------- errors


def test_wrong_passphrase_is_clear_and_file_untouched(manager: CredentialManager, make_manager: Any, cfg: Path) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    path = cfg / "credentials.enc"
    before = path.read_bytes()
    wrong = make_manager(passphrase="not the passphrase")
    for action in (
        lambda: wrong.get_credential("vast", "api_key"),
        lambda: wrong.list_providers(),
        lambda: wrong.store_credential("vast", "api_key", "overwrite-attempt-123456"),
        lambda: wrong.delete_credential("vast", "api_key"),
        lambda: wrong.validate_credentials(),
    ):
        with pytest.raises(CredentialError, match="wrong passphrase") as info:
            action()
        assert "Nothing was changed" in (info.value.recovery_suggestion or "")
        assert "not the passphrase" not in str(info.value) + repr(info.value) + json.dumps(info.value.to_dict())
    assert path.read_bytes() == before
    assert manager.get_credential("vast", "api_key") == SECRET


def _flip_ciphertext(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["ciphertext"]))
    raw[3] ^= 0x01
    doc["ciphertext"] = base64.b64encode(bytes(raw)).decode()


def _tamper(field: str, value: Any) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        doc[field] = value

    return apply


def _tamper_kdf(doc: dict[str, Any]) -> None:
    doc["kdf"]["n"] = 2**11  # a different (valid) cost: the key no longer matches


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (b"", "not JSON"),
        (b"\x00\xff garbage \x13", "not JSON"),
        (b'{"format": "vibeml-credentials", "version": 1', "not JSON"),
        (b'{"hello": "world"}', "no format marker"),
        (_tamper("version", 99), "newer VibeML"),
        (_tamper("cipher", "ROT13"), "unknown cipher"),
        (_tamper("nonce", "not base64!"), "nonce"),
        (_tamper("ciphertext", None), "ciphertext"),
        (_flip_ciphertext, "integrity check"),
        (_tamper("key_source", "moon"), "unknown key source"),
        (_tamper_kdf, "wrong passphrase"),
    ],
)
def test_corrupt_store_is_clear_and_untouched(
    manager: CredentialManager, make_manager: Any, cfg: Path, passphrase: str, damage: Any, needle: str
) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    path = cfg / "credentials.enc"
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        doc = json.loads(path.read_bytes())
        damage(doc)
        path.write_text(json.dumps(doc))
    before = path.read_bytes()
    fresh = make_manager(passphrase=passphrase)
    for action in (
        lambda: fresh.get_credential("vast", "api_key"),
        lambda: fresh.store_credential("vast", "api_key", "replacement-value-123456"),
        lambda: fresh.delete_credential("vast", "api_key"),
        lambda: fresh.list_providers(),
    ):
        with pytest.raises(CredentialError, match=needle) as info:
            action()
        assert "Nothing was changed" in (info.value.recovery_suggestion or "")
        assert SECRET not in str(info.value) + repr(info.value)
    assert path.read_bytes() == before
    assert _tmp_files(cfg) == []


def test_header_tampering_is_detected(manager: CredentialManager, make_manager: Any, cfg: Path) -> None:
    """The header is authenticated: a changed salt (keeping the key check) breaks decryption too."""
    manager.store_credential("vast", "api_key", SECRET)
    path = cfg / "credentials.enc"
    doc = json.loads(path.read_bytes())
    doc["kdf"]["salt"] = base64.b64encode(os.urandom(16)).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(CredentialError):
        make_manager(passphrase="correct horse battery staple").get_credential("vast", "api_key")


def test_backend_mismatch_is_explained(manager: CredentialManager, make_manager: Any) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    with pytest.raises(CredentialError, match="locked with the passphrase key source") as info:
        make_manager(backend="keyfile").get_credential("vast", "api_key")
    assert "passphrase" in (info.value.recovery_suggestion or "")


# ----------------------------------------------------------------------------- passphrases


def test_passphrase_from_settings(make_manager: Any, cfg: Path, passphrase: str) -> None:
    make_manager(passphrase=passphrase).store_credential("vast", "api_key", SECRET)
    settings = Settings.from_env({"VIBEML_PASSPHRASE": passphrase, "VIBEML_CONFIG_DIR": str(cfg)})
    assert CredentialManager.from_settings(settings).get_credential("vast", "api_key") == SECRET
    assert make_manager(passphrase=SecretStr(passphrase)).get_credential("vast", "api_key") == SECRET
    with pytest.raises(PassphraseRequiredError):  # the process environment is not read behind the settings' back
        make_manager().get_credential("vast", "api_key")


def test_prompt_asks_twice_for_a_new_store_and_once_after(make_manager: Any, passphrase: str) -> None:
    asked: list[str] = []

    def prompt(message: str) -> str:
        asked.append(message)
        return passphrase

    mgr = make_manager(prompt=prompt, backend="passphrase")  # auto never prompts for a new store
    mgr.store_credential("vast", "api_key", SECRET)
    assert len(asked) == 2 and "Repeat" in asked[1]
    mgr.store_credential("wandb", "api_key", SECRET)  # cached: no more prompts
    assert len(asked) == 2
    asked.clear()
    assert make_manager(prompt=prompt).get_credential("vast", "api_key") == SECRET
    assert len(asked) == 1


def test_prompt_mismatch_and_short_passphrases(make_manager: Any, cfg: Path) -> None:
    answers = iter(["first passphrase", "second passphrase"])
    with pytest.raises(CredentialError, match="differ"):
        make_manager(prompt=lambda _m: next(answers), backend="passphrase").store_credential("vast", "api_key", SECRET)
    with pytest.raises(CredentialError, match="too short"):
        make_manager(passphrase="short").store_credential("vast", "api_key", SECRET)
    assert not (cfg / "credentials.enc").exists()


def test_no_passphrase_anywhere(manager: CredentialManager, make_manager: Any) -> None:
    manager.store_credential("vast", "api_key", SECRET)
    with pytest.raises(PassphraseRequiredError, match="needs a passphrase") as info:
        make_manager().get_credential("vast", "api_key")
    assert "VIBEML_PASSPHRASE" in (info.value.recovery_suggestion or "")
    assert info.value.exit_code == CredentialError.exit_code


# ------------------------------------------------------------------------------ fallback env


def test_fallback_env(manager: CredentialManager, make_manager: Any, passphrase: str) -> None:
    assert manager.get_credential("vast", "api_key", fallback_env="VAST_API_KEY") is None
    env = {"VAST_API_KEY": "from-the-environment-000"}
    with_env = make_manager(passphrase=passphrase, env=env)
    assert with_env.get_credential("vast", "api_key", "VAST_API_KEY") == "from-the-environment-000"
    manager.store_credential("vast", "api_key", SECRET)
    assert with_env.get_credential("vast", "api_key", "VAST_API_KEY") == SECRET  # stored wins
    # A locked store with nobody to unlock it still yields the environment's value.
    locked = make_manager(env=env)
    assert locked.get_credential("vast", "api_key", "VAST_API_KEY") == "from-the-environment-000"
    with pytest.raises(PassphraseRequiredError):
        make_manager(env={"VAST_API_KEY": ""}).get_credential("vast", "api_key", "VAST_API_KEY")
    assert manager.credential_lookup("vast", "api_key")() == SECRET
    assert manager.credential_lookup("wandb", "api_key")() is None


def test_explicit_env_mapping(make_manager: Any, passphrase: str) -> None:
    env = {"MY_TOKEN": "tok-from-mapping-0000"}
    mgr = make_manager(env=env, passphrase=passphrase)
    assert mgr.get_credential("x", "token", fallback_env="MY_TOKEN") == "tok-from-mapping-0000"
    mgr.store_credential("x", "token", SECRET)
    assert make_manager(env=env, passphrase=passphrase).get_credential("x", "token") == SECRET
    assert "tok-from-mapping" not in repr(vars(mgr))  # held as SecretStr


# ------------------------------------------------------------------------------ key sources


def test_keyfile_backend(make_manager: Any, cfg: Path) -> None:
    mgr = make_manager(backend="keyfile")
    mgr.store_credential("vast", "api_key", SECRET)
    assert mgr.key_source() == "keyfile"
    assert make_manager().get_credential("vast", "api_key") == SECRET  # auto follows the header
    store_bytes = (cfg / "credentials.enc").read_bytes()
    assert SECRET.encode() not in store_bytes
    (cfg / "credentials.key").rename(cfg / "moved.key")
    with pytest.raises(CredentialError, match=r"key file .* is missing"):
        make_manager().get_credential("vast", "api_key")
    assert (cfg / "credentials.enc").read_bytes() == store_bytes


def test_keyfile_of_another_store(make_manager: Any, cfg: Path) -> None:
    make_manager(backend="keyfile").store_credential("vast", "api_key", SECRET)
    other = cfg.parent / "other"
    make_manager(config_dir=other, backend="keyfile").store_credential("vast", "api_key", SECRET)
    (cfg / "credentials.key").write_bytes((other / "credentials.key").read_bytes())
    with pytest.raises(CredentialError, match="belongs to another credential store"):
        make_manager().get_credential("vast", "api_key")


def test_auto_uses_a_usable_keyring(make_manager: Any, memory_keyring: Any, cfg: Path) -> None:
    mgr = make_manager()  # no passphrase anywhere: the keyring holds the key
    mgr.store_credential("vast", "api_key", SECRET)
    assert mgr.key_source() == "keyring"
    assert make_manager().get_credential("vast", "api_key") == SECRET
    [(service, _user)] = memory_keyring.entries
    assert service == "vibeml"
    assert SECRET not in json.dumps(list(memory_keyring.entries.values()))
    before = (cfg / "credentials.enc").read_bytes()
    memory_keyring.entries.clear()
    with pytest.raises(CredentialError, match="not in the OS keyring"):
        make_manager().get_credential("vast", "api_key")
    assert (cfg / "credentials.enc").read_bytes() == before


def test_auto_without_keyring_falls_back_to_passphrase(make_manager: Any, passphrase: str) -> None:
    mgr = make_manager(passphrase=passphrase)
    mgr.store_credential("vast", "api_key", SECRET)
    assert mgr.key_source() == "passphrase"
    with pytest.raises(CredentialError, match="no usable OS keyring"):
        make_manager(config_dir=Path(str(mgr.config_dir) + "-2"), backend="keyring").store_credential(
            "vast", "api_key", SECRET
        )


@posix_only
def test_auto_without_keyring_or_passphrase_uses_a_private_key_file(
    make_manager: Any, cfg: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The gh / huggingface-cli convention: no keyring and no passphrase → a key file only the user can read,
    said once per config dir with the stronger choices named; never a prompt, never an error."""
    caplog.set_level(logging.WARNING)
    asked: list[str] = []
    mgr = make_manager(prompt=lambda m: asked.append(m) or "typed passphrase")
    mgr.store_credential("nebius", "api_key", SECRET)
    assert asked == [] and mgr.key_source() == "keyfile"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o700
    for name in ("credentials.key", "credentials.enc"):
        assert stat.S_IMODE((cfg / name).stat().st_mode) == 0o600
    assert SECRET.encode() not in (cfg / "credentials.enc").read_bytes()
    assert _tmp_files(cfg) == []
    notices = [r.getMessage() for r in caplog.records if "no OS keyring and no passphrase" in r.getMessage()]
    assert len(notices) == 1
    assert "VIBEML_CREDENTIAL_BACKEND=passphrase" in notices[0] and "VIBEML_PASSPHRASE" in notices[0]
    assert "keyring" in notices[0] and str(cfg / "credentials.key") in notices[0]
    # More writes and other managers on the same dir say nothing more; the value reads back as written.
    caplog.clear()
    mgr.store_credential("vast", "api_key", SECRET + "x")
    again = make_manager()
    again.store_credential("wandb", "api_key", SECRET)
    assert again.get_credential("nebius", "api_key") == SECRET
    assert not [r for r in caplog.records if "no OS keyring" in r.getMessage()]
    # Another config dir gets its own notice.
    make_manager(config_dir=cfg.parent / "other").store_credential("vast", "api_key", SECRET)
    assert len([r for r in caplog.records if "no OS keyring" in r.getMessage()]) == 1
    assert SECRET not in caplog.text


def test_auto_keyring_refusal_without_passphrase_uses_the_key_file(
    make_manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_crypto, "keyring_backend", lambda: object())  # "usable", but set_password fails

    def refuse(key_id: str, key: bytes) -> None:
        raise CredentialError("the OS keyring refused to store the credential store key (X)")

    monkeypatch.setattr(_crypto, "keyring_set", refuse)
    mgr = make_manager()
    mgr.store_credential("vast", "api_key", SECRET)
    assert mgr.key_source() == "keyfile"


def test_the_seed_form_without_keyring_or_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The API reference's example on a machine with no keyring and no passphrase: it stores, and reads back
    the plain string; everything stays under VIBEML_HOME."""
    caplog.set_level(logging.WARNING)
    home = tmp_path / "home"
    monkeypatch.setenv("VIBEML_HOME", str(home))
    for name in ("VIBEML_CONFIG_DIR", "VIBEML_PASSPHRASE", "VIBEML_CREDENTIAL_BACKEND", "NEBIUS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    manager = CredentialManager()
    manager.store_credential(provider="nebius", credential_type="api_key", value="your-key")
    api_key = manager.get_credential(provider="nebius", credential_type="api_key", fallback_env="NEBIUS_API_KEY")
    assert api_key == "your-key" and type(api_key) is str
    assert sorted(p.name for p in (home / "config").iterdir() if not p.name.startswith(".")) == [
        "credentials.enc",
        "credentials.key",
    ]
    assert "no OS keyring and no passphrase" in caplog.text


def test_from_settings(tmp_path: Path) -> None:
    env = {"VIBEML_CONFIG_DIR": str(tmp_path / "here"), "VIBEML_CREDENTIAL_BACKEND": " KeyFile "}
    mgr = CredentialManager.from_settings(Settings.from_env(env))
    assert mgr.config_dir == tmp_path / "here" and mgr.backend == "keyfile"
    with pytest.raises(ConfigurationError, match="VIBEML_CREDENTIAL_BACKEND") as info:
        Settings.from_env({**env, "VIBEML_CREDENTIAL_BACKEND": "plaintext"})
    assert "auto" in str(info.value)
    # With a VIBEML_HOME the store lives under it; without one, in the platform's config dir (conftest points
    # XDG_CONFIG_HOME at a temp dir).
    home = tmp_path / "home"
    assert CredentialManager.from_settings(Settings.from_env({"VIBEML_HOME": str(home)})).config_dir == home / "config"
    xdg = {"XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"]}
    assert Settings.from_env(xdg, home=home).config_dir == home / "config"
    assert CredentialManager.from_settings(Settings.from_env(xdg)).config_dir == Path(xdg["XDG_CONFIG_HOME"]) / "vibeml"


# ----------------------------------------------------------------------------- validation


def test_validate_credentials(manager: CredentialManager, make_manager: Any, passphrase: str) -> None:
    manager.store_credential("vast", "api_key", "a" * 64)
    manager.store_credential("huggingface", "token", "not-a-token-at-all")
    manager.store_credential("acme", "secret", "whatever-it-is-123")
    manager = make_manager(passphrase=passphrase, env={"WANDB_API_KEY": "w" * 40})
    report = manager.validate_credentials()
    assert set(report) == {"acme", "huggingface", "vast", "wandb"}
    vast, hf = report["vast"]["api_key"], report["huggingface"]["token"]
    assert vast.present and vast.valid_format and vast.source == "store" and vast.ok
    assert hf.present and hf.valid_format is False and "hf_" in hf.message and not hf.ok
    assert report["acme"]["secret"].valid_format is None and report["acme"]["secret"].ok
    assert report["wandb"]["api_key"].source == "env:WANDB_API_KEY"
    only = manager.validate_credentials("hf")
    assert list(only) == ["huggingface"]
    manager.delete_credential("huggingface", "token")
    missing = manager.validate_credentials("huggingface")["huggingface"]["token"]
    assert not missing.present and "set-credential huggingface token" in missing.message


def test_mask() -> None:
    assert mask("sk-abcdef0123456789f3a9") == "sk-…f3a9"
    assert mask(SecretStr(HF)) == "hf_…TuVw"
    assert mask("0123456789abcdef") == "…cdef"
    assert mask("short") == "****"
    assert mask("") == "****"
    assert mask(None) == "(not set)"


# ------------------------------------------------------------------------------- no leaks


def test_no_secret_in_reprs_logs_or_errors(
    make_manager: Any, caplog: pytest.LogCaptureFixture, passphrase: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    mgr = make_manager(passphrase=passphrase)
    mgr.store_credential("vast", "api_key", SECRET)
    mgr.store_credential("huggingface", "token", HF)
    assert mgr.get_credential("vast", "api_key") == SECRET  # the plain value goes to its caller, nowhere else
    texts = [
        repr(mgr),
        str(mgr),
        repr(vars(mgr)),
        repr(mgr.list_providers(with_masked=True)),
        repr(mgr.validate_credentials()),
        json.dumps([c.model_dump(mode="json") for t in mgr.validate_credentials().values() for c in t.values()]),
    ]
    fallback = make_manager(env={"VAST_API_KEY": SECRET})  # even a fallback read must not log it
    fallback.get_credential("vast", "api_key", fallback_env="VAST_API_KEY")
    texts.append(repr(vars(fallback)))
    for bad in (make_manager(passphrase="wrong passphrase!"), make_manager(backend="keyfile")):
        with pytest.raises(CredentialError) as info:
            bad.get_credential("vast", "api_key")
        texts += [str(info.value), repr(info.value), json.dumps(info.value.to_dict())]
    texts.append(caplog.text)
    blob = "\n".join(texts)
    for secret in (SECRET, HF, passphrase):
        assert secret not in blob


def test_threads_do_not_lose_writes(manager: CredentialManager) -> None:
    def worker(i: int) -> None:
        manager.store_credential(f"p{i}", "api_key", f"{SECRET}-{i}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i.provider for i in manager.list_providers()} == {f"p{i}" for i in range(8)}


def test_the_seed_form_with_no_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``CredentialManager()`` as the API reference writes it: settings from the environment (the store under
    VIBEML_HOME, its passphrase from VIBEML_PASSPHRASE) and ``fallback_env`` naming any variable."""
    monkeypatch.setenv("VIBEML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VIBEML_CREDENTIAL_BACKEND", "passphrase")
    monkeypatch.setenv("VIBEML_PASSPHRASE", "correct horse battery staple")
    monkeypatch.delenv("VIBEML_CONFIG_DIR", raising=False)
    monkeypatch.setenv("NEBIUS_API_KEY", "from-the-environment")
    manager = CredentialManager()
    assert manager.config_dir == tmp_path / "home" / "config" and manager.backend == "passphrase"
    found = manager.get_credential(provider="nebius", credential_type="api_key", fallback_env="NEBIUS_API_KEY")
    assert found is not None and found == "from-the-environment"
    manager.store_credential(provider="nebius", credential_type="api_key", value="your-key")
    stored = CredentialManager().get_credential("nebius", "api_key", fallback_env="NEBIUS_API_KEY")
    assert stored is not None and stored == "your-key"  # the store wins over the variable
    monkeypatch.delenv("NEBIUS_API_KEY")
    assert CredentialManager().get_credential("nebius", "other", fallback_env="NEBIUS_API_KEY") is None
    assert "from-the-environment" not in repr(manager) and "your-key" not in repr(manager)
