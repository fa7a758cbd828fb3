"""The settings tree: one read of one environment mapping, one name per setting (old names warned about),
foreign standard names as aliases, clear errors that name the variable, everything under VIBEML_HOME."""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr
from typer.testing import CliRunner

from vibeml.backends.skypilot import SkyPilotBackend
from vibeml.backends.vast import VastBackend
from vibeml.cli.main import app
from vibeml.config.credentials import CredentialManager
from vibeml.exceptions import ConfigurationError
from vibeml.settings import DEFAULT_IMAGE, SettingDeprecationWarning, Settings

runner = CliRunner()


def test_a_mapping_is_read_instead_of_os_environ(tmp_path: Path) -> None:
    assert os.environ["VIBEML_HOME"]  # conftest sets one: a mapping without it must not see it
    mine = Settings.from_env({"VIBEML_HOME": str(tmp_path / "mine")})
    assert mine.home == tmp_path / "mine" and mine.db_path == tmp_path / "mine" / "vibeml.db"
    assert Settings.from_env({}).home != Path(os.environ["VIBEML_HOME"])
    assert Settings().home == Path(os.environ["VIBEML_HOME"])  # Settings() reads os.environ
    assert Settings.from_env({}, home=tmp_path / "kw").home == tmp_path / "kw"  # keyword arguments win


def test_sections_and_their_variables(tmp_path: Path) -> None:
    env = {
        "VIBEML_VAST_POLL_INTERVAL": "0.5",
        "VIBEML_VAST_IMAGE": "",  # empty = unset
        "VIBEML_VAST_LOG_MIRROR": "",  # …except where empty means "nothing"
        "VIBEML_REMOTE_INSTALL": "",
        "VIBEML_SKY_BUCKET": "s3://b/vibeml",
        "VIBEML_SKY_MANAGED": "0",
        "SKY_RUNTIME_DIR": str(tmp_path),
        "HF_ENDPOINT": "http://hub.test/",
        "HF_HUB_OFFLINE": "YES",
        "HF_HOME": str(tmp_path / "hf"),
        "VIBEML_CREDENTIAL_BACKEND": "KeyFile",
    }
    s = Settings.from_env(env)
    assert s.vast.poll_interval == 0.5 and s.vast.image == DEFAULT_IMAGE and s.vast.log_mirror == ""
    assert s.remote_install == ""
    assert (s.skypilot.bucket, s.skypilot.managed, s.skypilot.runtime_dir) == ("s3://b/vibeml", False, tmp_path)
    assert s.hub.endpoint == "http://hub.test" and s.hub.offline and s.hub.cache_dir == tmp_path / "hf" / "hub"
    assert Settings.from_env({**env, "HF_HUB_CACHE": str(tmp_path / "c")}).hub.cache_dir == tmp_path / "c"
    assert Settings.from_env({"HF_HUB_OFFLINE": "maybe"}).hub.offline is False  # as huggingface_hub reads it
    assert s.credentials.backend == "keyfile"
    defaults = Settings.from_env({})
    assert defaults.remote_install == "ship" and defaults.skypilot.managed is None  # the running build, never a name
    assert defaults.stop_grace_seconds == 30.0 and defaults.vast.url is None and not defaults.hub.offline


def test_foreign_names_are_aliases_and_vibemls_own_wins() -> None:
    assert Settings.from_env({"VAST_URL": "http://a"}).vast.url == "http://a"
    both = Settings.from_env({"VAST_URL": "http://a", "VIBEML_VAST_URL": "http://b"})
    assert both.vast.url == "http://b" and both.source("vast.url") == "VIBEML_VAST_URL"
    hf = Settings.from_env({"HUGGING_FACE_HUB_TOKEN": "hf_old"})
    assert hf.credentials.hf_token == SecretStr("hf_old")
    assert hf.source("credentials.hf_token") == "HUGGING_FACE_HUB_TOKEN"
    assert hf.credential_env() == {"HUGGING_FACE_HUB_TOKEN": SecretStr("hf_old")}
    assert Settings.from_env({"HF_TOKEN": "a", "HUGGING_FACE_HUB_TOKEN": "b"}).credentials.hf_token == SecretStr("a")
    keys = Settings.from_env({"VAST_API_KEY": "vk", "WANDB_API_KEY": "w"}).credential_env()
    assert {k: v.get_secret_value() for k, v in keys.items()} == {"VAST_API_KEY": "vk", "WANDB_API_KEY": "w"}
    assert "vk" not in repr(Settings.from_env({"VAST_API_KEY": "vk-secret-value"}))


