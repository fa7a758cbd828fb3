"""VibeML's error family and the retry helper.

Every error a user can meet is a :class:`VibeMLError` carrying a message, a ``context`` dict of facts
and a ``recovery_suggestion`` that says what to do next. Front ends map these to exit codes (CLI) or
tool errors (MCP); nothing else should reach a user as a traceback.
"""

from __future__ import annotations

import functools
import inspect
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast, overload

__all__ = [
    "BackendError",
    "BudgetExceededError",
    "CloudProviderError",
    "ConfigurationError",
    "ConfirmationError",
    "CredentialError",
    "DatasetError",
    "JobNotFoundError",
    "ModelNotFoundError",
    "ResourceError",
    "TrainingError",
    "ValidationError",
    "VibeMLError",
    "retry_with_backoff",
]

_SECRET_KEYS = ("api_key", "token", "password", "secret", "authorization", "passphrase")


def _mask_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Copy ``context`` with anything that looks like a credential masked."""
    out: dict[str, Any] = {}
    for key, value in context.items():
        if any(s in key.lower() for s in _SECRET_KEYS) and value is not None:
            out[key] = "***"
        else:
            out[key] = value
    return out


class VibeMLError(Exception):
    """Root of every VibeML error.

    Args:
        message: What went wrong, in one sentence.
        context: Facts a user or an assistant can act on (ids, figures, paths). Credential-like keys
            are masked on the way in.
        recovery_suggestion: What to do next.
    """

    #: CLI exit code for this family (see docs/cli.md).
    exit_code: int = 1
    default_suggestion: str | None = None

    def __init__(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        recovery_suggestion: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = _mask_context(context or {})
        self.recovery_suggestion = recovery_suggestion or self.default_suggestion

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, context={self.context!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for ``--json`` output and MCP tool errors."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "context": self.context,
            "recovery_suggestion": self.recovery_suggestion,
        }


class ConfigurationError(VibeMLError):
    """A request, setting or file is invalid."""

    exit_code = 2
    default_suggestion = "Check the arguments against `vibeml COMMAND --help`."


class ValidationError(ConfigurationError):
    """User input failed validation (a field, a range, a combination)."""

    @classmethod
    def from_pydantic(
        cls,
        exc: Any,
        what: str = "request",
        recovery_suggestion: str | None = None,
        skip_loc: tuple[str, ...] = ("hyperparameters",),
    ) -> ValidationError:
        """One clear error from a pydantic ``ValidationError``: every bad field with pydantic's reason
        (the input itself is left out: it may be huge, binary or a secret)."""
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(x) for x in err["loc"] if x not in skip_loc) or what
            problems.append(f"{loc}: {str(err['msg']).removeprefix('Value error, ')}")
        return cls(
            f"invalid {what}: "
            + "; ".join(problems[:20])
            + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""),
            {"fields": [p.split(":", 1)[0] for p in problems]},
            recovery_suggestion or "Fix the named fields; `vibeml COMMAND --help` lists every option and its range.",
        )


class ModelNotFoundError(VibeMLError):
    """The model id or path does not resolve to a usable model."""

    exit_code = 3
    default_suggestion = "Check the model id (e.g. 'Qwen/Qwen2.5-0.5B') or give a local directory."


class DatasetError(VibeMLError):
    """The dataset cannot be found, read or understood."""

    exit_code = 3
    default_suggestion = (
        "Give a hub dataset id or a local .jsonl/.json/.csv/.parquet file with alpaca, messages, "
        "sharegpt, prompt/completion or text columns."
    )


class JobNotFoundError(VibeMLError):
    """No job with that id is known."""

    exit_code = 4
    default_suggestion = "List jobs with `vibeml jobs`."


class BudgetExceededError(VibeMLError):
    """The estimated cost does not fit the budget; nothing was launched."""

    exit_code = 5
    default_suggestion = "Raise --max-cost, lower max_steps/epochs, or pick a cheaper GPU."

    def __init__(
        self,
        message: str,
        estimated_cost: float,
        max_cost: float,
        context: Mapping[str, Any] | None = None,
        recovery_suggestion: str | None = None,
    ) -> None:
        merged = {"estimated_cost": round(estimated_cost, 4), "max_cost": round(max_cost, 4)}
        merged.update(context or {})
        super().__init__(message, merged, recovery_suggestion)
        self.estimated_cost = estimated_cost
        self.max_cost = max_cost


class ConfirmationError(VibeMLError):
    """A paid launch (or a destroying cleanup) lacks the person's explicit yes, or its confirmation token
    was refused (replayed, expired, or for another plan). Nothing was launched or destroyed."""

    exit_code = 5
    default_suggestion = (
        "Show the person the plan and its cost (launch_training with dry_run=true), and call again with the "
        "confirmation_token it returned once they say yes."
    )


class ResourceError(VibeMLError):
    """Not enough of something: memory, disk, GPUs, capacity."""

    exit_code = 6
    default_suggestion = "Pick a larger GPU, lower the batch size or sequence length, or free disk space."


class CredentialError(VibeMLError):
    """A credential is missing, invalid or cannot be decrypted."""

    exit_code = 7
    default_suggestion = "Store it with `vibeml config set-credential PROVIDER TYPE`."


class CloudProviderError(VibeMLError):
    """A cloud provider refused or failed a request."""

    exit_code = 8
    default_suggestion = "Retry in a minute; if it persists, check the provider's status page."

    def __init__(
        self,
        message: str,
        context: Mapping[str, Any] | None = None,
        recovery_suggestion: str | None = None,
        *,
        status_code: int | None = None,
        retryable: bool = False,
    ) -> None:
        ctx = dict(context or {})
        if status_code is not None:
            ctx.setdefault("status_code", status_code)
        super().__init__(message, ctx, recovery_suggestion)
        self.status_code = status_code
        self.retryable = retryable


class BackendError(VibeMLError):
    """A backend could not launch, track or stop a job."""

    exit_code = 8
    default_suggestion = "Check `vibeml logs JOB` and retry; `vibeml stop JOB` is always safe."


class TrainingError(VibeMLError):
    """The training program itself failed."""

    exit_code = 9
    default_suggestion = "Read the job's log with `vibeml logs JOB`."


# --------------------------------------------------------------------------------------------- retry

F = TypeVar("F", bound=Callable[..., Any])

RetryPredicate = Callable[[BaseException], bool]

#: Called before each wait as ``on_retry(error, attempt, delay)``: the error attempt ``attempt`` (1-based)
#: raised and the seconds about to be waited. What it raises propagates instead of the retry.
RetryCallback = Callable[[BaseException, int, float], Any]


def _default_retryable(exc: BaseException) -> bool:
    """Retry what is transient: flagged provider errors and connection/timeouts."""
    if isinstance(exc, CloudProviderError):
        return exc.retryable
    if isinstance(exc, VibeMLError):
        return False
    return isinstance(exc, (ConnectionError, TimeoutError))


def _delay(attempt: int, base_delay: float, max_delay: float, backoff: float, jitter: float) -> float:
    raw = min(max_delay, base_delay * (backoff ** (attempt - 1)))
    if jitter:
        raw = raw * (1 - jitter) + random.uniform(0, raw * jitter * 2)
    return float(min(max_delay, max(0.0, raw)))


@overload
def retry_with_backoff(func: F) -> F: ...


@overload
def retry_with_backoff(
    func: None = None,
    *,
    max_attempts: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    backoff: float = 2.0,
    jitter: float = 0.5,
    retry_on: RetryPredicate | tuple[type[BaseException], ...] | None = None,
    sleep: Callable[[float], Any] | None = None,
    on_retry: RetryCallback | None = None,
) -> Callable[[F], F]: ...


def retry_with_backoff(
    func: F | None = None,
    *,
    max_attempts: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    backoff: float = 2.0,
    jitter: float = 0.5,
    retry_on: RetryPredicate | tuple[type[BaseException], ...] | None = None,
    sleep: Callable[[float], Any] | None = None,
    on_retry: RetryCallback | None = None,
) -> F | Callable[[F], F]:
    """Retry a sync or async callable with exponential backoff, jitter and a delay cap.

    Only errors judged retryable are retried (``retry_on``: a predicate or exception types; default:
    ``CloudProviderError(retryable=True)``, ``ConnectionError`` and ``TimeoutError``). After the last
    attempt the last error is re-raised unchanged. A retryable exception may carry ``retry_after``
    (seconds) to ask for a specific wait, still capped by ``max_delay``.

    The wait before retry ``n`` (1-based) is ``min(max_delay, base_delay * backoff**(n-1))`` spread by
    ``jitter`` over ``[d(1-jitter), d(1+jitter)]`` (then capped again); none follows the last attempt.
    ``sleep`` (sync, or awaitable for an async callable) replaces the real wait, e.g. in tests;
    ``on_retry(error, attempt, delay)`` is called before each wait (to log, or to give up by raising).

    Usable bare (``@retry_with_backoff``) or with arguments.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    predicate: RetryPredicate
    if isinstance(retry_on, tuple):
        types = retry_on

        def _is_type(exc: BaseException) -> bool:
            return isinstance(exc, types)

        predicate = _is_type
    else:
        predicate = retry_on or _default_retryable

    def wait_for(exc: BaseException, attempt: int) -> float:
        delay = _delay(attempt, base_delay, max_delay, backoff, jitter)
        hinted = getattr(exc, "retry_after", None)
        if isinstance(hinted, (int, float)) and hinted > 0:
            delay = min(max_delay, max(delay, float(hinted)))
        return delay

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                attempt = 1
                while True:
                    try:
                        return await fn(*args, **kwargs)
                    except Exception as exc:
                        if attempt >= max_attempts or not predicate(exc):
                            raise
                        delay = wait_for(exc, attempt)
                        if on_retry is not None:
                            noted = on_retry(exc, attempt, delay)
                            if inspect.isawaitable(noted):
                                await noted
                        if sleep is not None:
                            result = sleep(delay)
                            if inspect.isawaitable(result):
                                await result
                        else:
                            import asyncio  # lazily: the CLI's start-up path imports this module

                            await asyncio.sleep(delay)
                        attempt += 1

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            attempt = 1
            while True:
                try:
                    return fn(*args, **kwargs)
                except BaseException as exc:
                    if attempt >= max_attempts or not predicate(exc):
                        raise
                    delay = wait_for(exc, attempt)
                    if on_retry is not None:
                        on_retry(exc, attempt, delay)
                    (sleep or time.sleep)(delay)
                    attempt += 1

        return cast(F, sync_wrapper)

    if func is not None:
        return decorate(func)
    return decorate
