"""The user's configuration: encrypted credentials and validated preferences, under one config dir
(``$VIBEML_CONFIG_DIR``, else the platform's user config dir, e.g. ``~/.config/vibeml``)."""

from __future__ import annotations

from vibeml.config._files import default_config_dir
from vibeml.config.credentials import (
    KNOWN_CREDENTIALS,
    CredentialCheck,
    CredentialInfo,
    CredentialManager,
    PassphraseRequiredError,
    mask,
)
from vibeml.config.preferences import Preferences, PreferencesStore

__all__ = [
    "KNOWN_CREDENTIALS",
    "CredentialCheck",
    "CredentialInfo",
    "CredentialManager",
    "PassphraseRequiredError",
    "Preferences",
    "PreferencesStore",
    "default_config_dir",
    "mask",
]