def test_an_old_name_works_with_a_warning_and_loses_to_the_new_one() -> None:
    with pytest.warns(SettingDeprecationWarning, match="VIBEML_STOP_GRACE is deprecated.*VIBEML_STOP_GRACE_SECONDS"):
        assert Settings.from_env({"VIBEML_STOP_GRACE": "5"}).stop_grace_seconds == 5.0
    with pytest.warns(SettingDeprecationWarning, match="VIBEML_STOP_GRACE is ignored"):
        s = Settings.from_env({"VIBEML_STOP_GRACE": "5", "VIBEML_STOP_GRACE_SECONDS": "7"})
    assert s.stop_grace_seconds == 7.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name alone warns about nothing
        assert Settings.from_env({"VIBEML_STOP_GRACE_SECONDS": "7"}).stop_grace_seconds == 7.0
    assert issubclass(SettingDeprecationWarning, FutureWarning)  # shown to users by default


@pytest.mark.parametrize(
    ("env", "variable", "needle"),
    [
        ({"VIBEML_STOP_GRACE_SECONDS": "abc"}, "VIBEML_STOP_GRACE_SECONDS", "valid number"),
        ({"VIBEML_STOP_GRACE": "abc"}, "VIBEML_STOP_GRACE", "valid number"),  # the name the user wrote
        ({"VIBEML_VAST_MIN_RELIABILITY": "2"}, "VIBEML_VAST_MIN_RELIABILITY", "less than or equal to 1"),
        ({"VIBEML_VAST_RETRY": "1.5"}, "VIBEML_VAST_RETRY", "integer"),
        ({"VIBEML_SKY_MANAGED": "maybe"}, "VIBEML_SKY_MANAGED", "boolean"),
        ({"VIBEML_CREDENTIAL_BACKEND": "plaintext"}, "VIBEML_CREDENTIAL_BACKEND", "'keyfile'"),
    ],
)
def test_a_bad_value_is_a_configuration_error_naming_the_variable(
    env: dict[str, str], variable: str, needle: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SettingDeprecationWarning)
        with pytest.raises(ConfigurationError) as info:
            Settings.from_env(env)
    err = info.value
    assert variable in err.message and needle in err.message and err.context["variables"] == [variable]
    assert variable in (err.recovery_suggestion or "") and "docs/configuration.md" in (err.recovery_suggestion or "")
    assert err.exit_code == 2 and "pydantic" not in err.message and err.__cause__ is None


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"VIBEML_STOP_GRACE_SECONDS": "-1", "VIBEML_VAST_SEARCH_LIMIT": "0"})
    assert info.value.context["variables"] == ["VIBEML_STOP_GRACE_SECONDS", "VIBEML_VAST_SEARCH_LIMIT"]
    with pytest.raises(ConfigurationError, match="no_such_setting"):
        Settings.from_env({}, no_such_setting=1)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(var=st.sampled_from(Settings.variables()), value=st.text(st.characters(exclude_characters="\x00"), max_size=40))
@example(var=next(v for v in Settings.variables() if v.name == "VIBEML_HOME"), value="~0")  # no user "0"
@example(var=next(v for v in Settings.variables() if v.name == "VIBEML_CONFIG_DIR"), value="~nosuchuser/x")
def test_any_value_either_parses_or_names_its_variable(var: object, value: str) -> None:
    """Whatever text a variable holds, building the settings never fails with anything but a
    ConfigurationError that names exactly that variable."""
    from vibeml.settings import Variable

    assert isinstance(var, Variable)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SettingDeprecationWarning)
            Settings.from_env({var.name: value})
    except ConfigurationError as exc:
        assert exc.context["variables"] == [var.name]
        assert var.name in (exc.recovery_suggestion or "")


