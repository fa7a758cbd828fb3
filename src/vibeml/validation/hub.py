"""The validators' door to the Hugging Face hub: settings, token lookup, and error translation.

Settings come from the arguments and VibeML's settings (``settings.hub``: ``HF_ENDPOINT``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``; ``settings.credentials.hf_token``: ``HF_TOKEN``), read when the settings were built,
and ``endpoint=`` is passed to every ``huggingface_hub`` call: the library reads ``HF_ENDPOINT`` once,
when it is imported. Offline mode (``HF_HUB_OFFLINE``, in the settings or already in the library) is
refused up front with an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vibeml.exceptions import (
    CloudProviderError,
    CredentialError,
    DatasetError,
    ModelNotFoundError,
    VibeMLError,
)

if TYPE_CHECKING:
    from vibeml.settings import HubSettings, Settings

__all__ = ["HubAccess", "hub_page", "is_offline"]

RepoType = Literal["model", "dataset"]
PUBLIC_HUB = "https://huggingface.co"
STORE_TOKEN = "vibeml config set-credential huggingface token"


def is_offline(hub: HubSettings | None = None) -> bool:
    """Offline when the settings say so (``HF_HUB_OFFLINE``) or it was set when huggingface_hub was imported."""
    if hub is not None and hub.offline:
        return True
    try:
        import huggingface_hub.constants as constants
    except ImportError:  # pragma: no cover - a hard dependency
        return False
    return bool(constants.HF_HUB_OFFLINE)


def hub_page(repo_id: str, repo_type: RepoType) -> str:
    """The repo's page on huggingface.co (where licences are accepted and access is requested)."""
    return f"{PUBLIC_HUB}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"


def _not_found(repo_type: RepoType, message: str, context: dict[str, Any], suggestion: str) -> VibeMLError:
    if repo_type == "dataset":
        return DatasetError(message, context, suggestion)
    return ModelNotFoundError(message, context, suggestion)


