"""A loopback Vast.ai server that records every request and answers in the real protocol's shape.

Used by the wire-conformance test (the official ``vastai`` SDK and :class:`vibeml.vast.VastAI` are driven
against it with the same arguments and their requests compared) and by the surface tests. Its answers
follow the documented protocol (``FACTS.md``: ``{"success": true}``, ``{"instances": {...}}`` with
``extra_env`` as ``[[k, v], ...]``, ``{"offers": [...]}``, a ``result_url`` for logs), not what one client
happens to expect, and requests without a key are refused as Vast refuses them (401 ``auth_error``).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["RecordedRequest", "RecordingVast"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; ``query`` values are decoded from JSON where they parse."""

    method: str
    path: str
    query: dict[str, Any]
    body: Any
    authorized: bool = field(compare=False)

    def key(self) -> tuple[str, str, str, str]:
        """A comparable form (JSON with sorted keys for the query and the body)."""
        return (
            self.method,
            self.path,
            json.dumps(self.query, sort_keys=True),
            json.dumps(self.body, sort_keys=True),
        )


def _decode_query(raw: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in parse_qsl(raw, keep_blank_values=True):
        if k == "api_key":  # the legacy way to authenticate, never compared
            continue
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def _instance(iid: int) -> dict[str, Any]:
    return {
        "id": iid,
        "actual_status": "running",
        "intended_status": "running",
        "cur_state": "running",
        "status_msg": "",
        "label": None,
        "image_uuid": "pytorch/pytorch",
        "onstart": "",
        "extra_env": [["HF_TOKEN", "hf_secret"], ["MODE", "train"]],
        "ssh_host": "ssh1.vast.ai",
        "ssh_port": 22000 + iid % 1000,
        "public_ipaddr": "203.0.113.7",
        "ports": {"22/tcp": [{"HostPort": str(40000 + iid % 1000)}]},
        "start_date": 1_700_000_000.0,
        "dph_total": 0.5,
        "storage_total_cost": 0.01,
        "is_bid": False,
        "gpu_util": 0.0,
        "disk_usage": 0.1,
        "machine_id": 4242,
    }


_OFFER = {
    "id": 9001,
    "ask_contract_id": 9001,
    "machine_id": 4242,
    "host_id": 77,
    "num_gpus": 1,
    "gpu_name": "RTX 4090",
    "gpu_ram": 24564,
    "dph_base": 0.4,
    "dph_total": 0.41,
    "min_bid": 0.2,
    "storage_cost": 0.1,
    "reliability": 0.995,
    "geolocation": "Texas, US",
    "rentable": True,
    "rented": False,
    "verification": "verified",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        bearer = self.headers.get("Authorization") or ""
        authorized = (bearer.startswith("Bearer ") and bool(bearer[7:].strip())) or "api_key=" in parts.query
        owner = self.server.owner
        if not parts.path.startswith("/results/"):
            owner._record(RecordedRequest(method, parts.path, _decode_query(parts.query), body, authorized))
        status, payload = owner.answer(method, parts.path, authorized)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: RecordingVast


_INSTANCE = re.compile(r"^/api/v0/instances/(\d+)/$")


class RecordingVast:
    """``with RecordingVast() as srv: ...``; ``srv.url`` is the base URL, ``srv.take()`` the requests so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        #: rows of ``GET /instances/pending-price-increases/`` and ``GET /template/`` (tests set them)
        self.pending_price_increases: list[dict[str, Any]] = []
        self.templates: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-vast", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RecordingVast:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def take(self) -> list[RecordedRequest]:
        """The requests recorded since the last ``take`` (the log is then cleared)."""
        with self._lock:
            out, self._requests = self._requests, []
        return out

    def answer(self, method: str, path: str, authorized: bool) -> tuple[int, Any]:
        """The protocol-shaped answer for one request."""
        if path.startswith("/results/"):
            return 200, "line 1\nline 2\n"
        if not authorized:
            return 401, {"success": False, "error": "auth_error", "msg": "Invalid user key"}
        m = _INSTANCE.match(path)
        if m and method == "GET":
            return 200, {"instances": _instance(int(m.group(1)))}
        if path == "/api/v1/instances/":
            return 200, {"instances": [_instance(1234)], "next_token": None, "total_instances": 1}
        if path == "/api/v0/instances/" and method == "GET":
            return 200, {"instances": [_instance(1234)]}
        if path.startswith(("/api/v0/instances/request_logs/", "/api/v0/instances/command/")):
            return 200, {"success": True, "result_url": self.url + "/results/log.txt"}
        if path == "/api/v0/bundles/" or path.startswith("/api/v0/bundles"):
            return 200, {"offers": [dict(_OFFER)]}
        if path.startswith("/api/v0/asks/"):
            return 200, {"success": True, "new_contract": 1234}
        if path == "/api/v0/users/current/" or path == "/api/v0/users/current":
            return 200, {"id": 1, "email": "user@example.com", "balance": 10.0, "credit": 5.0, "username": "u"}
        if path == "/api/v0/instances/pending-price-increases/":
            return 200, {"pending_price_increases": list(self.pending_price_increases)}
        if path == "/api/v0/template/" and method == "GET":
            return 200, {"success": True, "templates": list(self.templates)}
        if path in ("/api/v0/search/asks/",):
            return 200, {"offers": [dict(_OFFER)]}
        return 200, {"success": True}
