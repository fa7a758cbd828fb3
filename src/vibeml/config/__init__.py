"""The user's configuration: encrypted credentials and validated preferences, under one config dir
(``Settings.config_dir``: ``$VIBEML_CONFIG_DIR``, else ``$VIBEML_HOME/config`` when ``VIBEML_HOME`` is set,
else the platform's user config dir, e.g. ``~/.config/vibeml``).

Names are imported lazily: the launch and estimate paths need preferences, not the crypto stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vibeml._lazy import lazy_exports

_EXPORTS = {
    "KNOWN_CREDENTIALS": "vibeml.config.credentials",
    "CredentialCheck": "vibeml.config.credentials",
    "CredentialInfo": "vibeml.config.credentials",
    "CredentialManager": "vibeml.config.credentials",
    "PassphraseRequiredError": "vibeml.config.credentials",
    "Preferences": "vibeml.config.preferences",
    "PreferencesStore": "vibeml.config.preferences",
    "mask": "vibeml.config.credentials",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from vibeml.config.credentials import (
        KNOWN_CREDENTIALS,
        CredentialCheck,
        CredentialInfo,
        CredentialManager,
        PassphraseRequiredError,
        mask,
    )
    from vibeml.config.preferences import Preferences, PreferencesStore


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
