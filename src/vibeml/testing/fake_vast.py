"""A fake Vast.ai server speaking the real REST protocol over real HTTP on loopback.

Usage in tests::

    with FakeVast(created_delay=0.01, loading_delay=0.02) as fake:
        client = VastAI(api_key=fake.api_key, server_url=fake.url)
        offer = client.search_offers("gpu_name=RTX_4090", limit=1)[0]
        iid = client.create_instance(offer["id"], image="img", onstart_cmd="echo hi")["new_contract"]
        fake.wait_for_status(iid, "exited")
        assert "hi" in client.logs(iid)

Faithful machines (a clean image without VibeML, a container-like filesystem, a real SSH endpoint per
running instance): ``FakeVast(machine=FakeMachineImage.build(folder))``, or the ``faithful_vast`` test
fixture; see :mod:`vibeml.testing.fake_vast_machine`.

Or stand-alone: ``python -m vibeml.testing.fake_vast --port 8765`` (key ``fake-vast-key``).

Fault knobs live on ``fake.faults`` (thread-safe, settable while requests are in flight):
``rate_limit``, ``server_error``, ``slow``, ``drop``, ``drop_response``, ``slow_response``, ``land_late``
(a create the client gave up on that is applied later: :class:`LateLanding`), ``never_start``,
``fast_billing`` (instances bill faster than their quote); plus
``fake.preempt(id)`` and ``fake.set_min_bid(offer_id, price)`` for interruptible instances. Endpoint
names for targeting faults: see :data:`ENDPOINTS`.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vibeml.testing.fake_vast_machine import FakeMachineImage
from vibeml.testing.fake_vast_state import FakeVastState, Reply

__all__ = ["ENDPOINTS", "Call", "FakeVast", "FaultPlan", "LateLanding", "ManualClock", "main"]

#: Logical endpoint names, usable as ``endpoint=`` in fault knobs.
ENDPOINTS = (
    "search",
    "create",
    "show_instance",
    "show_instances",
    "destroy",
    "manage",
    "reboot",
    "change_bid",
    "request_logs",
    "logs_result",
    "ssh_keys",
    "attach_ssh",
    "user",
)


class ManualClock:
    """A clock tests move by hand (``clock.advance(3600)``) for exact billing checks."""

    def __init__(self, start: float = 1000.0) -> None:
        self._t = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds


class LateLanding:
    """Requests held by :meth:`FaultPlan.land_late`: applied on :meth:`release` (or after ``seconds``),
    whatever their client did meanwhile (timed out, retried, was killed)."""

    def __init__(self, seconds: float | None, answer: bool) -> None:
        self.seconds = seconds
        self.answer = answer
        self.received = threading.Event()  # a request is being held
        self.landed = threading.Event()  # a held request was applied
        self.replies: list[tuple[int, Any]] = []  # what each held request got, in order
        self._release = threading.Event()
        self._lock = threading.Lock()

    def release(self) -> None:
        """Apply the held request(s) now (and any later one at once)."""
        self._release.set()

    def _wait(self, stop: threading.Event) -> bool:
        """Block until released, ``seconds`` passed, or the fake closed (then False: never applied)."""
        self.received.set()
        deadline = None if self.seconds is None else time.monotonic() + self.seconds
        while not self._release.is_set() and not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._release.wait(0.01)
        return not stop.is_set()

    def _note(self, reply: tuple[int, Any]) -> None:
        with self._lock:
            self.replies.append(reply)
        self.landed.set()


@dataclass
class _Rule:
    kind: str  # status | drop | drop_response | slow | slow_response | land_late
    endpoint: str | None
    remaining: int | None  # None = forever
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    landing: LateLanding | None = None


@dataclass(frozen=True)
class Call:
    """One request the fake received."""

    endpoint: str
    method: str
    path: str
    auth: str  # bearer | query | none


class FaultPlan:
    """Thread-safe fault injection, consulted on every request.

    Each knob affects the next ``n`` requests to ``endpoint`` (any endpoint when ``None``).
    """

    def __init__(self, state: FakeVastState) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._state = state

    def _add(self, rule: _Rule) -> None:
        if rule.endpoint is not None and rule.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {rule.endpoint!r}; use one of {ENDPOINTS}")
        with self._lock:
            self._rules.append(rule)

    def rate_limit(self, n: int = 1, retry_after: float | None = 1.0, endpoint: str | None = None) -> None:
        """Answer 429 ``{"detail": "API requests too frequent ..."}`` with ``Retry-After``."""
        self._add(_Rule("status", endpoint, n, status=429, retry_after=retry_after))

    def server_error(self, n: int = 1, status: int = 503, endpoint: str | None = None) -> None:
        """Answer ``status`` (5xx) without doing anything."""
        self._add(_Rule("status", endpoint, n, status=status))

    def slow(self, seconds: float, n: int | None = 1, endpoint: str | None = None) -> None:
        """Wait ``seconds`` before handling (``n=None``: every request)."""
        self._add(_Rule("slow", endpoint, n, seconds=seconds))

    def drop(self, n: int = 1, endpoint: str | None = None) -> None:
        """Close the connection without a response and without handling the request."""
        self._add(_Rule("drop", endpoint, n))

    def drop_response(self, n: int = 1, endpoint: str | None = None) -> None:
        """Handle the request (e.g. rent the machine), then close the connection without answering."""
        self._add(_Rule("drop_response", endpoint, n))

    def slow_response(self, seconds: float, n: int = 1, endpoint: str | None = None) -> None:
        """Handle the request at once (e.g. rent the machine), then wait ``seconds`` before answering."""
        self._add(_Rule("slow_response", endpoint, n, seconds=seconds))

    def land_late(
        self, seconds: float | None = None, n: int = 1, endpoint: str | None = "create", answer: bool = False
    ) -> LateLanding:
        """Hold the next ``n`` requests unapplied until the returned :class:`LateLanding` is released (or
        ``seconds`` pass), then apply them: a create that lands after its client gave up. Meanwhile the
        connection is closed at once (``answer=False``: the client sees a dropped request and may retry)
        or kept open and answered once applied (``answer=True``: the client waits, times out, or dies).
        This rule is consulted before every other one, so a ``drop`` armed with it meets the next request."""
        landing = LateLanding(seconds, answer)
        self._add(_Rule("land_late", endpoint, n, landing=landing))
        return landing

    def never_start(self, n: int = 1) -> None:
        """The next ``n`` created instances stay in ``loading`` forever."""
        with self._state.lock:
            self._state.never_start_next += n

    def fast_billing(self, factor: float) -> None:
        """Instances created from now on bill ``factor`` × their offer's quote (GPU and storage), and their
        ``dph_base``/``dph_total`` show that real rate, as Vast's do (instances already created keep theirs)."""
        if not factor > 0:
            raise ValueError("the billing factor must be positive")
        with self._state.lock:
            self._state.bill_multiplier = float(factor)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        with self._state.lock:
            self._state.never_start_next = 0
            self._state.bill_multiplier = 1.0

    def take(self, kind: str, endpoint: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.kind == kind and rule.endpoint in (None, endpoint) and rule.remaining != 0:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None


_ROUTES: tuple[tuple[str, re.Pattern[str], str, bool], ...] = tuple(
    (method, re.compile(pattern), name, auth)
    for method, pattern, name, auth in (
        ("POST", r"/api/v0/bundles/?", "search", True),
        ("GET", r"/api/v0/bundles/?", "search", True),
        ("PUT", r"/api/v0/asks/(\d+)/?", "create", True),
        ("GET", r"/api/v0/instances/(\d+)/?", "show_instance", True),
        ("GET", r"/api/v0/instances/?", "show_instances", True),
        ("GET", r"/api/v1/instances/?", "show_instances", True),
        ("DELETE", r"/api/v0/instances/(\d+)/?", "destroy", True),
        ("PUT", r"/api/v0/instances/bid_price/(\d+)/?", "change_bid", True),
        ("PUT", r"/api/v0/instances/reboot/(\d+)/?", "reboot", True),
        ("PUT", r"/api/v0/instances/request_logs/(\d+)/?", "request_logs", True),
        ("PUT", r"/api/v0/instances/(\d+)/?", "manage", True),
        ("POST", r"/api/v0/instances/(\d+)/ssh/?", "attach_ssh", True),
        ("GET", r"/api/v0/ssh/?", "ssh_keys", True),
        ("POST", r"/api/v0/ssh/?", "ssh_keys", True),
        ("DELETE", r"/api/v0/ssh/(\d+)/?", "ssh_keys", True),
        ("GET", r"/api/v0/users/current/?", "user", True),
        ("GET", r"/logs/([A-Za-z0-9_-]+)\.log", "logs_result", False),
    )
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeVast/1.0"
    # Headers and body leave in one segment: otherwise Nagle + delayed ACK add ~40 ms per request.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    fake: FakeVast  # set on the per-server subclass

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

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) meanwhile
            self.close_connection = True

    def _handle(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        route = next(
            ((name, m, auth) for meth, rx, name, auth in _ROUTES if meth == method and (m := rx.fullmatch(parts.path))),
            None,
        )
        if route is None:
            self._send(404, {"success": False, "error": "not_found", "msg": f"No route {method} {parts.path}"})
            return
        name, match, needs_auth = route
        bearer = self.headers.get("Authorization", "")
        key = bearer[7:].strip() if bearer.startswith("Bearer ") else None
        auth_kind = "bearer" if key else "none"
        if key is None and params.get("api_key"):
            key, auth_kind = params["api_key"], "query"
        fake._record(Call(name, method, parts.path, auth_kind))
        late = fake.faults.take("land_late", name)
        slow = fake.faults.take("slow", name) if late is None else None
        if slow is not None:
            time.sleep(slow.seconds)
        if late is None and fake.faults.take("drop", name) is not None:
            self._drop()
            return
        rule = fake.faults.take("status", name) if late is None else None
        if rule is not None:
            if rule.status == 429:
                headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
                self._send(429, {"detail": "API requests too frequent endpoint threshold=4.5"}, headers)
            else:
                self._send(rule.status, {"success": False, "error": "server_error", "msg": "Internal error"})
            return
        if needs_auth and not fake.state.valid_key(key):
            self._send(401, {"success": False, "error": "auth_error", "msg": "Invalid user key"})
            return
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {"success": False, "error": "invalid_args", "msg": "Body is not JSON."})
                return
        elif method == "GET" and name == "search" and "q" in params:
            try:
                body = json.loads(params["q"])
            except ValueError:
                self._send(400, {"success": False, "error": "invalid_args", "msg": "q is not JSON."})
                return
        call = (name, method, parts.path, match.groups(), params, body)
        if late is not None and late.landing is not None:
            self._land_late(late.landing, call)
            return
        status, payload = fake._dispatch(*call)
        if fake.faults.take("drop_response", name) is not None:
            self._drop()
            return
        slow_answer = fake.faults.take("slow_response", name)
        if slow_answer is not None:
            fake._stop.wait(slow_answer.seconds)
        self._send(status, payload)

    def _land_late(self, landing: LateLanding, call: tuple[Any, ...]) -> None:
        fake = self.fake

        def apply() -> tuple[int, Any] | None:
            if not landing._wait(fake._stop):
                return None
            reply = fake._dispatch(*call)
            landing._note(reply)
            return reply

        if landing.answer:
            reply = apply()
            if reply is None:
                self._drop()
            else:
                self._send(*reply)
            return
        self._drop()
        threading.Thread(target=apply, name="fake-vast-late-landing", daemon=True).start()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped and timed-out connections are part of the script


class FakeVast:
    """A fake Vast.ai on ``http://127.0.0.1:<port>`` with a seeded marketplace.

    Args:
        port: 0 picks a free port.
        api_key: The account's key (Bearer or ``?api_key=``); instances get their own
            ``CONTAINER_API_KEY`` that the API accepts too.
        seed: Seeds the marketplace (same seed, same offers).
        n_offers: How many offers to generate.
        clock: Source of time for lifecycle and billing (seconds); a :class:`ManualClock` makes
            billing exact.
        created_delay: Seconds in ``created`` before ``loading``.
        loading_delay: Seconds in ``loading`` before ``running`` (when the onstart process starts).
        logs_delay: Seconds before a ``result_url`` serves the log.
        kill_grace: Seconds between SIGTERM and SIGKILL when an instance is destroyed or stopped.
        tick_interval: How often a background thread advances lifecycles (and notices exits).
        page_size: Default page size of ``GET /api/v1/instances/``.
        default_limit: Offers returned by a search without ``limit``.
        credit: Starting account credit in $.
        base_env: Environment for onstart processes (default: this process's, minus ``VAST_*``).
        workdir_root: Where instance directories go (default: a temp dir removed on close).
        machine: Run instances as faithful machines of this image (clean environment, container filesystem,
            SSH endpoint; :mod:`vibeml.testing.fake_vast_machine`). ``None`` (default): onstart runs with
            ``base_env`` in the instance directory and there is no SSH.
        bill_multiplier: Instances bill this × their offer's quote (as ``faults.fast_billing``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "fake-vast-key",
        seed: int = 0,
        n_offers: int = 300,
        clock: Callable[[], float] = time.monotonic,
        created_delay: float = 0.5,
        loading_delay: float = 1.5,
        logs_delay: float = 0.3,
        kill_grace: float = 2.0,
        tick_interval: float = 0.05,
        page_size: int = 25,
        default_limit: int = 64,
        credit: float = 100.0,
        base_env: Mapping[str, str] | None = None,
        workdir_root: Path | None = None,
        machine: FakeMachineImage | None = None,
        bill_multiplier: float = 1.0,
    ) -> None:
        self.state = FakeVastState(
            api_key=api_key,
            seed=seed,
            n_offers=n_offers,
            clock=clock,
            created_delay=created_delay,
            loading_delay=loading_delay,
            logs_delay=logs_delay,
            kill_grace=kill_grace,
            page_size=page_size,
            default_limit=default_limit,
            credit=credit,
            base_env=base_env,
            workdir_root=workdir_root,
            machine=machine,
            bill_multiplier=bill_multiplier,
        )
        self.api_key = api_key
        self.clock = clock
        self.faults = FaultPlan(self.state)
        self._calls: list[Call] = []
        self._calls_lock = threading.Lock()
        self._tick_interval = tick_interval
        self._stop = threading.Event()
        handler = type("FakeVastHandler", (_Handler,), {"fake": self})
        self._server = _Server((host, port), handler)
        self.host, self.port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self.state.base_url = self.url
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------------ lifecycle

    def start(self) -> FakeVast:
        """Serve in background threads; returns ``self``."""
        if not self._threads:
            serve = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-vast-http", daemon=True
            )
            tick = threading.Thread(target=self._ticker, name="fake-vast-clock", daemon=True)
            self._threads = [serve, tick]
            for t in self._threads:
                t.start()
        return self

    def close(self) -> None:
        """Stop serving, kill every instance process and remove instance directories."""
        self._stop.set()
        if self._threads:
            self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self.state.shutdown()

    def __enter__(self) -> FakeVast:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ticker(self) -> None:
        while not self._stop.wait(self._tick_interval):
            self.state.advance()

    # ------------------------------------------------------------------------ request plumbing

    def _record(self, call: Call) -> None:
        with self._calls_lock:
            self._calls.append(call)

    def _dispatch(
        self, name: str, method: str, path: str, groups: tuple[str | Any, ...], params: Mapping[str, str], body: Any
    ) -> Reply | tuple[int, str]:
        s = self.state
        ident = int(groups[0]) if groups and str(groups[0]).isdigit() else 0
        if name == "search":
            return s.search(body if body is not None else {})
        if name == "create":
            return s.create(ident, body)
        if name == "show_instance":
            return s.show_instance(ident)
        if name == "show_instances":
            if path.startswith("/api/v1/"):
                return s.show_instances_v1(params)
            return 200, {"instances": s.list_instances()}
        if name == "destroy":
            return s.destroy(ident)
        if name == "manage":
            return s.manage(ident, body)
        if name == "reboot":
            return s.reboot(ident)
        if name == "change_bid":
            return s.change_bid(ident, body)
        if name == "request_logs":
            return s.request_logs(ident, body)
        if name == "logs_result":
            return s.log_result(str(groups[0]))
        if name == "attach_ssh":
            return s.attach_ssh(ident, body)
        if name == "ssh_keys":
            if method == "GET":
                return s.show_ssh_keys()
            if method == "POST":
                return s.create_ssh_key(body)
            return s.delete_ssh_key(ident)
        if name == "user":
            return s.user()
        return 404, {"success": False, "error": "not_found", "msg": name}  # pragma: no cover

    # ------------------------------------------------------------------------ test helpers

    def calls(self, endpoint: str | None = None) -> list[Call]:
        """Requests received so far (optionally only one endpoint's)."""
        with self._calls_lock:
            return [c for c in self._calls if endpoint is None or c.endpoint == endpoint]

    def count(self, endpoint: str | None = None) -> int:
        return len(self.calls(endpoint))

    @property
    def offers(self) -> list[dict[str, Any]]:
        """The marketplace (raw offers, without per-search pricing), by id."""
        with self.state.lock:
            return [dict(o) for _, o in sorted(self.state.offers.items())]

    def instance(self, iid: int) -> dict[str, Any]:
        """The server's view of an instance, destroyed ones included (``actual_status`` null)."""
        self.state.advance()
        with self.state.lock:
            inst = self.state.instances[iid]
            view = self.state.view(inst, self.state.clock())
            view["destroyed"] = inst.destroyed_at is not None
            view["exit_code"] = inst.exit_code
            return view

    def instance_ids(self, include_destroyed: bool = False) -> list[int]:
        with self.state.lock:
            return sorted(i for i, v in self.state.instances.items() if include_destroyed or v.destroyed_at is None)

    def status(self, iid: int) -> str:
        """``actual_status`` of an instance, or ``destroyed``."""
        self.state.advance()
        with self.state.lock:
            return self.state.instances[iid].status

    def wait_for_status(self, iid: int, status: str, timeout: float = 10.0) -> None:
        """Block until the instance reaches ``status`` (real time; for the default clock)."""
        deadline = time.monotonic() + timeout
        while self.status(iid) != status:
            if time.monotonic() > deadline:
                raise TimeoutError(f"instance {iid} is {self.status(iid)!r}, not {status!r}, after {timeout}s")
            time.sleep(0.01)

    def accrued_cost(self, iid: int) -> float:
        """Dollars billed so far to instance ``iid`` (storage since creation + GPU while running)."""
        self.state.advance()
        with self.state.lock:
            return self.state.instances[iid].accrued(self.state.clock())

    def total_accrued_cost(self) -> float:
        self.state.advance()
        with self.state.lock:
            now = self.state.clock()
            return sum(i.accrued(now) for i in self.state.instances.values())

    def process(self, iid: int) -> Any:
        """The instance's onstart :class:`subprocess.Popen` (``None`` before it runs)."""
        with self.state.lock:
            return self.state.instances[iid].proc

    def workdir(self, iid: int) -> Path:
        """The instance's working directory (the onstart's cwd; ``onstart.log`` lives here)."""
        with self.state.lock:
            return self.state.instances[iid].workdir

    def ssh_port(self, iid: int) -> int | None:
        """The port of the instance's SSH endpoint on 127.0.0.1 (``None``: not running, or no ``machine``)."""
        with self.state.lock:
            return self.state.ssh.port(iid) if self.state.ssh is not None else None

    def ssh_host_key(self, iid: int) -> str | None:
        """The public host key instance ``iid``'s SSH endpoint presents (``None`` without a ``machine``)."""
        with self.state.lock:
            return self.state.ssh.host_public_key(iid) if self.state.ssh is not None else None

    def preempt(self, iid: int, message: str = "outbid") -> None:
        """Stop an instance as if it were outbid (storage billing continues)."""
        self.state.preempt(iid, message)

    def set_min_bid(self, offer_id: int, price: float) -> list[int]:
        """Change an offer's ``min_bid``; returns the bid instances that were preempted by it."""
        return self.state.set_min_bid(offer_id, price)

    def tick(self) -> None:
        """Advance every lifecycle to the clock's now (useful with a :class:`ManualClock`)."""
        self.state.advance()


def main(argv: list[str] | None = None) -> int:
    """``python -m vibeml.testing.fake_vast --port P``: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m vibeml.testing.fake_vast", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="fake-vast-key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offers", type=int, default=300)
    parser.add_argument("--created-delay", type=float, default=0.5)
    parser.add_argument("--loading-delay", type=float, default=1.5)
    args = parser.parse_args(argv)
    fake = FakeVast(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        seed=args.seed,
        n_offers=args.offers,
        created_delay=args.created_delay,
        loading_delay=args.loading_delay,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with fake:
            print(f"Fake Vast.ai serving {args.offers} offers on {fake.url}  (VAST_URL={fake.url})", flush=True)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
