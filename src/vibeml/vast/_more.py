"""The rest of the official SDK's surface on :class:`vibeml.vast.VastAI`: the table's methods and the special ones.

:func:`install_table_methods` gives ``VastAI`` one method per :data:`~vibeml.vast.endpoints.ENDPOINTS` entry
(official name, parameters and defaults; curl/explain/raw handled like every other method). The methods
that are more than one table entry are written out in :class:`SpecialMethods`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from vibeml.exceptions import ValidationError, VibeMLError
from vibeml.vast._http import Ambiguous, CurlShortCircuit
from vibeml.vast._payloads import (
    create_payload,
    launch_payload,
    offer_search_body,
    parse_location,
    rclone_flags,
    template_payload,
    volume_search_body,
)
from vibeml.vast._surface import Request, bind, requests_for, shape, signature
from vibeml.vast.endpoints import ENDPOINTS, NOT_APPLICABLE, Endpoint
from vibeml.vast.models import VastAPIError, VastNotFoundError
from vibeml.vast.query import parse_query

if TYPE_CHECKING:
    from rich.console import Console

    from vibeml.vast._http import VastHTTP

__all__ = ["NotApplicableError", "SpecialMethods", "install_table_methods"]


class NotApplicableError(VibeMLError):
    """A method of the official SDK that has no Python implementation there either."""


def send_request(core: VastHTTP, req: Request) -> Any:
    """One table request through the pooled client; a possibly-landed non-idempotent call is a typed error."""
    try:
        return core.call(req.verb, req.path, body=req.body, params=req.params, idempotent=req.idempotent)
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


def _curl_aware(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except CurlShortCircuit as short:
            if not self.quiet:
                self._console.print(short.command, markup=False, highlight=False, soft_wrap=True)
            return short.command

    return wrapper


def _table_method(name: str, ep: Endpoint) -> Any:
    def method(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self._table_call(name, bind(name, ep, args, kwargs))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = (ep.doc or f"``{ep.verb} {ep.path}`` (the official SDK's ``VastAI.{name}``).") + (
        "\n\nRaises:\n    VastAPIError: The server refused or failed.\n    ValidationError: Wrong arguments."
    )
    method.__signature__ = signature(ep)  # type: ignore[attr-defined]
    return _curl_aware(method)


def install_table_methods(cls: type) -> None:
    """Give ``cls`` every table method it does not define itself."""
    for name, ep in ENDPOINTS.items():
        if name not in cls.__dict__:
            setattr(cls, name, _table_method(name, ep))


def _date_ts(value: Any) -> Any:
    if isinstance(value, str) and not value.isdigit():
        try:
            return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())
        except ValueError:
            raise ValidationError(
                f"Could not parse {value[:40]!r} as a date.", recovery_suggestion="Use YYYY-MM-DD or a Unix timestamp."
            ) from None
    return int(value)


def _fix_dates(query: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for field, sub in query.items():
        if field in fields and isinstance(sub, Mapping):
            sub = {k: _epoch(v) for k, v in sub.items()}
        out[field] = sub
    return out


def _epoch(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return value
    return value


class SpecialMethods:
    """The official methods that are more than one table request (mixed into ``VastAI``)."""

    _core: VastHTTP
    _console: Console
    quiet: bool

    if TYPE_CHECKING:

        def _show(self, data: Any, kind: str = "") -> None: ...
        def show_instance(self, id: int) -> dict[str, Any]: ...
        def show_user(self) -> dict[str, Any]: ...
        def list_machine(self, id: int, **kwargs: Any) -> Any: ...
        def _poll_result(self, url: str, what: str, timeout: float, poll_interval: float) -> str: ...

    def _table_call(self, name: str, args: Mapping[str, Any]) -> Any:
        ep = ENDPOINTS[name]
        answers = [send_request(self._core, req) for req in requests_for(ep, args, self._core.server_url)]
        data = answers if ep.fan_out else answers[0]
        result = shape(name, ep, data, args)
        self._show(result)
        return result

    def _send(self, verb: str, path: str, *, body: Any = None, params: Any = None, idempotent: bool = True) -> Any:
        return send_request(self._core, Request(verb, path, params, body, idempotent))

    # ------------------------------------------------------------------------ searches

    @_curl_aware
    def search_offers_new(
        self,
        query: Any = None,
        type: str = "on-demand",
        order: str = "score-",
        limit: int | None = None,
        storage: float = 5.0,
        no_default: bool = False,
    ) -> list[dict[str, Any]]:
        """Search offers through the newer endpoint (``PUT /search/asks/``, body ``{"select_cols", "q"}``)."""
        q = offer_search_body(query, type=type, order=order, limit=limit, storage=storage, no_default=no_default)
        data = self._send("PUT", "/search/asks/", body={"select_cols": ["*"], "q": q})
        rows = [
            dict(o) for o in (data.get("offers") or [] if isinstance(data, Mapping) else []) if isinstance(o, Mapping)
        ]
        self._show(rows, "offers")
        return rows

    @_curl_aware
    def search_templates(self, query: str | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Templates matching a query (``GET /template/``), e.g. ``"name=pytorch"``."""
        filters = (
            _fix_dates(parse_query(query, {}), ("created_at", "recent_create_date"))
            if isinstance(query, str)
            else query
        )
        data = self._send("GET", "/template/", params={"select_cols": ["*"], "select_filters": filters or {}})
        rows = data.get("templates", []) if isinstance(data, Mapping) else []
        self._show(rows)
        return list(rows)

    @_curl_aware
    def search_benchmarks(
        self,
        query: str | dict[str, Any] | None = None,
        order: list[Any] | None = None,
        limit: int | None = None,
        after_token: str | None = None,
        all_pages: bool = False,
    ) -> list[dict[str, Any]]:
        """Benchmarks matching a query (``GET /benchmarks``): one page, or every page with ``all_pages``."""
        filters = _fix_dates(parse_query(query, {}), ("last_update",)) if isinstance(query, str) else query
        rows: list[dict[str, Any]] = []
        token = after_token
        while True:
            params: dict[str, Any] = {"select_cols": ["*"], "select_filters": filters or {}}
            if order is not None:
                params["order_by"] = order
            if limit is not None:
                params["limit"] = int(limit)
            if token:
                params["after_token"] = token
            data = self._send("GET", "/benchmarks", params=params)
            page = (data.get("benchmarks") if isinstance(data, Mapping) else None) or []
            rows.extend(page)
            token = data.get("next_token") if isinstance(data, Mapping) else None
            if not all_pages or not token:
                break
        self._show(rows)
        return rows

    @_curl_aware
    def search_benchmarks_v1(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of ``GET /benchmarks`` with the caller's parameters (``next_token`` pages on)."""
        return cast("dict[str, Any]", self._send("GET", "/benchmarks", params=dict(params)))

    @_curl_aware
    def search_volumes(
        self,
        query: str | dict[str, Any] | None = None,
        order: str | list[Any] | None = None,
        limit: int | None = None,
        storage: float = 1.0,
        no_default: bool = False,
    ) -> list[dict[str, Any]]:
        """Volume offers (``POST /volumes/search/``)."""
        data = self._send(
            "POST",
            "/volumes/search/",
            body=volume_search_body(query, order, limit, storage, no_default),
            idempotent=True,
        )
        rows = list(data.get("offers", [])) if isinstance(data, Mapping) else []
        self._show(rows)
        return rows

    @_curl_aware
    def search_network_volumes(
        self,
        query: str | dict[str, Any] | None = None,
        order: str | list[Any] | None = None,
        limit: int | None = None,
        storage: float = 1.0,
        no_default: bool = False,
    ) -> list[dict[str, Any]]:
        """Network volume offers (``POST /network_volumes/search/``)."""
        body = volume_search_body(query, order, limit, storage, no_default)
        data = self._send("POST", "/network_volumes/search/", body=body, idempotent=True)
        rows = list(data.get("offers", [])) if isinstance(data, Mapping) else []
        self._show(rows)
        return rows

    @_curl_aware
    def search_invoices(self, query: str | dict[str, Any] | None = None) -> Any:
        """Invoices matching a query (``GET /invoices``)."""
        filters = (
            _fix_dates(parse_query(query, {}), ("when", "paid_on", "payment_expected"))
            if isinstance(query, str)
            else query
        )
        return self._send("GET", "/invoices", params={"select_cols": ["*"], "select_filters": filters or {}})

    @_curl_aware
    def show_invoices_v1(self, **kwargs: Any) -> dict[str, Any]:
        """Invoices (``GET /api/v1/invoices/``) or, with ``charges=True``, charges (``GET /charges/``).

        Keyword arguments as the official SDK's: ``start_date``/``end_date`` (YYYY-MM-DD or timestamps; a
        7-day window by default), ``limit`` (≤ 100), ``latest_first``, ``next_token``, ``charge_type``,
        ``invoice_type``, ``format``.
        """
        charges = bool(kwargs.get("charges", False))
        start, end = kwargs.get("start_date"), kwargs.get("end_date")
        week = 7 * 24 * 3600
        if not start and not end:
            end = int(time.time())
        if not start:
            start = _date_ts(end) - week
        elif not end:
            end = _date_ts(start) + week
        column = "day" if charges else "when"
        filters: dict[str, Any] = {column: {"gte": _date_ts(start), "lte": _date_ts(end)}}
        params: dict[str, Any] = {
            "select_filters": filters,
            "latest_first": kwargs.get("latest_first", False),
            "limit": min(int(kwargs.get("limit", 20)), 100),
        }
        if charges:
            params["format"] = kwargs.get("format", "table")
            kinds = {"i": "instance", "instance": "instance", "v": "volume", "volume": "volume"}
            kinds |= {"s": "serverless", "serverless": "serverless"}
            for ct in kwargs.get("charge_type", []):
                chosen = filters.setdefault("type", {}).setdefault("in", [])
                if ct in kinds:
                    chosen.append(kinds[ct])
        else:
            services = {
                "transfers": "transfer",
                "stripe": "stripe_payments",
                "bitpay": "bitpay",
                "coinbase": "coinbase",
                "crypto.com": "crypto.com",
                "reserved": "instance_prepay",
                "payout_paypal": "paypal_manual",
                "payout_wise": "wise_manual",
            }
            for it in kwargs.get("invoice_type", []):
                chosen = filters.setdefault("service", {}).setdefault("in", [])
                if it in services:
                    chosen.append(services[it])
        if kwargs.get("next_token"):
            params["after_token"] = kwargs["next_token"]
        path = "/api/v0/charges/" if charges else "/api/v1/invoices/"
        return cast("dict[str, Any]", self._send("GET", path, params=params))

    # ------------------------------------------------------------------------ instances

    @_curl_aware
    def create_instances(
        self,
        ids: list[int],
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
        args: list[str] | None = None,
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
        """Rent several offers with one request (``POST /asks/bulk/``); other arguments as ``create_instance``.

        Never retried blindly: a failure that may have rented machines is reported, not repeated.
        """
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValidationError("ids must be a list of offer ids.", recovery_suggestion="Pass e.g. ids=[123, 456].")
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
        body["ids"] = ids
        result = self._send("POST", "/asks/bulk/", body=body, idempotent=False)
        self._show(result)
        return cast("dict[str, Any]", result)

    @_curl_aware
    def launch_instance(
        self,
        gpu_name: str,
        num_gpus: str,
        image: str,
        region: str | None = None,
        disk: float = 10,
        order: str = "score-",
        limit: int | None = None,
        env: Mapping[str, Any] | str | None = None,
        label: str | None = None,
        extra: str | None = None,
        onstart_cmd: str | None = None,
        login: str | None = None,
        python_utf8: bool = False,
        lang_utf8: bool = False,
        jupyter_lab: bool = False,
        jupyter_dir: str | None = None,
        cancel_unavail: bool = False,
        template_hash: str | None = None,
        runtype: str | None = None,
        args: list[str] | None = None,
        query: dict[str, Any] | None = None,
        ssh: bool = False,
        jupyter: bool = False,
        direct: bool = False,
    ) -> dict[str, Any]:
        """Search and rent the best offer in one request (``PUT /launch_instance/``); never retried blindly."""
        body = launch_payload(
            gpu_name,
            num_gpus,
            image,
            region=region,
            disk=disk,
            order=order,
            limit=limit,
            env=env,
            label=label,
            extra=extra,
            onstart_cmd=onstart_cmd,
            login=login,
            python_utf8=python_utf8,
            lang_utf8=lang_utf8,
            jupyter_lab=jupyter_lab,
            jupyter_dir=jupyter_dir,
            cancel_unavail=cancel_unavail,
            template_hash=template_hash,
            runtype=runtype,
            args=args,
            query=query,
            ssh=ssh,
            jupyter=jupyter,
            direct=direct,
        )
        result = self._send("PUT", "/launch_instance/", body=body, idempotent=False)
        self._show(result)
        return cast("dict[str, Any]", result)

    @_curl_aware
    def execute(self, id: int, command: str, *, timeout: float = 60.0, poll_interval: float = 0.3) -> Any:
        """Run a command in an instance (``PUT /instances/command/{id}/``) and return its output."""
        data = self._send("PUT", f"/instances/command/{int(id)}/", body={"command": command}, idempotent=False)
        url = data.get("result_url") if isinstance(data, Mapping) else None
        if not url:
            return data
        return self._poll_result(str(url), f"the output of the command on instance {id}", timeout, poll_interval)

    def _address(self, id: int, scheme: str) -> str:
        try:
            inst = self.show_instance(id)
        except VastNotFoundError:
            return ""
        ports = inst.get("ports") or {}
        port = inst.get("ssh_port") or (ports.get("22/tcp") or [{}])[0].get("HostPort")
        ip = inst.get("ssh_host") or inst.get("public_ipaddr")
        return f"{scheme}://root@{ip}:{port}" if port and ip else ""

    @_curl_aware
    def ssh_url(self, id: int) -> str:
        """``ssh://root@host:port`` for an instance (``""`` when it has no address yet or is gone)."""
        return self._address(id, "ssh")

    @_curl_aware
    def scp_url(self, id: int) -> str:
        """``scp://root@host:port`` for an instance (``""`` when it has no address yet or is gone)."""
        return self._address(id, "scp")

    def _pending_row(self, instance_id: int) -> dict[str, Any]:
        data = self._send("GET", "/instances/pending-price-increases/")
        rows = (data.get("pending_price_increases") if isinstance(data, Mapping) else None) or []
        for row in rows:
            if isinstance(row, Mapping) and row.get("contract_id") == int(instance_id):
                return dict(row)
        raise VastNotFoundError(
            f"No pending price increase for instance {instance_id}.",
            status=None,
            error="not_found",
            method="GET",
            path="/api/v0/instances/pending-price-increases/",
        )

    @_curl_aware
    def accept_price_increase(self, instance_id: int) -> dict[str, Any]:
        """Accept the pending price increase on an instance (found in the pending list)."""
        row = self._pending_row(instance_id)
        body = {"pending_price_increase_id": int(row["pending_price_increase_id"])}
        return cast("dict[str, Any]", self._send("PUT", "/instances/accept-price-increase/", body=body))

    @_curl_aware
    def reject_price_increase(self, instance_id: int) -> dict[str, Any]:
        """Reject the pending price increase on an instance (found in the pending list)."""
        row = self._pending_row(instance_id)
        body = {"pending_price_increase_id": int(row["pending_price_increase_id"])}
        return cast("dict[str, Any]", self._send("PUT", "/instances/reject-price-increase/", body=body))

    # ------------------------------------------------------------------------ storage

    @_curl_aware
    def copy(self, src: str, dst: str) -> dict[str, Any]:
        """Copy between instances, volumes and clouds: ``"<id>:<path>"`` locations (``PUT /commands/copy_direct/``;
        with a local side, ``PUT /commands/rsync/``, whose answer tells where to rsync)."""
        src_id, src_path = parse_location(src)
        dst_id, dst_path = parse_location(dst)
        body = {"client_id": "me", "src_id": src_id, "dst_id": dst_id, "src_path": src_path, "dst_path": dst_path}
        path = "/commands/rsync/" if src_id is None or dst_id is None else "/commands/copy_direct/"
        return cast("dict[str, Any]", self._send("PUT", path, body=body, idempotent=False))

    @_curl_aware
    def cloud_copy(
        self,
        src: str,
        dst: str = "/workspace",
        instance: str | None = None,
        connection: str | None = None,
        transfer: str = "Instance to Cloud",
        dry_run: bool = False,
        size_only: bool = False,
        ignore_existing: bool = False,
        update: bool = False,
        delete_excluded: bool = False,
        flags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Copy between an instance and a cloud connection with rclone (``POST /commands/rclone/``)."""
        if flags is None:
            flags = rclone_flags(
                dry_run=dry_run,
                size_only=size_only,
                ignore_existing=ignore_existing,
                update=update,
                delete_excluded=delete_excluded,
            )
        body = {
            "src": src,
            "dst": dst,
            "instance_id": instance,
            "selected": connection,
            "transfer": transfer,
            "flags": flags or [],
        }
        return cast("dict[str, Any]", self._send("POST", "/commands/rclone/", body=body, idempotent=False))

    # ------------------------------------------------------------------------ hosting and account

    @_curl_aware
    def list_machines(self, ids: list[int], **kwargs: Any) -> list[dict[str, Any]]:
        """``list_machine`` for each machine id (same keyword arguments); the answers in order."""
        list_machine = self.list_machine
        return [list_machine(i, **kwargs) for i in ids]

    @_curl_aware
    def create_subaccount(self, email: str, username: str, password: str, type: str | None = None) -> dict[str, Any]:
        """Create a subaccount (``POST /users/``); ``type="host"`` makes a host-only one."""
        body = {
            "email": email,
            "username": username,
            "password": password,
            "host_only": type is not None and type.lower() == "host",
            "parent_id": "me",
        }
        return cast("dict[str, Any]", self._send("POST", "/users/", body=body, idempotent=False))

    @_curl_aware
    def create_template(
        self,
        name: str | None = None,
        image: str | None = None,
        image_tag: str | None = None,
        href: str | None = None,
        repo: str | None = None,
        login: str | None = None,
        env: str | None = None,
        ssh: bool = False,
        jupyter: bool = False,
        direct: bool = False,
        jupyter_dir: str | None = None,
        jupyter_lab: bool = False,
        onstart_cmd: str | None = None,
        search_params: str | None = None,
        no_default: bool = False,
        disk_space: float | None = None,
        readme: str | None = None,
        hide_readme: bool = False,
        desc: str | None = None,
        public: bool = False,
        runtype: str | None = None,
        use_ssh: bool | None = None,
        jup_direct: bool | None = None,
        ssh_direct: bool | None = None,
        use_jupyter_lab: bool | None = None,
        docker_login_repo: str | None = None,
        extra_filters: dict[str, Any] | None = None,
        readme_visible: bool | None = None,
        private: bool | None = None,
    ) -> dict[str, Any]:
        """Create a template (``POST /template/``)."""
        body = template_payload(**{k: v for k, v in locals().items() if k != "self"})
        return cast("dict[str, Any]", self._send("POST", "/template/", body=body, idempotent=False))

    @_curl_aware
    def update_template(
        self,
        hash_id: str,
        name: str | None = None,
        image: str | None = None,
        image_tag: str | None = None,
        href: str | None = None,
        repo: str | None = None,
        login: str | None = None,
        env: str | None = None,
        ssh: bool = False,
        jupyter: bool = False,
        direct: bool = False,
        jupyter_dir: str | None = None,
        jupyter_lab: bool = False,
        onstart_cmd: str | None = None,
        search_params: str | None = None,
        no_default: bool = False,
        disk_space: float | None = None,
        readme: str | None = None,
        hide_readme: bool = False,
        desc: str | None = None,
        public: bool = False,
        runtype: str | None = None,
        use_ssh: bool | None = None,
        jup_direct: bool | None = None,
        ssh_direct: bool | None = None,
        use_jupyter_lab: bool | None = None,
        docker_login_repo: str | None = None,
        extra_filters: dict[str, Any] | None = None,
        readme_visible: bool | None = None,
        private: bool | None = None,
    ) -> dict[str, Any]:
        """Replace a template (``PUT /api/v1/template/``): its id is looked up by ``hash_id`` first."""
        fields = {k: v for k, v in locals().items() if k not in ("self", "hash_id")}
        matches = self.search_templates({"hash_id": {"eq": hash_id}})
        if not matches:
            raise VastNotFoundError(
                f"No template found with hash_id {hash_id!r}.",
                status=None,
                error="not_found",
                method="GET",
                path="/api/v0/template/",
            )
        chosen = matches[0]
        if len(matches) > 1:
            me = self.show_user().get("id")
            chosen = next((m for m in matches if m.get("creator_id") == me), chosen)
        body = {"id": chosen["id"], "hash_id": hash_id, **template_payload(**fields)}
        return cast("dict[str, Any]", self._send("PUT", "/api/v1/template/", body=body))

    @_curl_aware
    def delete_template(self, template_id: int | None = None, hash_id: str | None = None) -> dict[str, Any]:
        """Delete a template by hash id or numeric id (``DELETE /template/``)."""
        body: dict[str, Any] = {}
        if hash_id:
            body["hash_id"] = hash_id
        elif template_id:
            body["template_id"] = template_id
        return cast("dict[str, Any]", self._send("DELETE", "/template/", body=body))

    def set_api_key(self, api_key: str) -> None:
        """Use another API key from now on (kept as a secret; never printed)."""
        self._core.set_key(api_key)

    def generate_pdf_invoices(self, **kwargs: Any) -> Any:
        """Not available: the official SDK raises ``NotImplementedError`` too (a CLI feature)."""
        raise NotApplicableError(
            "generate_pdf_invoices is not available from Python: " + NOT_APPLICABLE["generate_pdf_invoices"] + ".",
            recovery_suggestion="Use show_invoices_v1() for the data, or the `vastai` CLI for PDFs.",
        )

    def self_test_machine(self, machine_id: Any, **kwargs: Any) -> Any:
        """Not available: the official SDK raises ``NotImplementedError`` too (it runs on the host)."""
        raise NotApplicableError(
            "self_test_machine is not available from Python: " + NOT_APPLICABLE["self_test_machine"] + ".",
            recovery_suggestion="Run `vastai self-test machine` on the host.",
        )
