"""`vibeml config …` through the real Typer app: secrets come in only by prompt or stdin, and no command's
output (tables, JSON, errors) ever contains one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vibeml.cli.config import register
from vibeml.config.credentials import CredentialManager

PASSPHRASE = "cli test passphrase"
VAST = "0123456789abcdef" * 4
HF = "hf_" + "Q" * 34 + "w9z1"
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test root."""

    register(app)
    return app


APP = _app()


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
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config dir with an (empty) passphrase store made at a low scrypt cost, so tests stay fast."""
    path = tmp_path / "cfg"
    monkeypatch.setenv("VIBEML_CONFIG_DIR", str(path))
    monkeypatch.setenv("VIBEML_PASSPHRASE", PASSPHRASE)
    mgr = CredentialManager(path, passphrase=PASSPHRASE, scrypt_n=2**10)
    mgr.store_credential("init", "x", "placeholder")
    mgr.delete_credential("init", "x")
    return path


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(APP, ["config", *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def _assert_clean(*outputs: str) -> None:
    blob = "\n".join(outputs)
    for secret in (VAST, HF, PASSPHRASE):
        assert secret not in blob
    assert "Traceback" not in blob


def test_set_credential_from_stdin_then_show(cfg: Path) -> None:
    code, out, err = invoke("set-credential", "vast", "api_key", input=VAST + "\n")
    assert code == 0, err
    assert "Stored vast/api_key (…cdef)" in out
    code, out2, err2 = invoke("set-credential", "hf", "token", input=f"  {HF}  \n")
    assert code == 0, err2
    assert CredentialManager(cfg, passphrase=PASSPHRASE).get_credential("huggingface", "token") is not None
    code, shown, err3 = invoke("show")
    assert code == 0, err3
    assert "huggingface" in shown and "hf_…w9z1" in shown and "…cdef" in shown
    code, as_json, err4 = invoke("show", "--json")
    payload = json.loads(as_json)
    assert {c["masked"] for c in payload["credentials"]} == {"…cdef", "hf_…w9z1"}
    assert payload["credentials_key_source"] == "passphrase" and payload["credentials_locked"] is False
    _assert_clean(out, err, out2, err2, shown, err3, as_json, err4)


def test_hidden_prompt_on_a_terminal(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vibeml.cli.config._stdin_is_tty", lambda: True)
    monkeypatch.delenv("VIBEML_PASSPHRASE")
    # First the value, then the store's passphrase: both asked for with hidden input.
    code, out, err = invoke("set-credential", "vast", "api_key", input=f"{VAST}\n{PASSPHRASE}\n")
    assert code == 0, out + err
    assert "input hidden" in out
    assert CredentialManager(cfg, passphrase=PASSPHRASE).get_credential("vast", "api_key") is not None
    _assert_clean(out, err)


def test_value_argument_needs_the_insecure_flag(cfg: Path) -> None:
    code, out, err = invoke("set-credential", "vast", "api_key", "--value", VAST)
    assert code == 2
    assert "shell history" in err and "--insecure-value" in err
    assert CredentialManager(cfg, passphrase=PASSPHRASE).get_credential("vast", "api_key") is None
    _assert_clean(out, err)
    code, out, err = invoke("set-credential", "vast", "api_key", "--insecure-value")
    assert code == 2 and "only with --value" in err
    code, out, err = invoke("set-credential", "vast", "api_key", "--value", VAST, "--insecure-value", "--json")
    assert code == 0, err
    assert json.loads(out)["check"]["masked"] == "…cdef"
    _assert_clean(out, err)


def test_empty_stdin_is_refused(cfg: Path) -> None:
    code, _, err = invoke("set-credential", "vast", "api_key", input="\n")
    assert code == 2 and "empty" in err


def test_check_and_delete(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("set-credential", "vast", "api_key", input=VAST)
    code, out, err = invoke("check-credentials")
    assert code == 0, out + err
    assert "vast" in out and "ok" in out and "missing" in out
    code, out, _ = invoke("check-credentials", "--provider", "wandb")
    assert code == 7  # asked for a provider that has nothing
    invoke("set-credential", "huggingface", "token", input="not-a-real-token")
    code, out, err = invoke("check-credentials", "--json")
    report = json.loads(out)
    assert code == 7 and report["ok"] is False
    assert report["providers"]["huggingface"]["token"]["valid_format"] is False
    monkeypatch.setenv("HF_TOKEN", HF)
    code, out, err = invoke("delete-credential", "huggingface", "token")
    assert code == 0 and "Deleted huggingface/token" in out
    code, out, err = invoke("delete-credential", "huggingface", "token", "--json")
    assert code == 0 and json.loads(out)["deleted"] is False
    code, out, err = invoke("check-credentials", "--json")
    payload = json.loads(out)
    assert code == 0, out
    assert payload["providers"]["huggingface"]["token"]["source"] == "env:HF_TOKEN"
    _assert_clean(out, err)


def test_preferences_set_show_unset(cfg: Path) -> None:
    code, out, _ = invoke("set", "max_cost_per_job", "5")
    assert code == 0 and "max_cost_per_job = 5.0" in out
    assert invoke("set", "use-spot", "yes")[0] == 0
    code, out, _ = invoke("show", "--json")
    payload = json.loads(out)
    assert payload["preferences"]["use_spot"] is True
    assert payload["preferences_set"] == ["max_cost_per_job", "use_spot"]
    code, out, _ = invoke("unset", "use_spot")
    assert code == 0 and "use_spot = false (default)" in out


def test_invalid_set_exits_2_and_changes_nothing(cfg: Path) -> None:
    invoke("set", "max_cost_per_job", "5")
    before = (cfg / "config.toml").read_bytes()
    for args in (("set", "monthly_budget", "1"), ("set", "use_spot", "maybe"), ("set", "gpu", "H100")):
        code, out, err = invoke(*args)
        assert code == 2, (args, out, err)
        assert "What to do:" in err and "Traceback" not in err
    code, out, _ = invoke("set", "use_spot", "maybe", "--json")
    assert code == 2 and json.loads(out)["error"] == "ValidationError"
    assert (cfg / "config.toml").read_bytes() == before


def test_corrupt_store_exits_7_and_is_untouched(cfg: Path) -> None:
    invoke("set-credential", "vast", "api_key", input=VAST)
    store = cfg / "credentials.enc"
    store.write_bytes(store.read_bytes()[:-40])
    before = store.read_bytes()
    for args, stdin in ((("show",), None), (("set-credential", "vast", "api_key"), HF), (("check-credentials",), None)):
        code, out, err = invoke(*args, input=stdin)
        assert code == 7, (args, out, err)
        assert "cannot be read" in err and "What to do:" in err
        _assert_clean(out, err)
    assert store.read_bytes() == before


def test_wrong_passphrase_and_locked_store(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("set-credential", "vast", "api_key", input=VAST)
    monkeypatch.setenv("VIBEML_PASSPHRASE", "the wrong one")
    code, out, err = invoke("show")
    assert code == 7 and "wrong passphrase" in err
    assert "the wrong one" not in out + err
    monkeypatch.delenv("VIBEML_PASSPHRASE")
    code, out, err = invoke("show")  # no passphrase, no terminal: preferences still shown
    assert code == 0 and "passphrase-locked" in out
    code, out, err = invoke("set-credential", "vast", "api_key", input=VAST)
    assert code == 7 and "VIBEML_PASSPHRASE" in err
    _assert_clean(out, err)


def test_new_store_uses_the_full_scrypt_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEML_CONFIG_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv("VIBEML_PASSPHRASE", PASSPHRASE)
    code, _, err = invoke("set-credential", "vast", "api_key", input=VAST)
    assert code == 0, err
    assert json.loads((tmp_path / "fresh" / "credentials.enc").read_text())["kdf"]["n"] == 2**17


def test_import_is_light() -> None:
    code = (
        "import sys, vibeml.cli.config; "
        "heavy = [m for m in ('torch', 'transformers', 'cryptography', 'keyring', 'vibeml.config.credentials') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
