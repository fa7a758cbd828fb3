"""``AsyncVastAI``: the Vast.ai client for asyncio, on :class:`httpx.AsyncClient`, from the same endpoint table.

Every method of :class:`vibeml.vast.VastAI` exists here as a coroutine with the same parameters. The table's
methods (:data:`vibeml.vast.endpoints.ENDPOINTS`) and the ones a training job uses (search, create, show,
destroy, start/stop, label, bid, logs, user, SSH keys) send their requests on the async pool with the same
retries, typed errors and key masking as the sync client. The remaining written-out methods (template and
benchmark searches, copies, templates, price increases, ...) run the sync client's code in a worker thread
(``asyncio.to_thread``), against the same server with the same key.

Creates are never retried blindly: a create whose answer was lost raises
:class:`~vibeml.vast.VastAmbiguousCreateError` (the sync client's lookup by label is not repeated here), so
one call never rents two machines.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from vibeml.exceptions import CredentialError, ValidationError, retry_with_backoff
from vibeml.vast._http import (
    _BASE_DELAY,
    _JITTER,
    DEFAULT_SERVER_URL,
    SECRETISH,
    Ambiguous,
    CurlShortCircuit,
    VastHTTP,
    _ssl_context,
    _Transient,
    redact_instance,
    resolve_api_key,
)
from vibeml.vast._payloads import create_payload, offer_search_body
from vibeml.vast._surface import Request, bind, requests_for, shape, signature
from vibeml.vast.client import VastAI
from vibeml.vast.endpoints import ENDPOINTS, NOT_APPLICABLE, SPECIAL, Endpoint
from vibeml.vast.models import VastAmbiguousCreateError, VastAPIError, VastNotFoundError

__all__ = ["AsyncVastAI"]


class _AsyncHTTP(VastHTTP):
    """:class:`VastHTTP`'s URLs, masking and error translation over an :class:`httpx.AsyncClient`."""

    def __init__(self, *args: Any, async_transport: httpx.AsyncBaseTransport | None, **kwargs: Any) -> None:
        super().__init__(*args, transport=None, **kwargs)
        self._http.close()  # the sync pool is never used here
        self._ahttp = httpx.AsyncClient(
            verify=_ssl_context(),
            timeout=kwargs["timeout"],
            transport=async_transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=128, max_keepalive_connections=64),
            headers={"Accept": "application/json", "User-Agent": "vibeml-vast/0.1"},
        )

    async def aclose(self) -> None:
        await self._ahttp.aclose()

    async def asend(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        idempotent: bool = True,
    ) -> tuple[httpx.Response, bool]:
        """:meth:`VastHTTP.send` for asyncio (same retries, same classification of failures)."""
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

        async def once() -> httpx.Response:
            nonlocal attempt
            attempt += 1
            if self.explain_requests:
                self.explain(method, shown, body, auth, attempt)
            try:
                resp = await self._ahttp.request(method, url, params=query or None, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, method, path_only, idempotent) from None
            return self._classify(resp, method, path_only, idempotent, attempt)

        def note(exc: BaseException, n: int, delay: float) -> None:
            nonlocal ambiguous_seen
            if isinstance(exc, _Transient):
                ambiguous_seen = ambiguous_seen or exc.ambiguous

        try:
            resp = await retry_with_backoff(
                max_attempts=self.retry,
                base_delay=_BASE_DELAY,
                backoff=1.5,
                jitter=_JITTER,
                max_delay=float("inf"),
                retry_on=(_Transient,),
                sleep=self.sleep,
                on_retry=note,
            )(once)()
            return resp, ambiguous_seen
        except _Transient as last:
            if last.error is not None:
                raise last.error from None
            assert last.response is not None
            return last.response, ambiguous_seen

    async def acall(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        gone_ok_after_retry: bool = False,
    ) -> Any:
        resp, ambiguous = await self.asend(method, path, body=body, params=params, idempotent=idempotent)
        if gone_ok_after_retry and ambiguous and resp.status_code == 404:
            return {"success": True}
        return self.decode(resp, method, urlsplit(self.url(path)).path)