@dataclass
class HubAccess:
    """How to reach the hub: endpoint, token (and where it came from), cache folder, offline switch."""

    endpoint: str | None = None
    token: str | None = None
    token_source: str | None = None
    cache_dir: str | None = None
    offline: bool = False

    @classmethod
    def resolve(
        cls,
        endpoint: str | None = None,
        token: str | None = None,
        *,
        cache_dir: str | None = None,
        settings: Settings | None = None,
    ) -> HubAccess:
        """Settings from the arguments, then ``settings``; the token from the argument, then VibeML's
        credential store (``huggingface token``), then ``HF_TOKEN``/``HUGGING_FACE_HUB_TOKEN``, then the
        token ``hf auth login`` saved. Without ``settings`` only the arguments count (and the library's
        own defaults)."""
        hub = settings.hub if settings is not None else None
        endpoint = (endpoint or "").rstrip("/") or (hub.endpoint if hub is not None else None)
        source: str | None = "argument" if token else None
        if not token and settings is not None:
            try:
                from vibeml.config.credentials import CredentialManager

                found = CredentialManager.from_settings(settings).get_credential("huggingface", "token")
            except (VibeMLError, OSError):  # a locked or damaged store must not block validation
                found = None
            if found:
                token, source = found, "vibeml credential store"
            elif settings.credentials.hf_token is not None:
                token = settings.credentials.hf_token.get_secret_value()
                source = settings.source("credentials.hf_token") or "HF_TOKEN"
            else:
                try:
                    from huggingface_hub import get_token

                    token = get_token()
                    source = "huggingface login" if token else None
                except Exception:  # pragma: no cover - an unreadable token file
                    token = None
        if cache_dir is None and hub is not None and hub.cache_dir is not None:
            cache_dir = str(hub.cache_dir)
        offline = hub.offline if hub is not None else False
        return cls(endpoint=endpoint, token=token or None, token_source=source, cache_dir=cache_dir, offline=offline)

    @property
    def hf_token(self) -> str | bool:
        """What to pass as ``token=``: ours, or False (never a token file the user did not choose)."""
        return self.token or False

    def api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.hf_token)

    def offline_error(self, repo_id: str, repo_type: RepoType) -> VibeMLError:
        what = "model" if repo_type == "model" else "dataset"
        return _not_found(
            repo_type,
            f"cannot check hub {what} {repo_id!r}: offline mode is on (HF_HUB_OFFLINE)",
            {repo_type: repo_id, "offline": True},
            f"Unset HF_HUB_OFFLINE to reach the hub, or give a local {what} path.",
        )

    def check_online(self, repo_id: str, repo_type: RepoType) -> None:
        if self.offline or is_offline():
            raise self.offline_error(repo_id, repo_type)

    def translate(self, exc: BaseException, repo_id: str, repo_type: RepoType) -> VibeMLError:
        """A ``huggingface_hub``/network error as the VibeML error a user can act on."""
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        what = "model" if repo_type == "model" else "dataset"
        page = hub_page(repo_id, repo_type)
        ctx: dict[str, Any] = {
            repo_type: repo_id,
            "authenticated": self.token is not None,
            "credential_source": self.token_source,
        }
        if self.endpoint:
            ctx["endpoint"] = self.endpoint
        if isinstance(exc, OfflineModeIsEnabled):
            return self.offline_error(repo_id, repo_type)
        if isinstance(exc, GatedRepoError):
            status = exc.response.status_code if exc.response is not None else None
            if self.token is None:
                return CredentialError(
                    f"{what} {repo_id!r} is gated: accept its licence on the hub and use a token",
                    {**ctx, "gated": True, "status_code": status},
                    f"Accept the license at {page} and store a token: {STORE_TOKEN}",
                )
            return CredentialError(
                f"your Hugging Face token ({self.token_source}) has no access to gated {what} {repo_id!r} yet",
                {**ctx, "gated": True, "status_code": status},
                f"Request access at {page} (approval can take a while), then retry; a token of another account "
                f"can be stored with: {STORE_TOKEN}",
            )
        if isinstance(exc, RevisionNotFoundError):
            return _not_found(
                repo_type,
                f"{what} {repo_id!r} has no such revision",
                ctx,
                "Use a branch, tag or commit that exists (usually 'main').",
            )
        if isinstance(exc, RepositoryNotFoundError):
            example = "Qwen/Qwen2.5-0.5B" if what == "model" else "tatsu-lab/alpaca"
            why = (
                "or it is private and your token has no access"
                if self.token
                else "or it is private and no token was given"
            )
            return _not_found(
                repo_type,
                f"{what} {repo_id!r} was not found on the hub ({why})",
                {**ctx, "status_code": exc.response.status_code if exc.response is not None else None},
                f"Check the id (it is case-sensitive, e.g. {example}); "
                f"for a private {what}, store a token with access: {STORE_TOKEN}",
            )
        if isinstance(exc, HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else None
            text = str(exc)
            if status == 401 and "Invalid credentials" in text:
                return CredentialError(
                    f"the Hugging Face token ({self.token_source}) is invalid or expired",
                    {**ctx, "status_code": status},
                    f"Create a token at {PUBLIC_HUB}/settings/tokens and store it: {STORE_TOKEN}",
                )
            return CloudProviderError(
                f"the hub refused the request for {what} {repo_id!r}: {text.splitlines()[0] if text else status}",
                ctx,
                "Retry in a minute; check https://status.huggingface.co if it persists.",
                status_code=status,
                retryable=status is not None and status >= 500,
            )
        return CloudProviderError(
            f"could not reach the hub ({self.endpoint or PUBLIC_HUB}) for {what} {repo_id!r}: "
            f"{type(exc).__name__}: {exc}",
            ctx,
            "Check the network (or HF_ENDPOINT) and retry; or give a local path.",
            retryable=True,
        )

    def download(self, repo_id: str, filename: str, repo_type: RepoType, revision: str | None = None) -> str:
        """One file through the hub's cache (raises the translated error)."""
        from huggingface_hub import hf_hub_download

        self.check_online(repo_id, repo_type)
        try:
            return str(
                hf_hub_download(
                    repo_id=repo_id,
                    filename=filename,
                    repo_type=repo_type,
                    revision=revision,
                    endpoint=self.endpoint,
                    token=self.hf_token,
                    cache_dir=self.cache_dir,
                    etag_timeout=10,
                )
            )
        except VibeMLError:
            raise
        except Exception as exc:
            raise self.translate(exc, repo_id, repo_type) from exc
