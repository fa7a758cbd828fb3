"""``VastAI``: a synchronous, thread-safe Vast.ai client with the official SDK's surface.

One pooled :class:`httpx.Client` serves every thread; no request state is shared between calls. The
API key travels only in the ``Authorization`` header of authenticated requests and never appears in a
repr, an exception, a log line, ``explain`` output or a ``curl`` command.

Retries: 429/502/503/504, connection errors and timeouts are retried (``retry`` attempts in all) with
backoff 0.15 s ×1.5 plus jitter, honouring ``Retry-After``. ``create_instance`` is never retried blindly:
after an ambiguous failure (timeout, dropped connection, 5xx once the request may have landed) it looks
the instance up by its label first, so one call can never rent two machines. Like the official SDK, it
never invents a label: a create without one cannot be looked up, so an ambiguous failure is reported
(``VastAmbiguousCreateError``) and never retried.
"""

from __future__ import annotations

import functools
import logging
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from rich.console import Console

from vibeml.exceptions import CredentialError, ValidationError
from vibeml.vast._display import show
from vibeml.vast._http import (
    DEFAULT_SERVER_URL,
    SECRETISH,
    Ambiguous,
    CurlShortCircuit,
    VastHTTP,
    default_key_files,
    redact_instance,
    resolve_api_key,
)
from vibeml.vast._more import SpecialMethods, install_table_methods
from vibeml.vast._payloads import create_payload, offer_search_body
from vibeml.vast.models import VastAmbiguousCreateError, VastAPIError, VastNotFoundError

if TYPE_CHECKING:
    from vibeml.settings import Settings

