"""Preferences: validated TOML, atomic writes; an invalid change or a damaged file changes nothing."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from vibeml._compat import tomllib
from vibeml.config.preferences import Preferences, PreferencesStore, dump_flat_toml
from vibeml.exceptions import ConfigurationError

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def store(cfg: Path) -> PreferencesStore:
    return PreferencesStore(cfg)


def test_defaults_without_a_file(store: PreferencesStore, cfg: Path) -> None:
    prefs = store.load()
    assert prefs == Preferences()
    assert prefs.default_backend == "local" and prefs.budget_warning_threshold == 0.8
    assert not cfg.exists()  # loading creates nothing


def test_set_parses_types_and_round_trips(store: PreferencesStore) -> None:
    store.set("use_spot", "true")
    store.set("max-cost-per-job", "12.5")  # hyphens accepted
    store.set("monthly_budget", "100")
    store.set("default_gpu_count", "2")
    store.set("budget_warning_threshold", "0.5")
    prefs = store.set("default_gpu", " H100 ")
    assert prefs.use_spot is True and prefs.max_cost_per_job == 12.5 and prefs.monthly_budget == 100.0
    assert prefs.default_gpu_count == 2 and prefs.budget_warning_threshold == 0.5 and prefs.default_gpu == "H100"
    on_disk = tomllib.loads(store.path.read_text())
    assert on_disk == {
        "default_gpu": "H100",
        "default_gpu_count": 2,
        "use_spot": True,
        "max_cost_per_job": 12.5,
        "monthly_budget": 100.0,
        "budget_warning_threshold": 0.5,
    }
    assert PreferencesStore(store.config_dir).load() == prefs


def test_unset_restores_the_default(store: PreferencesStore) -> None:
    store.set("use_spot", "yes")
    store.set("default_gpu", "A100")
    prefs = store.unset("use_spot")
    assert prefs.use_spot is False
    assert "use_spot" not in tomllib.loads(store.path.read_text())
    before = store.path.read_bytes()
    assert store.unset("use_spot").use_spot is False  # already unset: nothing written
    assert store.path.read_bytes() == before


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("use_spot", "maybe", "use_spot"),
        ("max_cost_per_job", "-1", "greater than 0"),
        ("max_cost_per_job", "0", "greater than 0"),
        ("max_cost_per_job", "nan", "finite"),
        ("max_cost_per_job", "inf", "finite"),
        ("max_cost_per_job", "five dollars", "number"),
        ("monthly_budget", "1", "exceeds monthly_budget"),  # below the per-job cap set first
        ("budget_warning_threshold", "1.5", "less than or equal to 1"),
        ("budget_warning_threshold", "-0.1", "greater than or equal to 0"),
        ("default_gpu_count", "0", "greater than or equal to 1"),
        ("default_gpu_count", "1.5", "integer"),
        ("default_backend", "Not A Name!", "pattern"),
        ("default_gpu", "", "pattern"),
        ("default_workflow", "x" * 200, "pattern"),
    ],
)
def test_invalid_set_changes_nothing(store: PreferencesStore, key: str, value: str, needle: str) -> None:
    store.set("max_cost_per_job", "5")
    before = store.path.read_bytes()
    with pytest.raises(ConfigurationError) as info:
        store.set(key, value)
    assert needle in str(info.value)
    assert key in str(info.value)
    assert info.value.recovery_suggestion
    assert store.path.read_bytes() == before
    assert [p for p in store.config_dir.iterdir() if p.suffix == ".tmp"] == []


def test_unknown_key_suggests(store: PreferencesStore) -> None:
    with pytest.raises(ConfigurationError, match="unknown preference") as info:
        store.set("default_gpus", "H100")
    assert "default_gpu" in (info.value.recovery_suggestion or "")
    with pytest.raises(ConfigurationError):
        store.unset("nope")
    assert not store.path.exists()  # an invalid set on a fresh dir creates no file


def test_invalid_first_set_creates_no_file(store: PreferencesStore) -> None:
    with pytest.raises(ConfigurationError):
        store.set("use_spot", "perhaps")
    assert not store.path.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"this is = = not toml", "not valid TOML"),
        (b'use_spot = "unterminated', "not valid TOML"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"surprise = 1\n", "surprise"),  # unknown key
        (b'use_spot = "perhaps"\n', "use_spot"),
        (b"[section]\nx = 1\n", "section"),
        (b"max_cost_per_job = 50.0\nmonthly_budget = 10.0\n", "exceeds"),
    ],
)
def test_damaged_file_is_reported_and_never_reset(store: PreferencesStore, content: bytes, needle: str) -> None:
    store.config_dir.mkdir(parents=True)
    store.path.write_bytes(content)
    for action in (store.load, lambda: store.set("use_spot", "true"), lambda: store.unset("use_spot")):
        with pytest.raises(ConfigurationError, match=needle) as info:
            action()
        assert str(store.path) in str(info.value)
        assert "Nothing was changed" in (info.value.recovery_suggestion or "")
    assert store.path.read_bytes() == content


@posix_only
def test_modes(store: PreferencesStore) -> None:
    old = os.umask(0)
    try:
        store.set("use_spot", "true")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.config_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_failed_write_keeps_old_file(store: PreferencesStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.set("default_gpu", "H100")
    before = store.path.read_bytes()

    def boom(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(ConfigurationError, match="cannot write"):
        store.set("default_gpu", "A100")
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert [p for p in store.config_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_save_validates_and_writes_only_set_fields(store: PreferencesStore) -> None:
    store.save(Preferences(use_spot=True, monthly_budget=50))
    assert tomllib.loads(store.path.read_text()) == {"use_spot": True, "monthly_budget": 50.0}
    with pytest.raises(pydantic.ValidationError):
        Preferences(colour="blue")  # type: ignore[call-arg]
    bad = Preferences.model_construct(budget_warning_threshold=3.0, _fields_set={"budget_warning_threshold"})
    before = store.path.read_bytes()
    with pytest.raises(ConfigurationError, match="budget_warning_threshold"):
        store.save(bad)
    assert store.path.read_bytes() == before


def test_fallback_writer_when_tomli_w_is_missing(store: PreferencesStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tomli_w", None)  # import tomli_w → ImportError
    store.set("default_gpu", "A100-80GB")
    store.set("max_cost_per_job", "1e-3")
    store.set("use_spot", "on")
    assert tomllib.loads(store.path.read_text()) == {
        "default_gpu": "A100-80GB",
        "use_spot": True,
        "max_cost_per_job": 0.001,
    }


def test_flat_writer_escapes() -> None:
    data = {"a": 'quote " back \\ nl \n tab \t del \x7f nul \x00 é 🚀', "b": -3, "c": 1e300, "d": False}
    assert tomllib.loads(dump_flat_toml(data)) == data
    with pytest.raises(ValueError):
        dump_flat_toml({"bad key": 1})
    with pytest.raises(ValueError):
        dump_flat_toml({"x": float("inf")})


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("default_gpu", "H1OO", "H100"),  # the closest catalogued GPUs are suggested
        ("default_backend", "aws", "local, vast, skypilot"),
        ("default_workflow", "lora", "trl-lora"),
    ],
)
def test_names_must_exist_and_nothing_changes(store: PreferencesStore, key: str, value: str, needle: str) -> None:
    store.set("max_cost_per_job", "5")
    before = store.path.read_bytes()
    with pytest.raises(ConfigurationError) as info:
        store.set(key, value)
    assert needle in str(info.value) + (info.value.recovery_suggestion or "")
    assert store.path.read_bytes() == before
    assert store.set("default_gpu", "rtx4090").default_gpu == "rtx4090"  # any alias the catalogue knows
    assert store.set("default_backend", "vast").default_backend == "vast"
