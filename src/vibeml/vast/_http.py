"""HTTP plumbing for :class:`vibeml.vast.VastAI`: URLs, retries, error translation, masking.

Internal module: :class:`VastHTTP` holds the pooled httpx client and the key (as a ``SecretStr``) and
knows how to send one logical request with retries and turn the answer into data or a typed error.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import math
import re
import shlex
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import SecretStr
from rich.console import Console

from vibeml.exceptions import CredentialError, retry_with_backoff
from vibeml.vast.models import VastAPIError, VastAuthError, VastNotFoundError

__all__ = ["DEFAULT_SERVER_URL", "RETRY_STATUSES", "VastHTTP", "default_key_files", "resolve_api_key"]

logger = logging.getLogger("vibeml.vast.client")

DEFAULT_SERVER_URL = "https://console.vast.ai"
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: The wait before retry n is 0.15 s × 1.5ⁿ⁻¹ plus 0-25 % jitter. In retry_with_backoff's terms (its
#: jitter j spreads a delay d over [d(1-j), d(1+j)]): d = 0.15 × 9/8 and j = 1/9 give [0.15, 0.1875] × 1.5ⁿ⁻¹.
_BASE_DELAY = 0.15 * 9 / 8
_JITTER = 1 / 9

SECRETISH = re.compile(
    r"(api[_-]?key|token|secret|password|passphrase|authorization|login_pass|backup_code)", re.IGNORECASE
)


def redact_instance(row: dict[str, Any]) -> dict[str, Any]:
    """An instance row with the values of secret environment variables (HF_TOKEN, …) masked.

    Vast returns an instance's environment as ``extra_env`` (``[[name, value], …]``); the client never
    hands back or prints a secret it was given.
    """
    env = row.get("extra_env")
    if isinstance(env, list):
        row["extra_env"] = [
            [pair[0], "****"]
            if isinstance(pair, (list, tuple))
            and len(pair) == 2
            and isinstance(pair[0], str)
            and SECRETISH.search(pair[0])
            and pair[1]
            else pair
            for pair in env
        ]
    env = row.get("env")
    if isinstance(env, dict):
        row["env"] = {k: "****" if isinstance(k, str) and SECRETISH.search(k) and v else v for k, v in env.items()}
    return row


_KEY_IN_URL = re.compile(r"(api_key=)[^&\s'\"]+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)(?!\$VAST_API_KEY)\S+", re.IGNORECASE)


class CurlShortCircuit(Exception):
    """Raised inside a call in curl mode: carries the command instead of sending the request."""

    def __init__(self, command: str) -> None:
        super().__init__("curl mode")
        self.command = command


class _Transient(Exception):
    """One attempt's outcome worth another try: a failure (``error``) or a retryable status (``response``).

    ``ambiguous``: the request may have been served (a timeout, a 502-504); ``retry_after``: the
    server's ``Retry-After``, already capped, which :func:`~vibeml.exceptions.retry_with_backoff` honours.
    """

    def __init__(
        self,
        *,
        error: VastAPIError | None = None,
        response: httpx.Response | None = None,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error.message if error is not None else "retryable status")
        self.error = error
        self.response = response
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class Ambiguous(Exception):
    """A non-idempotent request failed in a way that does not tell whether it took effect."""

    def __init__(self, error: VastAPIError) -> None:
        super().__init__(error.message)
        self.error = error


def _read_key_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def default_key_files(config_home: Path | None = None) -> tuple[Path, ...]:
    """The official client's key files, in its order: ``<config home>/vastai/vast_api_key`` (``~/.config``
    by default; VibeML's settings pass ``XDG_CONFIG_HOME``) and ``~/.vast_api_key``."""
    home = Path.home()
    return ((config_home or home / ".config") / "vastai" / "vast_api_key", home / ".vast_api_key")