def _curl_aware(fn: Any) -> Any:
    @functools.wraps(fn)
    async def wrapper(self: AsyncVastAI, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(self, *args, **kwargs)
        except CurlShortCircuit as short:
            return short.command

    return wrapper


#: Written-out methods the async client sends itself; the other SPECIAL ones run the sync code in a thread.
_NATIVE = frozenset(
    {
        "search_offers",
        "create_instance",
        "show_instances",
        "show_instance",
        "destroy_instance",
        "start_instance",
        "stop_instance",
        "reboot_instance",
        "label_instance",
        "change_bid",
        "logs",
        "show_user",
        "show_ssh_keys",
        "create_ssh_key",
        "delete_ssh_key",
        "attach_ssh",
        "set_api_key",
    }
)


class AsyncVastAI:
    """The asyncio twin of :class:`vibeml.vast.VastAI` (same constructor, same methods, awaited).

    ``async with AsyncVastAI() as vast: offers = await vast.search_offers("gpu_name=RTX_4090")``.
    In curl mode every method returns the curl command (without printing it).
    """

    def __init__(
        self,
        api_key: str | None = None,
        server_url: str | None = None,
        retry: int = 3,
        raw: bool = True,
        explain: bool = False,
        quiet: bool = False,
        curl: bool = False,
        *,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        credential_lookup: Callable[[], str | None] | None = None,
        key_files: Sequence[Path] | None = None,
        max_retry_after: float = 30.0,
    ) -> None:
        url = (server_url or DEFAULT_SERVER_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError(
                f"server_url must be an http(s) URL, got {url!r}.",
                recovery_suggestion="Use e.g. https://console.vast.ai or http://127.0.0.1:PORT.",
            )
        key = resolve_api_key(api_key, credential_lookup=credential_lookup, key_files=key_files)
        if key is None and not curl:
            raise CredentialError(
                "No Vast.ai API key found.",
                context={"looked_in": "argument, VAST_API_KEY, VibeML credentials, vastai key files"},
                recovery_suggestion="Set VAST_API_KEY or run `vibeml config set-credential vast api_key`.",
            )
        self.raw, self.quiet = raw, quiet
        self._options: dict[str, Any] = {"retry": retry, "explain": explain, "curl": curl, "timeout": timeout}
        self._core = _AsyncHTTP(
            url,
            key,
            retry=retry,
            explain_requests=explain,
            curl=curl,
            timeout=timeout,
            sleep=sleep,
            max_retry_after=max_retry_after,
            async_transport=transport,
        )
        if key is not None and (any(c.isspace() for c in key) or not key.isprintable()):
            raise CredentialError(
                "The Vast API key is malformed (it contains whitespace or control characters).",
                recovery_suggestion="Copy the key again from https://cloud.vast.ai/account/.",
            )
        self._sync: VastAI | None = None

    def __repr__(self) -> str:
        masked = "'****'" if self._core.key else "None"
        return f"AsyncVastAI(server_url={self._core.server_url!r}, retry={self._core.retry}, api_key={masked})"

    async def __aenter__(self) -> AsyncVastAI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (and the worker-thread client, if one was made)."""
        await self._core.aclose()
        if self._sync is not None:
            self._sync.close()

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    @property
    def server_url(self) -> str:
        return self._core.server_url

    def _threaded(self) -> VastAI:
        if self._sync is None:
            key = self._core.key.get_secret_value() if self._core.key else None
            self._sync = VastAI(api_key=key, server_url=self._core.server_url, raw=True, quiet=True, **self._options)
        return self._sync

    async def _send(self, req: Request) -> Any:
        try:
            return await self._core.acall(
                req.verb, req.path, body=req.body, params=req.params, idempotent=req.idempotent
            )
        except Ambiguous as amb:
            err = amb.error
            raise VastAPIError(
                f"{err.message} It was not retried because it may have taken effect: check before repeating it.",
                status=err.status,
                error=err.error,
                method=req.verb,
                path=err.path,
                retryable=False,
            ) from None

    async def _table_call(self, name: str, args: Mapping[str, Any]) -> Any:
        ep = ENDPOINTS[name]
        answers = [await self._send(req) for req in requests_for(ep, args, self._core.server_url)]
        return shape(name, ep, answers if ep.fan_out else answers[0], args)

    # ------------------------------------------------------------------------ what a training job uses

    @_curl_aware
    async def search_offers(
        self,
        query: str | Mapping[str, Any] | None = None,
        type: str = "on-demand",
        order: str = "score-",
        limit: int | None = None,
        storage: float = 5.0,
        no_default: bool = False,
    ) -> list[dict[str, Any]]:
        """Search the marketplace (``POST /api/v0/bundles/``); see :meth:`VastAI.search_offers`."""
        body = offer_search_body(query, type=type, order=order, limit=limit, storage=storage, no_default=no_default)
        data = await self._core.acall("POST", "/bundles/", body=body)
        offers = data.get("offers", []) if isinstance(data, Mapping) else []
        return [dict(o) for o in offers if isinstance(o, Mapping)]

    @_curl_aware
    async def create_instance(
        self, id: int, image: str | None = None, disk: float = 10, **kwargs: Any
    ) -> dict[str, Any]:
        """Rent offer ``id`` (``PUT /api/v0/asks/{id}/``); arguments as :meth:`VastAI.create_instance`.

        Raises:
            VastAmbiguousCreateError: The create may have landed (its answer was lost); it is not retried.
        """
        arg_list = kwargs.get("args")
        words = arg_list.split() if isinstance(arg_list, str) else list(arg_list or [])
        price = kwargs.get("price") if kwargs.get("price") is not None else kwargs.get("bid_price")
        VastAI._validate_create(id, image, disk, kwargs.get("label"), price, kwargs.get("onstart_cmd"), words)
        try:
            body = create_payload(image=image, disk=disk, **kwargs)
        except TypeError as exc:
            raise ValidationError(
                f"create_instance: {exc}.", recovery_suggestion="See help(VastAI.create_instance)."
            ) from None
        try:
            data = await self._core.acall("PUT", f"/asks/{int(id)}/", body=body, idempotent=False)
        except Ambiguous as amb:
            raise VastAmbiguousCreateError(
                f"Creating an instance on offer {id} failed ambiguously ({amb.error.message}); it was not retried.",
                label=kwargs.get("label"),
                offer_id=int(id),
                status=amb.error.status,
                error=amb.error.error,
                method="PUT",
                path=amb.error.path,
                retryable=False,
            ) from None
        result = dict(data) if isinstance(data, Mapping) else {"success": True, "new_contract": data}
        if kwargs.get("label") is not None:
            result.setdefault("label", kwargs["label"])
        return result

    @_curl_aware
    async def show_instances(self) -> list[dict[str, Any]]:
        """All your instances (``GET /api/v1/instances/``, following ``next_token``)."""
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"select_filters": {}, "order_by": [{"col": "id", "dir": "asc"}], "limit": 25}
        seen: set[str] = set()
        while True:
            data = await self._core.acall("GET", "/api/v1/instances/", params=params)
            rows = data.get("instances") if isinstance(data, Mapping) else None
            out.extend(redact_instance(dict(r)) for r in rows or [] if isinstance(r, Mapping))
            token = data.get("next_token") if isinstance(data, Mapping) else None
            if not token or token in seen:
                return out
            seen.add(token)
            params["after_token"] = token

    @_curl_aware
    async def show_instance(self, id: int) -> dict[str, Any]:
        """One instance (``GET /api/v0/instances/{id}/?owner=me``).

        Raises:
            VastNotFoundError: The instance does not exist (any more).
        """
        data = await self._core.acall("GET", f"/instances/{int(id)}/", params={"owner": "me"})
        row = data.get("instances") if isinstance(data, Mapping) else None
        if not isinstance(row, Mapping):
            raise VastNotFoundError(
                f"Instance {id} not found.", status=404, error="not_found", method="GET", path=f"/instances/{id}/"
            )
        return redact_instance(dict(row))

    @_curl_aware
    async def destroy_instance(self, id: int) -> dict[str, Any]:
        """Destroy an instance for good; a retry that finds it gone counts as done."""
        data = await self._core.acall("DELETE", f"/instances/{int(id)}/", body={}, gone_ok_after_retry=True)
        return dict(data) if isinstance(data, Mapping) else {"success": True}

    async def _put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._core.acall("PUT", path, body=body)
        return dict(data) if isinstance(data, Mapping) else {"success": True}

    @_curl_aware
    async def start_instance(self, id: int) -> dict[str, Any]:
        return await self._put(f"/instances/{int(id)}/", {"state": "running"})

    @_curl_aware
    async def stop_instance(self, id: int) -> dict[str, Any]:
        return await self._put(f"/instances/{int(id)}/", {"state": "stopped"})

    @_curl_aware
    async def reboot_instance(self, id: int) -> dict[str, Any]:
        return await self._put(f"/instances/reboot/{int(id)}/", {})

    @_curl_aware
    async def label_instance(self, id: int, label: str) -> dict[str, Any]:
        if len(label) > 256:
            raise ValidationError(f"label must be at most 256 characters (got {len(label)}).")
        return await self._put(f"/instances/{int(id)}/", {"label": label})

    @_curl_aware
    async def change_bid(self, id: int, price: float | None = None) -> dict[str, Any]:
        if price is not None and not (0.001 <= price <= 128):
            raise ValidationError(f"price must be between 0.001 and 128 $/hour (got {price!r}).")
        return await self._put(f"/instances/bid_price/{int(id)}/", {"client_id": "me", "price": price})

    @_curl_aware
    async def logs(
        self,
        instance_id: int,
        tail: str | int | None = None,
        filter: str | None = None,
        daemon_logs: bool = False,
        *,
        timeout: float = 60.0,
        poll_interval: float = 0.3,
    ) -> str:
        """An instance's log; see :meth:`VastAI.logs`."""
        body: dict[str, Any] = {}
        if filter:
            body["filter"] = filter
        if tail:
            body["tail"] = tail
        if daemon_logs:
            body["daemon_logs"] = "true"
        path = f"/instances/request_logs/{int(instance_id)}/"
        data = await self._core.acall("PUT", path, body=body)
        url = data.get("result_url") if isinstance(data, Mapping) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise VastAPIError("Vast.ai did not return a log URL.", error="bad_response", method="PUT", path=path)
        deadline = time.monotonic() + timeout
        while True:
            resp, _ = await self._core.asend("GET", url, auth=False)
            if resp.status_code == 200:
                return resp.text
            if resp.status_code not in (403, 404):
                raise self._core.error_from(resp, "GET", urlsplit(url).path)
            if time.monotonic() >= deadline:
                raise VastAPIError(
                    f"The log of instance {instance_id} was not ready within {timeout:g} s.",
                    error="timeout",
                    method="GET",
                    path=urlsplit(url).path,
                    retryable=True,
                )
            await asyncio.sleep(poll_interval)

    @_curl_aware
    async def show_user(self) -> dict[str, Any]:
        """The current user, without any key or secret field."""
        data = await self._core.acall("GET", "/users/current")
        return {k: v for k, v in (data.items() if isinstance(data, Mapping) else ()) if not SECRETISH.search(str(k))}

    @_curl_aware
    async def show_ssh_keys(self) -> list[dict[str, Any]]:
        data = await self._core.acall("GET", "/ssh/")
        rows = data.get("ssh_keys", data.get("keys", [])) if isinstance(data, Mapping) else data
        return [dict(r) for r in rows or [] if isinstance(r, Mapping)]

    @_curl_aware
    async def create_ssh_key(self, ssh_key: str | None = None) -> dict[str, Any]:
        if ssh_key is None:
            raise ValidationError("create_ssh_key needs the public key text.", recovery_suggestion="Pass ssh_key=...")
        data = await self._core.acall("POST", "/ssh/", body={"ssh_key": VastAI._check_public_key(ssh_key)})
        return dict(data) if isinstance(data, Mapping) else {"success": True}

    @_curl_aware
    async def delete_ssh_key(self, id: int) -> dict[str, Any]:
        data = await self._core.acall("DELETE", f"/ssh/{int(id)}/", body={})
        return dict(data) if isinstance(data, Mapping) else {"success": True}

    @_curl_aware
    async def attach_ssh(self, instance_id: int, ssh_key: str) -> dict[str, Any]:
        body = {"ssh_key": VastAI._check_public_key(ssh_key)}
        data = await self._core.acall("POST", f"/instances/{int(instance_id)}/ssh/", body=body)
        return dict(data) if isinstance(data, Mapping) else {"success": True}

    async def set_api_key(self, api_key: str) -> None:
        """Use another API key from now on."""
        self._core.set_key(api_key)
        if self._sync is not None:
            self._sync.set_api_key(api_key)


def _async_table_method(name: str, ep: Endpoint) -> Any:
    async def method(self: AsyncVastAI, /, *args: Any, **kwargs: Any) -> Any:
        return await self._table_call(name, bind(name, ep, args, kwargs))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``{ep.verb} {ep.path}`` (the official SDK's ``VastAI.{name}``, awaited)."
    method.__signature__ = signature(ep)  # type: ignore[attr-defined]
    return _curl_aware(method)


def _threaded_method(name: str) -> Any:
    @functools.wraps(getattr(VastAI, name))
    async def method(self: AsyncVastAI, /, *args: Any, **kwargs: Any) -> Any:
        sync = self._threaded()
        return await asyncio.to_thread(getattr(sync, name), *args, **kwargs)

    return method


for _name, _ep in ENDPOINTS.items():
    setattr(AsyncVastAI, _name, _async_table_method(_name, _ep))
for _name in (*SPECIAL, *NOT_APPLICABLE):
    if _name not in _NATIVE:
        setattr(AsyncVastAI, _name, _threaded_method(_name))
