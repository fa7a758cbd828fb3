"""Turn :data:`vibeml.vast.endpoints.ENDPOINTS` into requests, results and methods (shared by both clients).

Pure functions: :func:`bind` checks a call's arguments against an endpoint's parameters, :func:`requests_for`
builds the request(s) a call makes, :func:`shape` turns the answer into what the official SDK returns, and
:func:`signature` gives the generated method its official signature.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from vibeml.exceptions import ValidationError
from vibeml.vast._http import DEFAULT_SERVER_URL, redact_instance
from vibeml.vast.endpoints import CONVERTERS, REQUIRED, Endpoint
from vibeml.vast.models import VastNotFoundError

__all__ = ["Request", "bind", "requests_for", "shape", "signature"]

AUTOSCALER_URL = "https://run.vast.ai"


@dataclass(frozen=True)
class Request:
    verb: str
    path: str
    params: dict[str, Any] | None
    body: Any
    idempotent: bool


def signature(ep: Endpoint) -> inspect.Signature:
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for p in ep.params:
        kind = inspect.Parameter.KEYWORD_ONLY if p.kw else inspect.Parameter.POSITIONAL_OR_KEYWORD
        default = inspect.Parameter.empty if p.default is REQUIRED else p.default
        params.append(inspect.Parameter(p.name, kind, default=default))
    return inspect.Signature(params)


def bind(name: str, ep: Endpoint, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments by name, defaults filled in; a wrong call is a typed error, not a TypeError."""
    try:
        bound = signature(ep).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise ValidationError(
            f"VastAI.{name}{signature(ep)}: {exc}.".replace("(self, ", "(").replace("(self)", "()"),
            context={"method": name},
            recovery_suggestion="Call it with the parameters shown (the official vastai SDK's).",
        ) from None
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop("self", None)
    return out


def _value(spec: Any, args: Mapping[str, Any]) -> Any:
    if isinstance(spec, str) and spec.startswith("$"):
        ref, _, conv = spec[1:].partition("|")
        value = args[ref]
        return CONVERTERS[conv](value, args) if conv else value
    return spec


def _fill(template: Mapping[str, Any] | None, args: Mapping[str, Any], omit_none: frozenset[str]) -> Any:
    if template is None:
        return None
    out: dict[str, Any] = {}
    for key, spec in template.items():
        value = _value(spec, args)
        if key == "**":
            if not isinstance(value, Mapping):
                raise ValidationError(
                    f"Expected a dict of parameters, got {type(value).__name__}.",
                    recovery_suggestion="Pass the parameters as a dict, e.g. {'limit': 10}.",
                )
            out.update(value)
        elif not (value is None and key in omit_none):
            out[key] = value
    return out


def _path(ep: Endpoint, args: Mapping[str, Any], server_url: str) -> str:
    values = {k: quote(str(v), safe="") for k, v in args.items()}
    path = ep.path.format(**values) if "{" in ep.path else ep.path
    if ep.base == "autoscaler":
        return (AUTOSCALER_URL if server_url == DEFAULT_SERVER_URL else server_url) + path
    return path


def requests_for(ep: Endpoint, args: Mapping[str, Any], server_url: str) -> list[Request]:
    """The request(s) one call sends, in order."""
    calls = [dict(args)]
    if ep.fan_out is not None:
        calls = [{**args, ep.fan_out: item} for item in args[ep.fan_out]]
    out = []
    for a in calls:
        query = _fill(ep.query, a, ep.omit_none)
        out.append(
            Request(
                ep.verb,
                _path(ep, a, server_url),
                query or None,
                _fill(ep.body, a, ep.omit_none),
                ep.safe_to_retry,
            )
        )
    return out


def _rows(data: Any, key: str) -> list[dict[str, Any]]:
    rows = data.get(key) if isinstance(data, Mapping) else data
    return [dict(r) for r in rows or [] if isinstance(r, Mapping)]


def shape(name: str, ep: Endpoint, data: Any, args: Mapping[str, Any]) -> Any:
    """What the official method returns for this answer (secrets masked)."""
    if ep.result is not None:
        data = data.get(ep.result, ep.result_default) if isinstance(data, Mapping) else ep.result_default
    post = ep.post
    if post == "one_machine":
        if isinstance(data, list):
            if len(data) != 1:
                raise VastNotFoundError(
                    f"Machine {args.get('id')} not found." if not data else f"Expected one machine, got {len(data)}.",
                    status=404,
                    error="not_found",
                    method="GET",
                    path=ep.path,
                )
            return data[0]
        return data
    if post == "unwrap_apikeys":
        return data.get("apikeys", data) if isinstance(data, Mapping) else data
    if post in ("results", "results_without_keys"):
        rows = _rows(data, "results")
        for row in rows:
            for k in ("api_key", "auto_delete_in_seconds", "auto_delete_due_24h"):
                row.pop(k, None)
        return rows
    if post == "invoices":
        rows = _rows(data, "invoices")
        if args.get("only_charges"):
            rows = [r for r in rows if r.get("type") == "charge"]
        elif args.get("only_credits"):
            rows = [r for r in rows if r.get("type") == "payment"]
        return {"invoices": rows, "current": data.get("current") if isinstance(data, Mapping) else None}
    if post == "volumes":
        rows = _rows(data, "volumes")
        for row in rows:
            if isinstance(row.get("start_date"), (int, float)):
                row["duration"] = time.time() - row["start_date"]
        return rows
    if post == "mask_env":
        if not args.get("show_values") and isinstance(data, Mapping):
            return dict.fromkeys(data, "****")
        return data
    if post == "instances":
        return [redact_instance(r) for r in _rows(data, "instances")]
    return data