# ----------------------------------------------------------------------------------- VIBEML_HOME


def test_with_vibeml_home_everything_lives_under_it(tmp_path: Path) -> None:
    home = tmp_path / "vh"
    s = Settings.from_env({"VIBEML_HOME": str(home)})
    assert s.config_dir == home / "config" and s.cache_dir == home / "cache" and s.ssh_dir == home / "ssh"
    assert s.jobs_dir == home / "jobs" and s.demo_dir == home / "demo" and s.db_path.parent == home
    other = Settings.from_env({"VIBEML_HOME": str(home), "VIBEML_CONFIG_DIR": str(tmp_path / "cfg")})
    assert other.config_dir == tmp_path / "cfg"  # an explicit config dir still wins
    apart = Settings.from_env({})  # the platform's dirs (platformdirs; conftest points XDG_CONFIG_HOME at a temp dir)
    assert apart.config_dir == Path(os.environ["XDG_CONFIG_HOME"]) / "vibeml" and apart.home.name == "vibeml"


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_what_vibeml_keeps_under_its_home_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("VIBEML_HOME", str(home))
    monkeypatch.setenv("VIBEML_CREDENTIAL_BACKEND", "keyfile")
    monkeypatch.delenv("VIBEML_CONFIG_DIR", raising=False)
    result = runner.invoke(app, ["budget", "set", "--per-job", "5", "--json"])
    assert result.exit_code == 0, result.output
    CredentialManager.from_settings(Settings()).store_credential("vast", "api_key", "k" * 64)
    assert json.loads(runner.invoke(app, ["config", "show", "--json"]).stdout)["config_dir"] == str(home / "config")
    for folder in (home, home / "config"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = [home / "vibeml.db", *(home / "config").glob("credentials.*"), home / "config" / "config.toml"]
    assert len(files) == 4
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


# ----------------------------------------------------------------------------------- front ends


def test_the_cli_reports_a_bad_setting_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEML_STOP_GRACE_SECONDS", "abc")
    result = runner.invoke(app, ["jobs"])
    assert result.exit_code == 2, result.output
    assert "VIBEML_STOP_GRACE_SECONDS" in result.stderr and "What to do" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    as_json = runner.invoke(app, ["jobs", "--json"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["context"]["variables"] == ["VIBEML_STOP_GRACE_SECONDS"]
    assert runner.invoke(app, ["jobs", "--help"]).exit_code == 0  # help never needs the settings
    served = runner.invoke(app, ["mcp", "--http", "127.0.0.1:1"])
    assert served.exit_code == 2 and "VIBEML_STOP_GRACE_SECONDS" in served.stderr


def test_the_cli_warns_about_an_old_name_and_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEML_STOP_GRACE", "3")
    result = runner.invoke(app, ["jobs", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert "VIBEML_STOP_GRACE is deprecated" in result.stderr and "VIBEML_STOP_GRACE_SECONDS" in result.stderr


def test_the_mcp_server_reads_its_settings_once_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from vibeml.mcp.server import create_server

    monkeypatch.setenv("VIBEML_VAST_SPOT_WAIT", "soon")
    with pytest.raises(ConfigurationError, match="VIBEML_VAST_SPOT_WAIT"):
        create_server()
    assert create_server(settings=Settings.from_env({})) is not None


def test_backends_take_their_section() -> None:
    s = Settings.from_env({"VIBEML_VAST_SPOT_WAIT": "5", "VIBEML_SKY_BUCKET": "s3://b", "VIBEML_SKY_MANAGED": "1"})
    assert VastBackend(s).options is s.vast
    sky = SkyPilotBackend(s).options
    assert sky.bucket == "s3://b" and sky.managed is True and sky.install == s.remote_install
    assert sky.wheel_cache == s.cache_dir
    assert sky.stop_grace_seconds == 30  # the one stop grace (VIBEML_STOP_GRACE_SECONDS)
