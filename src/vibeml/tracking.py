"""``report_to``: TensorBoard, Weights & Biases or MLflow beside VibeML's own event stream.

Checked in ``prepare_launch`` before a job exists or anything is rented:

* The tracker's package must be importable where the trainer runs. On this machine that is this Python
  (the local backend runs the trainer with it); a rented machine installs VibeML's lock, which holds none
  of the trackers, so a paid backend refuses ``report_to`` rather than run without it.
* W&B needs its API key: from VibeML's credential store (``wandb api_key``), else ``WANDB_API_KEY``. It
  reaches the trainer only as a secret environment variable (like the Hugging Face token): never in the
  config, the handle, the store or a log. ``WANDB_MODE=offline`` (or ``disabled``) needs no key.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from pydantic import SecretStr

from vibeml.exceptions import ConfigurationError, CredentialError, VibeMLError

if TYPE_CHECKING:
    from vibeml.models import TrainingRequest
    from vibeml.settings import Settings

__all__ = ["TRACKER_PACKAGES", "check_report_to", "tracker_installed", "tracker_secrets"]

#: report_to value → (module whose presence transformers checks, the package to install)
TRACKER_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}
STORE_KEY = "vibeml config set-credential wandb api_key"


def tracker_installed(report_to: str) -> bool:
    """Whether this Python can import the tracker (``none`` always can)."""
    modules = TRACKER_PACKAGES.get(report_to, ((), ""))[0]
    return not modules or any(importlib.util.find_spec(m) is not None for m in modules)


def _wandb_key(settings: Settings) -> str | None:
    from vibeml.config.credentials import CredentialManager

    try:
        found = CredentialManager.from_settings(settings).get_credential("wandb", "api_key")
    except (VibeMLError, OSError) as exc:
        if settings.credentials.wandb_api_key is None:
            raise CredentialError(
                f"the W&B key could not be read from the credential store: {getattr(exc, 'message', exc)}",
                {"provider": "wandb"},
                "Fix the store (`vibeml config check-credentials`) or set WANDB_API_KEY for this launch.",
            ) from exc
        found = None
    if found:
        return found
    env = settings.credentials.wandb_api_key
    return env.get_secret_value() if env is not None else None


def check_report_to(request: TrainingRequest, *, paid: bool) -> None:
    """Refuse a tracker the trainer could not use (not installed there). Raises ``ConfigurationError``."""
    name = request.report_to
    if name == "none":
        return
    package = TRACKER_PACKAGES[name][1]
    if paid:
        raise ConfigurationError(
            f"report_to {name} cannot run on the {request.backend} backend: a rented machine installs VibeML's "
            f"lock, which does not hold {package}",
            {"report_to": name, "backend": request.backend},
            "Use --report-to none there and follow the run with `vibeml status` and `vibeml plot`, "
            f"or train locally with {package} installed.",
        )
    if not tracker_installed(name):
        raise ConfigurationError(
            f"report_to {name} needs the {package} package, which is not installed in this Python",
            {"report_to": name, "package": package},
            f"Install it (`pip install {package}`) or use --report-to none; `vibeml plot JOB` draws the curves "
            "without it.",
        )


def tracker_secrets(request: TrainingRequest, settings: Settings) -> dict[str, SecretStr]:
    """Secret environment variables the tracker needs (the W&B key), never written anywhere.

    Raises:
        CredentialError: W&B was asked for and no key is stored or set (and W&B is not offline).
    """
    if request.report_to != "wandb":
        return {}
    key = _wandb_key(settings)
    if key:
        return {"WANDB_API_KEY": SecretStr(key)}
    if (settings.credentials.wandb_mode or "").strip().lower() in ("offline", "disabled"):
        return {}
    raise CredentialError(
        "report_to wandb needs a Weights & Biases API key and none is stored or set",
        {"provider": "wandb", "credential_type": "api_key"},
        f"Store it with `{STORE_KEY}` (or set WANDB_API_KEY), or set WANDB_MODE=offline.",
    )
