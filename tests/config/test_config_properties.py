"""Property tests: any credential string round-trips exactly; any `set` either succeeds or raises
ConfigurationError with the file unchanged; the fallback TOML writer round-trips through tomllib."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from vibeml._compat import tomllib
from vibeml.config.credentials import CredentialManager
from vibeml.config.preferences import Preferences, PreferencesStore, dump_flat_toml
from vibeml.exceptions import ConfigurationError

_FIXTURE_OK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FIXTURE_OK
@given(value=st.text(min_size=1, max_size=300))
def test_any_credential_string_round_trips(manager: CredentialManager, value: str) -> None:
    manager.store_credential("vast", "api_key", value)
    got = manager.get_credential("vast", "api_key")
    assert got is not None and got == value


@pytest.mark.parametrize(
    "value",
    ["\n", " padded ", "line1\nline2\r\n", "\x00nul", "\ud800 lone surrogate", "🔑" * 50, "é" * 5000, '"}{\\'],
)
def test_awkward_credential_strings_round_trip(manager: CredentialManager, value: str) -> None:
    manager.store_credential("p", "t", SecretStr(value))
    got = manager.get_credential("p", "t")
    assert got is not None and got == value


_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["true", "false", "yes", "0", "1", "-1", "0.5", "1.5", "nan", "inf", "1e309", "H100", "5", ""]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
_keys = st.one_of(st.sampled_from(list(Preferences.model_fields)), st.text(max_size=20))


@_FIXTURE_OK
@given(key=_keys, value=_values)
def test_set_succeeds_or_raises_configuration_error_without_changing_the_file(cfg: Path, key: str, value: str) -> None:
    store = PreferencesStore(cfg)
    store.path.unlink(missing_ok=True)  # the fixture's dir is shared by every example
    store.set("max_cost_per_job", "5")
    before = store.path.read_bytes()
    try:
        prefs = store.set(key, value)
    except ConfigurationError:
        assert store.path.read_bytes() == before
    else:
        assert store.load() == prefs  # what was written reads back identically
        assert Preferences.model_validate(tomllib.loads(store.path.read_text())) == prefs


_toml_values = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=50),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1), _toml_values))
def test_flat_toml_writer_round_trips(data: dict[str, str | bool | int | float]) -> None:
    back = tomllib.loads(dump_flat_toml(data))
    assert back.keys() == data.keys()
    for key, value in data.items():
        if isinstance(value, float):
            assert back[key] == value or (math.copysign(1, back[key]) == math.copysign(1, value) and value == 0)
        else:
            assert back[key] == value