def resolve_api_key(
    api_key: str | None = None,
    *,
    credential_lookup: Callable[[], str | None] | None = None,
    key_files: Sequence[Path] | None = None,
) -> str | None:
    """Find the Vast API key: the argument (VibeML passes ``VAST_API_KEY`` from its settings), VibeML's
    credential store, then the official client's key files (:func:`default_key_files` when not given).

    Returns:
        The key, or ``None`` when none is configured.
    """
    if api_key:
        return api_key.strip() or None
    if credential_lookup is not None:
        found = credential_lookup()
        if found and found.strip():
            return found.strip()
    for path in default_key_files() if key_files is None else key_files:
        found = _read_key_file(path)
        if found:
            return found
    return None


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _json_or_none(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every client: building one costs tens of milliseconds."""
    return httpx.create_ssl_context()


class VastHTTP:
    """One pooled httpx client plus the key; sends requests with retries (thread-safe, no per-call state).

    Args:
        server_url: Base URL, no trailing slash.
        key: The API key (``None`` only in curl mode).
        retry: Total attempts for transient failures.
        explain_requests: Print each request to stderr, key masked.
        curl: Raise :class:`CurlShortCircuit` with a curl command instead of sending.
        timeout: httpx timeout.
        transport: Optional httpx transport.
        sleep: Waits between retries and polls.
        max_retry_after: Cap on a server's ``Retry-After``.
    """

    def __init__(
        self,
        server_url: str,
        key: str | None,
        *,
        retry: int,
        explain_requests: bool,
        curl: bool,
        timeout: float | httpx.Timeout,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], Any],
        max_retry_after: float,
    ) -> None:
        self.server_url = server_url
        self.retry = max(1, int(retry))
        self.explain_requests = explain_requests
        self.curl = curl
        self.max_retry_after = max_retry_after
        self.key: SecretStr | None = SecretStr(key) if key else None
        self.sleep = sleep
        self._err_console = Console(stderr=True, soft_wrap=True)
        self._http = httpx.Client(
            verify=_ssl_context(),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=128, max_keepalive_connections=64),
            headers={"Accept": "application/json", "User-Agent": "vibeml-vast/0.1"},
        )

    def set_key(self, key: str) -> None:
        """Send ``key`` from now on (the official SDK's ``set_api_key``)."""
        if not isinstance(key, str) or not key or any(c.isspace() for c in key) or not key.isprintable():
            raise CredentialError(
                "The Vast API key is malformed (empty, or it contains whitespace or control characters).",
                recovery_suggestion="Copy the key again from https://cloud.vast.ai/account/.",
            )
        self.key = SecretStr(key)

    def __repr__(self) -> str:
        return f"VastHTTP(server_url={self.server_url!r}, key={'****' if self.key else None})"

    def close(self) -> None:
        self._http.close()

    def mask(self, text: str, replacement: str = "****") -> str:
        """Remove the key (and anything that looks like a bearer token or ``api_key=``) from text."""
        if self.key is not None:
            secret = self.key.get_secret_value()
            if secret:
                text = text.replace(secret, replacement)
        text = _KEY_IN_URL.sub(r"\g<1>****", text)
        return _BEARER.sub(r"\g<1>****", text)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if not path.startswith("/api/v"):
            path = "/api/v0" + path
        return self.server_url + path

    @staticmethod
    def params(params: Mapping[str, Any] | None) -> dict[str, str]:
        """Query-string values that are not strings travel as JSON."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in (params or {}).items()}

    def full_url(self, url: str, params: Mapping[str, str]) -> str:
        return url + ("?" + urlencode(params) if params else "")

    def masked_body(self, body: Any) -> Any:
        if isinstance(body, Mapping):
            out: dict[str, Any] = {}
            if "key" in body and isinstance(body.get("value"), str) and body["value"]:
                body = {**body, "value": "****"}  # an account environment variable (create_env_var): its value
            for k, v in body.items():
                if isinstance(k, str) and SECRETISH.search(k) and isinstance(v, str) and v:
                    out[k] = "****"
                else:
                    out[k] = self.masked_body(v)
            return out
        if isinstance(body, list):
            return [self.masked_body(v) for v in body]
        return body

    def curl_command(self, method: str, url: str, body: Any, auth: bool) -> str:
        parts = ["curl", "-sS", "-X", method, shlex.quote(url)]
        if auth:
            parts += ["-H", '"Authorization: Bearer $VAST_API_KEY"']
        if body is not None:  # secret values (an HF_TOKEN in env) are masked: fill them in to run it
            parts += ["-H", shlex.quote("Content-Type: application/json")]
            parts += ["-d", shlex.quote(json.dumps(self.masked_body(body), separators=(",", ":")))]
        return self.mask(" ".join(parts), replacement="$VAST_API_KEY")

    def explain(self, method: str, url: str, body: Any, auth: bool, attempt: int) -> None:
        lines = [f"{method} {url}" + (f"  (attempt {attempt})" if attempt > 1 else "")]
        if auth:
            lines.append("  Authorization: Bearer ****")
        if body is not None:
            lines.append("  body: " + json.dumps(self.masked_body(body), sort_keys=True))
        self._err_console.print(self.mask("\n".join(lines)), markup=False, highlight=False)

    def _transport_error(self, exc: httpx.HTTPError, method: str, path_only: str, idempotent: bool) -> Exception:
        """What one failed attempt raises: :class:`_Transient` (retry), :class:`Ambiguous` or a typed error."""
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
            # Never reached the server: safe to retry for any method.
            return _Transient(
                error=VastAPIError(
                    f"Could not connect to {self.server_url}: {self.mask(str(exc)) or type(exc).__name__}.",
                    status=None,
                    error="connection_error",
                    method=method,
                    path=path_only,
                    retryable=True,
                    recovery_suggestion="Check the network and the server URL, then retry.",
                )
            )
        if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
            timed_out = isinstance(exc, httpx.TimeoutException)
            error = VastAPIError(
                f"{method} {path_only} "
                + ("timed out" if timed_out else "lost its connection before a response")
                + f" ({type(exc).__name__}).",
                status=None,
                error="timeout" if timed_out else "connection_error",
                method=method,
                path=path_only,
                retryable=True,
                recovery_suggestion="Retry in a minute; if it persists, check https://status.vast.ai.",
            )
            if not idempotent:
                return Ambiguous(error)
            return _Transient(error=error, ambiguous=True)
        return VastAPIError(
            f"{method} {path_only} failed: {self.mask(str(exc)) or type(exc).__name__}.",
            error="client_error",
            method=method,
            path=path_only,
        )

    def _classify(
        self, resp: httpx.Response, method: str, path_only: str, idempotent: bool, attempt: int
    ) -> httpx.Response:
        """One attempt's response, or :class:`_Transient`/:class:`Ambiguous` raised for a retryable status."""
        status = resp.status_code
        logger.debug("vast %s %s -> %d (attempt %d/%d)", method, path_only, status, attempt, self.retry)
        if status >= 500 and not idempotent:
            raise Ambiguous(self.error_from(resp, method, path_only))
        if status not in RETRY_STATUSES:
            return resp
        hinted = _parse_retry_after(resp.headers.get("Retry-After"))
        raise _Transient(
            response=resp,
            ambiguous=status != 429,  # a 429 was refused unseen; a 502-504 may have been served
            retry_after=None if hinted is None else min(hinted, self.max_retry_after),
        )

    def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        idempotent: bool = True,
    ) -> tuple[httpx.Response, bool]:
        """Send one logical request with retries.

        Returns:
            The final response (any status) and whether an earlier attempt failed ambiguously (it may
            have taken effect on the server).

        Raises:
            CurlShortCircuit: In curl mode.
            Ambiguous: A non-idempotent request failed after it may have landed.
            VastAPIError: Transport failures once the attempts are spent.
        """
        url = self.url(path)
        query = self.params(params)
        full = self.full_url(url, query)
        if self.curl:
            raise CurlShortCircuit(self.curl_command(method, full, body, auth))
        headers: dict[str, str] = {}
        if auth:
            if self.key is None:  # pragma: no cover - guarded in __init__
                raise CredentialError("No Vast.ai API key found.")
            headers["Authorization"] = "Bearer " + self.key.get_secret_value()
        path_only = urlsplit(url).path
        shown = self.mask(full)
        ambiguous_seen = False
        attempt = 0

        def once() -> httpx.Response:
            """One attempt: the response, or :class:`_Transient` for one worth another try."""
            nonlocal attempt
            attempt += 1
            if self.explain_requests:
                self.explain(method, shown, body, auth, attempt)
            try:
                resp = self._http.request(method, url, params=query or None, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, method, path_only, idempotent) from None
            return self._classify(resp, method, path_only, idempotent, attempt)

        def note(exc: BaseException, n: int, delay: float) -> None:
            nonlocal ambiguous_seen
            if isinstance(exc, _Transient):  # always: nothing else is retried
                ambiguous_seen = ambiguous_seen or exc.ambiguous
                if exc.response is not None:
                    exc.response.close()
            logger.info("vast %s %s: retrying in %.2fs (attempt %d/%d)", method, path_only, delay, n, self.retry)

        try:
            return retry_with_backoff(
                max_attempts=self.retry,
                base_delay=_BASE_DELAY,
                backoff=1.5,
                jitter=_JITTER,
                max_delay=math.inf,  # only a Retry-After is capped (at max_retry_after, above)
                retry_on=(_Transient,),
                sleep=self.sleep,
                on_retry=note,
            )(once)(), ambiguous_seen
        except _Transient as last:  # the attempts are spent
            if last.error is not None:
                raise last.error from None
            assert last.response is not None  # a _Transient holds one or the other
            return last.response, ambiguous_seen

    def error_from(self, resp: httpx.Response, method: str, path: str) -> VastAPIError:
        """Translate an error response (or a 200 with ``success: false``) into a typed error."""
        status = resp.status_code
        data = _json_or_none(resp)
        code: str | None = None
        msg: str | None = None
        if isinstance(data, Mapping):
            code = data.get("error") if isinstance(data.get("error"), str) else None
            raw_msg = data.get("msg") or data.get("detail") or data.get("message")
            msg = str(raw_msg) if raw_msg is not None else None
        if msg is None and resp.content and data is None:
            msg = resp.text[:300].strip() or None
        msg = self.mask(msg) if msg else None
        if status == 401 or code == "auth_error":
            return VastAuthError(
                "Vast.ai refused the API key: " + (msg or "Invalid user key") + ".",
                status=status,
                error=code or "auth_error",
                msg=msg,
                method=method,
                path=path,
            )
        if status == 429 and code is None:
            code = "rate_limit_exceeded"
        retryable = status in RETRY_STATUSES
        text = f"Vast.ai {method} {path} failed ({status}" + (f" {code}" if code else "") + ")"
        text += f": {msg}" if msg else "."
        kind = VastNotFoundError if status in (404, 410) or code in ("not_found", "no_such_ask") else VastAPIError
        return kind(text, status=status, error=code, msg=msg, method=method, path=path, retryable=retryable)

    def decode(self, resp: httpx.Response, method: str, path: str) -> Any:
        if resp.status_code >= 400:
            raise self.error_from(resp, method, path)
        if not resp.content:
            return {}
        data = _json_or_none(resp)
        if data is None:
            raise VastAPIError(
                f"Vast.ai {method} {path} returned something that is not JSON.",
                status=resp.status_code,
                error="bad_response",
                method=method,
                path=path,
            )
        if isinstance(data, Mapping) and data.get("success") is False:
            raise self.error_from(resp, method, path)
        return data

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        gone_ok_after_retry: bool = False,
    ) -> Any:
        resp, ambiguous = self.send(method, path, body=body, params=params, idempotent=idempotent)
        path_only = urlsplit(self.url(path)).path
        if gone_ok_after_retry and ambiguous and resp.status_code == 404:
            # An earlier attempt probably did it and the response was lost.
            return {"success": True}
        return self.decode(resp, method, path_only)