__all__ = ["DEFAULT_SERVER_URL", "VastAI", "resolve_api_key"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _api(fn: Callable[Concatenate[VastAI, P], R]) -> Callable[Concatenate[VastAI, P], R]:
    """Return the curl command instead of the result when the client is in curl mode."""

    @functools.wraps(fn)
    def wrapper(self: VastAI, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(self, *args, **kwargs)
        except CurlShortCircuit as short:
            if not self.quiet:
                self._console.print(short.command, markup=False, highlight=False, soft_wrap=True)
            return cast(R, short.command)

    return wrapper


def _default_console() -> Console:
    """Stdout console; when stdout is not a terminal, wide enough that tables do not fold."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


class VastAI(SpecialMethods):
    """A Vast.ai client with the official ``vastai`` SDK's surface (every public method of its ``VastAI``).

    Most methods are built from the endpoint table (:mod:`vibeml.vast.endpoints`); ``help(VastAI.<name>)``
    shows each one's official parameters. Differences from the official client, on purpose: errors are typed
    (:class:`VastAPIError` and its subclasses, never ``requests`` exceptions or ``sys.exit``); the key travels
    only in the ``Authorization`` header and is never printed; ``show_instance`` raises
    :class:`VastNotFoundError` for a gone instance where the official one returns ``None``; instance rows
    keep ``extra_env`` as Vast sends it (``[[name, value], ...]``) with secret values masked.

    Args:
        api_key: The API key; when omitted it is looked up (see :func:`resolve_api_key`). VibeML's
            settings pass ``VAST_API_KEY`` here (``settings.credentials.vast_api_key``).
        server_url: Base URL; default ``https://console.vast.ai`` (VibeML's settings pass ``VIBEML_VAST_URL``
            or the official client's ``VAST_URL``: ``settings.vast.url``).
        retry: Total attempts per request (≥ 1) for transient failures.
        raw: When ``False``, results are also printed as a readable table (data is still returned).
        explain: Print every request (method, URL, body) to stderr, key masked.
        quiet: Suppress printed tables and curl commands.
        curl: Send nothing; every method returns (and prints) an equivalent curl command that reads the
            key from ``$VAST_API_KEY``.
        timeout: Seconds for each HTTP request (or an :class:`httpx.Timeout`).
        transport: Optional httpx transport (tests, proxies).
        sleep: Function used to wait between retries and log polls.
        credential_lookup: Hook into VibeML's credential store, called when no ``api_key`` is given.
        key_files: The official client's key files, read last (default :func:`default_key_files`).
        console: Rich console for tables and curl output (stdout by default).
        max_retry_after: Cap, in seconds, on a server's ``Retry-After``.
        create_lookup_grace: Seconds to keep looking for an instance by label after a create failed
            ambiguously and could not be safely retried.

    Raises:
        CredentialError: No key was found (not raised in curl mode).
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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        credential_lookup: Callable[[], str | None] | None = None,
        console: Console | None = None,
        max_retry_after: float = 30.0,
        create_lookup_grace: float = 10.0,
        key_files: Sequence[Path] | None = None,
    ) -> None:
        url = (server_url or DEFAULT_SERVER_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError(
                f"server_url must be an http(s) URL, got {url!r}.",
                recovery_suggestion="Use e.g. https://console.vast.ai or http://127.0.0.1:PORT.",
            )
        key = resolve_api_key(api_key, credential_lookup=credential_lookup, key_files=key_files)
        if key is not None and (any(c.isspace() for c in key) or not key.isprintable()):
            raise CredentialError(
                "The Vast API key is malformed (it contains whitespace or control characters).",
                recovery_suggestion="Copy the key again from https://cloud.vast.ai/account/.",
            )
        if key is None and not curl:
            raise CredentialError(
                "No Vast.ai API key found.",
                context={
                    "looked_in": "argument, VAST_API_KEY, VibeML credentials, "
                    "$XDG_CONFIG_HOME/vastai/vast_api_key, ~/.vast_api_key"
                },
                recovery_suggestion="Set VAST_API_KEY, run `vibeml config set-credential vast api_key`, "
                "or write the key to ~/.config/vastai/vast_api_key (get it at https://cloud.vast.ai/account/).",
            )
        self.raw = raw
        self.quiet = quiet
        self.create_lookup_grace = create_lookup_grace
        self._console = console or _default_console()
        self._core = VastHTTP(
            url,
            key,
            retry=retry,
            explain_requests=explain,
            curl=curl,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
            max_retry_after=max_retry_after,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> VastAI:
        """A client as VibeML configures it: ``settings.vast.url``, the key from ``VAST_API_KEY``
        (``settings.credentials``), else VibeML's credential store, else the official client's key files
        (under ``XDG_CONFIG_HOME``). Other keyword arguments go to the constructor.

        Raises:
            CredentialError: No key was found (not raised in curl mode).
        """
        from vibeml.config.credentials import CredentialManager

        key = settings.credentials.vast_api_key
        kwargs.setdefault("api_key", key.get_secret_value() if key is not None else None)
        kwargs.setdefault("server_url", settings.vast.url)
        kwargs.setdefault("key_files", default_key_files(settings.vast.config_home))
        kwargs.setdefault(
            "credential_lookup", CredentialManager.from_settings(settings).credential_lookup("vast", "api_key")
        )
        return cls(**kwargs)

    @property
    def server_url(self) -> str:
        return self._core.server_url

    @property
    def retry(self) -> int:
        return self._core.retry

    @property
    def explain(self) -> bool:
        return self._core.explain_requests

    @property
    def curl(self) -> bool:
        return self._core.curl

    @property
    def has_api_key(self) -> bool:
        return self._core.key is not None

    def __repr__(self) -> str:
        masked = "'****'" if self._core.key else "None"
        return f"VastAI(server_url={self.server_url!r}, retry={self.retry}, api_key={masked})"

    def __enter__(self) -> VastAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._core.close()

    def _show(self, data: Any, kind: str = "") -> None:
        if not self.raw and not self.quiet:
            show(self._console, data, kind, self._core.mask)

    if TYPE_CHECKING:  # the table's methods are attached below, with the official signatures

        def __getattr__(self, name: str) -> Any: ...

    # ------------------------------------------------------------------------------------ offers

    @_api
    def search_offers(
        self,
        query: str | Mapping[str, Any] | None = None,
        type: str = "on-demand",
        order: str = "score-",
        limit: int | None = None,
        storage: float = 5.0,
        no_default: bool = False,
    ) -> list[dict[str, Any]]:
        """Search the marketplace (``POST /api/v0/bundles/``).

        Args:
            query: Query text, e.g. ``"gpu_name=RTX_4090 num_gpus>=2 reliability>0.99"``, or a parsed filter
                dict (merged over the default filters unless ``no_default``).
            type: ``on-demand``, ``bid`` (alias ``interruptible``) or ``reserved``.
            order: Sort spec, e.g. ``"score-"`` or ``"dph_total"``.
            limit: Maximum number of offers.
            storage: Disk GB priced into each offer's ``dph_total``.
            no_default: Drop the default ``verified/external/rentable`` filters.

        Returns:
            Offer dicts (see :class:`~vibeml.vast.models.Offer`).

        Raises:
            VastQueryError: The query or order cannot be parsed.
            VastAPIError: The server refused or failed.
        """
        body = offer_search_body(query, type=type, order=order, limit=limit, storage=storage, no_default=no_default)
        data = self._core.call("POST", "/bundles/", body=body)
        offers = data.get("offers", []) if isinstance(data, Mapping) else []
        result = [dict(o) for o in offers if isinstance(o, Mapping)]
        self._show(result, "offers")
        return result

    # ------------------------------------------------------------------------------------ instances

    @_api
    def create_instance(
        self,
        id: int,
        image: str | None = None,
        disk: float = 10,
        env: Mapping[str, Any] | str | None = None,
        price: float | None = None,
        label: str | None = None,
        extra: str | None = None,
        onstart_cmd: str | None = None,
        login: str | None = None,
        python_utf8: bool = False,
        lang_utf8: bool = False,
        jupyter_lab: bool = False,
        jupyter_dir: str | None = None,
        force: bool = False,
        cancel_unavail: bool = False,
        template_hash: str | None = None,
        user: str | None = None,
        runtype: str | None = None,
        args: Sequence[str] | str | None = None,
        volume_info: dict[str, Any] | None = None,
        bid_price: float | None = None,
        ssh: bool = False,
        jupyter: bool = False,
        direct: bool = False,
        create_volume: int | None = None,
        link_volume: int | None = None,
        volume_size: float | None = None,
        mount_path: str | None = None,
        volume_label: str | None = None,
    ) -> dict[str, Any]:
        """Rent offer ``id`` (``PUT /api/v0/asks/{id}/``).

        With a ``label``, after an ambiguous failure the client looks the label up and returns the
        instance it finds, retrying the create once only when none exists. Without one (the official
        SDK's default: no label is sent, none is invented) an ambiguous failure raises at once. One call
        never rents two machines.

        Args:
            id: Offer (ask) id from :meth:`search_offers`.
            image: Docker image, e.g. ``pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime``.
            disk: Disk GB (≥ 8).
            env: Environment as a dict, or the official ``"-e K=V -p 8080:8080"`` string.
            onstart_cmd: Shell script run when the container starts.
            label: Instance label (≤ 256 chars); none when omitted.
            price: Bid in $/hour for an interruptible instance; ``None`` for on-demand.
            runtype: The wire runtype (``ssh``, ``args``, ...); left out when neither it nor ``ssh``/``jupyter``/
                ``direct``/``args`` is given, so the server picks its default (as the official SDK does).
            args: Arguments for the image's entrypoint (``runtype="args"``).
            login: Registry login for a private image (``-u user -p pass registry``).
            cancel_unavail: Fail with 410 instead of queueing when the machine is unavailable.
            Others (``extra``, ``python_utf8``, ``force``, ``template_hash``, volumes, ...): as the official SDK's.

        Returns:
            ``{"success": True, "new_contract": <instance id>}`` plus ``"label"`` when one was given (and
            ``"recovered": True`` when the instance was found by label after an ambiguous failure).

        Raises:
            ValidationError: Arguments outside Vast's limits (checked before sending).
            VastAmbiguousCreateError: The create may have landed and the lookup could not tell.
            VastAPIError: The server refused.
        """
        arg_list = shlex.split(args) if isinstance(args, str) else list(args or [])
        self._validate_create(id, image, disk, label, price if price is not None else bid_price, onstart_cmd, arg_list)
        body = create_payload(
            image=image,
            disk=disk,
            env=env,
            price=price,
            label=label,
            extra=extra,
            onstart_cmd=onstart_cmd,
            login=login,
            python_utf8=python_utf8,
            lang_utf8=lang_utf8,
            jupyter_lab=jupyter_lab,
            jupyter_dir=jupyter_dir,
            force=force,
            cancel_unavail=cancel_unavail,
            template_hash=template_hash,
            user=user,
            runtype=runtype,
            args=args,
            volume_info=volume_info,
            bid_price=bid_price,
            ssh=ssh,
            jupyter=jupyter,
            direct=direct,
            create_volume=create_volume,
            link_volume=link_volume,
            volume_size=volume_size,
            mount_path=mount_path,
            volume_label=volume_label,
        )
        started = time.time()
        path = f"/asks/{int(id)}/"
        # Not retry_with_backoff: a create whose answer was lost may have rented a machine, so what to
        # do next depends on a lookup (found: done; offer taken: look again; nothing: send once more).
        # A blind retry could rent two. The request itself still gets the safe retries (429, connect).
        try:
            data = self._core.call("PUT", path, body=body, idempotent=False)
        except Ambiguous as amb:
            # It may have landed: look before trying again. Retrying on the same offer is then safe
            # against a late landing too, because a rented offer answers no_such_ask.
            first = amb.error
            if label is None:
                raise VastAmbiguousCreateError(
                    f"Creating an instance on offer {id} failed ambiguously ({first.message}); it has no "
                    "label to look it up by, so it was not retried and may have rented a machine.",
                    label=None,
                    offer_id=int(id),
                    status=first.status,
                    error=first.error,
                    method="PUT",
                    path=first.path,
                    retryable=False,
                ) from None
            logger.warning(
                "vast create on offer %s failed ambiguously (%s); looking up label %s", id, first.error, label
            )
            found = self._lookup_label(label, started, first, int(id), grace=0.0)
            if found is None and self._core.retry > 1:
                try:
                    data = self._core.call("PUT", path, body=body, idempotent=False)
                except Ambiguous as again:
                    found = self._lookup_label(label, started, again.error, int(id), grace=self.create_lookup_grace)
                    if found is None:
                        raise VastAmbiguousCreateError(
                            f"Creating an instance on offer {id} failed twice ({again.error.message}); no "
                            f"instance labelled {label!r} appeared within {self.create_lookup_grace:g} s.",
                            label=label,
                            offer_id=int(id),
                            status=again.error.status,
                            error=again.error.error,
                            method="PUT",
                            path=again.error.path,
                            retryable=False,
                        ) from None
                except VastNotFoundError:
                    # The offer is taken: by the first attempt landing late, or by someone else.
                    found = self._lookup_label(label, started, first, int(id), grace=self.create_lookup_grace)
                    if found is None:
                        raise
                else:
                    return self._created(data, label)
            elif found is None:
                found = self._lookup_label(label, started, first, int(id), grace=self.create_lookup_grace)
                if found is None:
                    raise VastAmbiguousCreateError(
                        f"Creating an instance on offer {id} failed ambiguously ({first.message}) and no "
                        f"instance labelled {label!r} appeared within {self.create_lookup_grace:g} s.",
                        label=label,
                        offer_id=int(id),
                        status=first.status,
                        error=first.error,
                        method="PUT",
                        path=first.path,
                        retryable=False,
                    ) from None
            result = {"success": True, "new_contract": found["id"], "label": label, "recovered": True}
            self._show(result)
            return result
        return self._created(data, label)

    def _created(self, data: Any, label: str | None) -> dict[str, Any]:
        result = dict(data) if isinstance(data, Mapping) else {"success": True, "new_contract": data}
        if label is not None:
            result.setdefault("label", label)
        self._show(result)
        return result

    def _lookup_label(
        self, label: str, since: float, cause: VastAPIError, offer_id: int, grace: float
    ) -> dict[str, Any] | None:
        """Find the instance a create with ``label`` made, polling up to ``grace`` seconds."""
        deadline = time.monotonic() + grace
        while True:
            try:
                found = self._find_by_label(label, since)
            except VastAPIError as exc:
                raise VastAmbiguousCreateError(
                    f"Creating an instance on offer {offer_id} failed ambiguously ({cause.message}) and the "
                    f"lookup by label failed too ({exc.message}); an instance labelled {label!r} may exist.",
                    label=label,
                    offer_id=offer_id,
                    status=cause.status,
                    error=cause.error,
                    method="PUT",
                    path=cause.path,
                    retryable=False,
                ) from exc
            if found is not None or time.monotonic() >= deadline:
                return found
            self._core.sleep(min(1.0, max(0.05, grace / 10)))

    @staticmethod
    def _validate_create(
        id: Any,
        image: str | None,
        disk: float,
        label: str | None,
        price: float | None,
        onstart: str | None,
        args: list[str],
    ) -> None:
        problems = []
        if not isinstance(id, int) or isinstance(id, bool) or id < 0:
            problems.append(f"id must be an offer id from search_offers (got {str(id)[:40]!r})")
        if image is None:
            problems.append("an image is needed (e.g. image='pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime')")
        elif not isinstance(image, str) or not image or len(image) > 1024:
            problems.append("image must be 1–1024 characters")
        if not isinstance(disk, (int, float)) or isinstance(disk, bool) or not disk >= 8:
            problems.append(f"disk must be at least 8 GB (got {disk!r})")
        if label is not None and len(label) > 256:
            problems.append(f"label must be at most 256 characters (got {len(label)})")
        if price is not None and not (0.001 <= price <= 128):
            problems.append(f"price must be between 0.001 and 128 $/hour (got {price!r})")
        if len(onstart or "") + len(" ".join(args)) > 4096:
            problems.append("onstart + args must be at most 4096 characters")
        if problems:
            raise ValidationError(
                "Invalid create_instance arguments: " + "; ".join(problems) + ".",
                recovery_suggestion="Fix the arguments; Vast rejects requests outside these limits.",
            )

    def _find_by_label(self, label: str, since: float) -> dict[str, Any] | None:
        matches = [i for i in self._list_instances() if i.get("label") == label]
        # A label a user reused may belong to an older instance: prefer ones that started just now.
        recent = [
            i for i in matches if not isinstance(i.get("start_date"), (int, float)) or i["start_date"] >= since - 300
        ]
        if not recent:
            return None
        return max(recent, key=lambda i: int(i.get("id") or 0))

    def _list_instances(self, page_size: int = 25) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {
                "select_filters": {},
                "order_by": [{"col": "id", "dir": "asc"}],
                "limit": page_size,
            }
            if token:
                params["after_token"] = token
            resp, _ = self._core.send("GET", "/api/v1/instances/", params=params)
            if resp.status_code == 404 and token is None:
                data = self._core.call("GET", "/instances", params={"owner": "me"})  # older servers: v0
                rows = data.get("instances") if isinstance(data, Mapping) else None
                return [redact_instance(dict(r)) for r in rows or [] if isinstance(r, Mapping)]
            data = self._core.decode(resp, "GET", "/api/v1/instances/")
            rows = data.get("instances") if isinstance(data, Mapping) else None
            out.extend(redact_instance(dict(r)) for r in rows or [] if isinstance(r, Mapping))
            token = data.get("next_token") if isinstance(data, Mapping) else None
            if not token or token in seen:
                return out
            seen.add(token)

    @_api
    def show_instances(self) -> list[dict[str, Any]]:
        """All your instances (``GET /api/v1/instances/``, following ``next_token``)."""
        rows = self._list_instances()
        self._show(rows, "instances")
        return rows

    @_api
    def show_instance(self, id: int) -> dict[str, Any]:
        """One instance (``GET /api/v0/instances/{id}/?owner=me``).

        Raises:
            VastNotFoundError: The instance does not exist (any more).
        """
        data = self._core.call("GET", f"/instances/{int(id)}/", params={"owner": "me"})
        row = data.get("instances") if isinstance(data, Mapping) else None
        if not isinstance(row, Mapping):
            raise VastNotFoundError(
                f"Instance {id} not found.",
                status=404,
                error="not_found",
                method="GET",
                path=f"/api/v0/instances/{int(id)}/",
            )
        result = redact_instance(dict(row))
        self._show(result)
        return result

    @_api
    def destroy_instance(self, id: int) -> dict[str, Any]:
        """Destroy an instance for good (``DELETE /api/v0/instances/{id}/``); billing stops.

        Retried safely: when an earlier attempt's response was lost and the retry finds the instance
        gone, the destroy counts as done.
        """
        result = self._core.call("DELETE", f"/instances/{int(id)}/", body={}, gone_ok_after_retry=True)
        self._show(result)
        return dict(result) if isinstance(result, Mapping) else {"success": True}

    def _put_instance(self, id: int, body: dict[str, Any]) -> dict[str, Any]:
        result = self._core.call("PUT", f"/instances/{int(id)}/", body=body)
        self._show(result)
        return dict(result) if isinstance(result, Mapping) else {"success": True}

    @_api
    def start_instance(self, id: int) -> dict[str, Any]:
        """Start a stopped instance (``{"state": "running"}``)."""
        return self._put_instance(id, {"state": "running"})

    @_api
    def stop_instance(self, id: int) -> dict[str, Any]:
        """Stop an instance; GPU billing stops, storage billing continues."""
        return self._put_instance(id, {"state": "stopped"})

    @_api
    def reboot_instance(self, id: int) -> dict[str, Any]:
        """Restart an instance's container (``PUT /api/v0/instances/reboot/{id}/``)."""
        result = self._core.call("PUT", f"/instances/reboot/{int(id)}/", body={})
        self._show(result)
        return dict(result) if isinstance(result, Mapping) else {"success": True}

    @_api
    def label_instance(self, id: int, label: str) -> dict[str, Any]:
        """Set an instance's label (≤ 256 characters)."""
        if len(label) > 256:
            raise ValidationError(f"label must be at most 256 characters (got {len(label)}).")
        return self._put_instance(id, {"label": label})

    @_api
    def change_bid(self, id: int, price: float | None = None) -> dict[str, Any]:
        """Change an interruptible instance's bid in $/hour (``None``: the server's default)."""
        if price is not None and not (0.001 <= price <= 128):
            raise ValidationError(f"price must be between 0.001 and 128 $/hour (got {price!r}).")
        result = self._core.call("PUT", f"/instances/bid_price/{int(id)}/", body={"client_id": "me", "price": price})
        self._show(result)
        return dict(result) if isinstance(result, Mapping) else {"success": True}

    @_api
    def logs(
        self,
        instance_id: int,
        tail: str | int | None = None,
        filter: str | None = None,
        daemon_logs: bool = False,
        *,
        timeout: float = 60.0,
        poll_interval: float = 0.3,
    ) -> str:
        """An instance's container log (its last ``tail`` lines; all of it when ``tail`` is ``None``).

        Asks for the log (``PUT /api/v0/instances/request_logs/{id}/``, body ``{"tail", "filter",
        "daemon_logs"}`` with the ones given), then polls the returned ``result_url`` without credentials
        every ``poll_interval`` seconds until it is ready.

        Args:
            instance_id: The instance.
            tail: Number of lines from the end (the official SDK sends it as given: ``"1000"``).
            filter: Only lines matching this text (server-side grep).
            daemon_logs: The host daemon's log for the instance instead of the container's.

        Raises:
            VastAPIError: ``error="timeout"`` when the log is not ready within ``timeout`` seconds, or
                ``error="bad_response"`` when Vast answers without a log URL.
        """
        body: dict[str, Any] = {}
        if filter:
            body["filter"] = filter
        if tail:
            body["tail"] = tail
        if daemon_logs:
            body["daemon_logs"] = "true"
        data = self._core.call("PUT", f"/instances/request_logs/{int(instance_id)}/", body=body)
        url = data.get("result_url") if isinstance(data, Mapping) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise VastAPIError(
                "Vast.ai did not return a log URL.",
                error="bad_response",
                method="PUT",
                path=f"/api/v0/instances/request_logs/{int(instance_id)}/",
            )
        return self._poll_result(url, f"The log of instance {instance_id}", timeout, poll_interval)

    def _poll_result(self, url: str, what: str, timeout: float, poll_interval: float) -> str:
        """GET a result URL (no credentials) until it answers 200; its text."""
        deadline = time.monotonic() + timeout
        path = urlsplit(url).path
        while True:
            resp, _ = self._core.send("GET", url, auth=False)
            if resp.status_code == 200:
                text = resp.text
                self._show(text)
                return text
            if resp.status_code not in (403, 404):
                raise self._core.error_from(resp, "GET", path)
            if time.monotonic() >= deadline:
                raise VastAPIError(
                    f"{what} was not ready within {timeout:g} s.",
                    error="timeout",
                    method="GET",
                    path=path,
                    retryable=True,
                )
            self._core.sleep(poll_interval)

    # ------------------------------------------------------------------------------------ account

    @_api
    def show_user(self) -> dict[str, Any]:
        """The current user (``GET /api/v0/users/current``), without any key or secret field."""
        data = self._core.call("GET", "/users/current")
        result = {k: v for k, v in (data.items() if isinstance(data, Mapping) else ()) if not SECRETISH.search(str(k))}
        self._show(result)
        return result

    @_api
    def show_ssh_keys(self) -> list[dict[str, Any]]:
        """Your account's SSH public keys."""
        data = self._core.call("GET", "/ssh/")
        rows = data.get("ssh_keys", data.get("keys", [])) if isinstance(data, Mapping) else data
        result = [dict(r) for r in rows or [] if isinstance(r, Mapping)]
        self._show(result)
        return result

    @staticmethod
    def _check_public_key(key: str) -> str:
        key = key.strip()
        if "PRIVATE KEY" in key:
            raise ValidationError("That is a private SSH key; give the public one (it starts with 'ssh-').")
        if not key.lower().startswith(("ssh-", "ecdsa-", "sk-")):
            raise ValidationError("That does not look like an SSH public key (expected 'ssh-…').")
        return key

    @_api
    def create_ssh_key(self, ssh_key: str | None = None) -> dict[str, Any]:
        """Add an SSH public key to your account (``POST /api/v0/ssh/``).

        Raises:
            ValidationError: No key, a private key, or text that is not an SSH public key.
        """
        if ssh_key is None:
            raise ValidationError(
                "create_ssh_key needs the public key text.",
                recovery_suggestion="Pass e.g. ssh_key=Path('~/.ssh/id_ed25519.pub').expanduser().read_text().",
            )
        result = self._core.call("POST", "/ssh/", body={"ssh_key": self._check_public_key(ssh_key)})
        self._show(result)
        return dict(result) if isinstance(result, Mapping) else {"success": True}

    @_api
    def delete_ssh_key(self, id: int) -> dict[str, Any]:
        """Remove an SSH key from your account."""
        result = self._core.call("DELETE", f"/ssh/{int(id)}/", body={})
        self._show(result)
        return dict(result) if isinstance(result, Mapping) else {"success": True}

    @_api
    def attach_ssh(self, instance_id: int, ssh_key: str) -> dict[str, Any]:
        """Attach an SSH public key to a running instance (``POST /api/v0/instances/{id}/ssh/``)."""
        body = {"ssh_key": self._check_public_key(ssh_key)}
        result = self._core.call("POST", f"/instances/{int(instance_id)}/ssh/", body=body)
        self._show(result)
        return dict(result) if isinstance(result, Mapping) else {"success": True}


install_table_methods(VastAI)
