"""A fast front for `vibeml mcp` over stdio: the handshake answers at once while FastMCP loads.

Importing FastMCP and the `mcp` SDK takes 1.5–2 s (they build pydantic models for every protocol
version at import), so an assistant would wait that long for the tool list. The front is stdlib only.
It sits between the client and the real FastMCP server and relays every message both ways. On top of
that it does four things:

* **Answers early from a cache.** It answers ``initialize`` and ``tools/list`` (and ``ping``) from a
  cache of the real server's own earlier answers. The cache is keyed by the protocol version the
  client asked for. It is dropped when VibeML's sources, the MCP libraries, the Python or a
  ``FASTMCP_*`` setting change.
* **Hands over to the real server.** It replays the client's ``initialize`` to the real server, under
  an id of its own, and swallows the reply. The real server then holds the same session state as if it
  had answered itself. Every other message is relayed to the real server, queued in a pipe until it
  reads them.
* **Checks the cache.** It asks the real server for ``tools/list`` once and compares the answers. If
  they differ, the cache file is deleted and the client gets ``notifications/tools/list_changed``, so
  it fetches the true list (now from the real server).
* **Fills the cache on a cold start.** Nothing is answered early; the real server's answers are
  recorded as they pass.

A stray line on the server's stdout that is not JSON goes to stderr, never to the client.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["HandshakeCache", "StdioFront", "cache_key", "default_cache_path", "run_with_front", "serve_stdio"]

_LIBS = ("fastmcp", "mcp", "mcp_types", "pydantic")
_EOF_SENTINEL = b"\x00vibeml-front-eof\n"


def cache_key(env: dict[str, str] | None = None) -> str:
    """What the real server's handshake answers depend on: code, libraries, interpreter, settings."""
    env = dict(os.environ) if env is None else env
    h = hashlib.sha256()
    h.update(f"{sys.version}|{sys.executable}".encode())
    pkg = Path(__file__).resolve().parent.parent
    for root, dirs, files in os.walk(pkg):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".csv", ".json", ".toml")):
                p = os.path.join(root, name)
                st = os.stat(p)
                h.update(f"{os.path.relpath(p, pkg)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    from importlib.util import find_spec

    for lib in _LIBS:
        try:
            spec = find_spec(lib)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
        if origin and os.path.exists(origin):
            st = os.stat(origin)
            h.update(f"{lib}|{origin}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            parent = os.path.dirname(os.path.dirname(origin))
            try:  # the dist-info names carry the installed versions
                infos = sorted(
                    n for n in os.listdir(parent) if n.startswith(lib.replace("_", "-")) or n.startswith(lib)
                )
            except OSError:
                infos = []
            h.update("|".join(n for n in infos if n.endswith(".dist-info")).encode())
        else:
            h.update(f"{lib}|missing\n".encode())
    for name in sorted(k for k in env if k.startswith("FASTMCP_")):
        h.update(f"{name}={env[name]}\n".encode())
    return h.hexdigest()


class HandshakeCache:
    """The real server's ``initialize`` and ``tools/list`` results, per requested protocol version."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.versions: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("key") == key and isinstance(data.get("versions"), dict):
            self.versions = {
                v: e
                for v, e in data["versions"].items()
                if isinstance(e, dict)
                and isinstance(e.get("initialize"), dict)
                and isinstance(e.get("tools/list"), dict)
            }

    def get(self, version: str) -> dict[str, Any] | None:
        with self._lock:
            return self.versions.get(version)

    def record(self, version: str, method: str, result: dict[str, Any]) -> None:
        """Keep one answer; the file is written once a version has both."""
        with self._lock:
            entry = self._pending.setdefault(version, {})
            entry[method] = result
            if "initialize" in entry and "tools/list" in entry:
                self.versions[version] = self._pending.pop(version)
                self._write()

    def invalidate(self) -> None:
        with self._lock:
            self.versions.clear()
            try:
                self.path.unlink()
            except OSError:
                pass

    def _write(self) -> None:
        from vibeml.safe_paths import make_private_dir  # stdlib only, like this module

        try:
            make_private_dir(self.path.parent)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": self.key, "versions": self.versions}))
            os.replace(tmp, self.path)
        except OSError as exc:  # a cache that cannot be written only costs speed
            print(f"vibeml mcp: could not write the handshake cache {self.path}: {exc}", file=sys.stderr)


def _message(line: bytes) -> dict[str, Any] | None:
    """One JSON-RPC message (a JSON object), or None for anything else."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def _only_progress_meta(params: Any) -> bool:
    """``tools/list`` params the cached answer is valid for: none, or a bare progress token."""
    if params is None or params == {}:
        return True
    if not isinstance(params, dict) or set(params) - {"_meta"}:
        return False
    meta = params.get("_meta")
    return meta is None or (isinstance(meta, dict) and not set(meta) - {"progressToken"})


class StdioFront:
    """Relays JSON-RPC lines between the client and the real server, answering the handshake early."""

    def __init__(
        self, cache: HandshakeCache, client_in: BinaryIO, client_out_fd: int, server_in_fd: int, server_out: BinaryIO
    ) -> None:
        self.cache = cache
        self._client_in = client_in
        self._client_out = client_out_fd
        self._server_in = server_in_fd
        self._server_out = server_out
        self._out_lock = threading.Lock()
        self._ids_lock = threading.Lock()
        tag = uuid.uuid4().hex[:12]
        self._replay_id = f"vibeml-front-init-{tag}"
        self._verify_id = f"vibeml-front-tools-{tag}"
        self._watch: dict[Any, tuple[str, str]] = {}  # forwarded request id -> (method, version)
        self._mode: str | None = None  # "cached" | "recording" | "relay"
        self._version: str | None = None
        self._served: dict[str, Any] | None = None  # the cache entry answered from
        self._served_tools = False
        self._threads: list[threading.Thread] = []

    # -- writing ---------------------------------------------------------------------------------
    def _to_client(self, data: bytes) -> None:
        with self._out_lock:
            view = memoryview(data)
            while view:
                n = os.write(self._client_out, view)
                view = view[n:]

    def _reply(self, msg_id: Any, result: dict[str, Any]) -> None:
        self._to_client(
            json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}, separators=(",", ":")).encode() + b"\n"
        )

    def _to_server(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._server_in, view)
            view = view[n:]

    # -- client -> server ------------------------------------------------------------------------
    def _client_loop(self) -> None:
        try:
            for line in iter(self._client_in.readline, b""):
                try:
                    self._on_client_line(line)
                except BrokenPipeError:
                    return
        finally:
            try:
                os.close(self._server_in)  # EOF tells the real server to finish
            except OSError:
                pass

    def _on_client_line(self, line: bytes) -> None:
        if self._mode == "relay" or not line.strip():
            self._to_server(line)
            return
        msg = _message(line)
        if msg is None:
            self._mode = self._mode or "relay"
            self._to_server(line)
            return
        method = msg.get("method")
        params = msg.get("params")
        if self._mode is None:
            if method == "initialize" and "id" in msg and isinstance(params, dict):
                self._version = str(params.get("protocolVersion"))
                entry = self.cache.get(self._version)
                if entry is not None:
                    self._mode, self._served = "cached", entry
                    self._reply(msg["id"], entry["initialize"])
                    self._to_server(json.dumps({**msg, "id": self._replay_id}).encode() + b"\n")
                    return
                self._mode = "recording"
                with self._ids_lock:
                    self._watch[msg["id"]] = ("initialize", self._version)
            else:
                self._mode = "relay"
            self._to_server(line)
            return
        if method == "ping" and "id" in msg and self._mode == "cached":
            self._reply(msg["id"], {})
            return
        if method == "tools/list" and "id" in msg and _only_progress_meta(params):
            if self._mode == "cached" and self._served is not None:
                self._served_tools = True
                self._reply(msg["id"], self._served["tools/list"])
                return
            if self._mode == "recording" and self._version is not None:
                with self._ids_lock:
                    self._watch[msg["id"]] = ("tools/list", self._version)
        self._to_server(line)
        if method == "notifications/initialized" and self._mode == "cached":
            verify = {"jsonrpc": "2.0", "id": self._verify_id, "method": "tools/list"}
            self._to_server(json.dumps(verify).encode() + b"\n")

    # -- server -> client ------------------------------------------------------------------------
    def _server_loop(self) -> None:
        for line in iter(self._server_out.readline, b""):
            if line == _EOF_SENTINEL:
                return
            try:
                self._on_server_line(line)
            except BrokenPipeError:
                return

    def _on_server_line(self, line: bytes) -> None:
        with self._ids_lock:
            watching = bool(self._watch) or self._mode == "cached"
        if not watching and line.lstrip().startswith(b"{"):
            self._to_client(line)
            return
        msg = _message(line)
        if msg is None:
            sys.stderr.write(f"vibeml mcp: dropped a non-protocol line from the server: {line[:200]!r}\n")
            sys.stderr.flush()
            return
        msg_id = msg.get("id")
        if msg_id == self._replay_id:
            if self._served is not None and msg.get("result") != self._served["initialize"]:
                self._stale("initialize")
            return
        if msg_id == self._verify_id:
            # The real server is up: from now on it answers everything. This must hold before the client
            # hears of a change, or its re-fetch could still be answered from the stale cache.
            self._mode = "relay"
            result = msg.get("result")
            if self._served is not None and result != self._served["tools/list"]:
                self._stale("tools/list")
                if self._served_tools:
                    self._to_client(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n')
            return
        with self._ids_lock:
            watched = self._watch.pop(msg_id, None) if msg_id is not None and "method" not in msg else None
        if watched is not None and isinstance(msg.get("result"), dict):
            self.cache.record(watched[1], watched[0], msg["result"])
            if watched[0] == "tools/list":
                self._mode = "relay"
        self._to_client(line)

    def _stale(self, what: str) -> None:
        sys.stderr.write(f"vibeml mcp: the cached {what} answer was out of date; cache cleared\n")
        sys.stderr.flush()
        self.cache.invalidate()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._client_loop, "mcp-front-in"), (self._server_loop, "mcp-front-out")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def join_output(self, timeout: float = 5.0) -> None:
        self._threads[1].join(timeout)


def run_with_front(serve: Callable[[], None], cache_path: Path) -> None:
    """Run ``serve`` (a FastMCP stdio server) behind the front, on this process's stdin and stdout.

    fd 0 and fd 1 become pipes to the front; the front keeps private copies of the real ones.
    """
    if os.name != "posix":  # pragma: no cover - the fd plumbing below is POSIX
        serve()
        return
    sys.stdout.flush()
    client_in = os.dup(0)
    client_out = os.dup(1)
    to_server_r, to_server_w = os.pipe()
    from_server_r, from_server_w = os.pipe()
    os.dup2(to_server_r, 0)
    os.dup2(from_server_w, 1)
    os.close(to_server_r)
    os.close(from_server_w)
    front = StdioFront(
        HandshakeCache(cache_path, cache_key()),
        os.fdopen(client_in, "rb"),
        client_out,
        to_server_w,
        os.fdopen(from_server_r, "rb"),
    )
    front.start()
    try:
        serve()
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        try:
            os.write(1, _EOF_SENTINEL)  # after everything the server wrote: the pipe keeps order
        except OSError:
            pass
        front.join_output()


#: Values of ``VIBEML_MCP_FRONT`` that turn the front off: pydantic's false words, as ``Settings.mcp.front`` reads
#: them (``tests/test_settings_contract.py`` checks the two agree).
FRONT_OFF = frozenset({"0", "off", "f", "false", "n", "no"})


def default_cache_path(env: dict[str, str] | None = None) -> Path:
    """``$VIBEML_HOME/cache/mcp-handshake.json``: ``Settings().cache_dir``, worked out without pydantic (this
    front answers before it loads; ``tests/test_settings_contract.py`` checks the two agree)."""
    env = dict(os.environ) if env is None else env
    home = env.get("VIBEML_HOME")
    if home:
        root = Path(home).expanduser()
    else:
        from platformdirs import user_data_dir

        root = Path(user_data_dir("vibeml", appauthor=False))
    return root / "cache" / "mcp-handshake.json"


def serve_stdio() -> None:
    """`vibeml mcp`: the real server behind the front (``VIBEML_MCP_FRONT=0``, ``Settings.mcp.front``, runs
    it bare; the server itself builds the settings)."""

    def serve() -> None:
        from vibeml.mcp.server import main

        main(None)

    if os.environ.get("VIBEML_MCP_FRONT", "").strip().lower() in FRONT_OFF:
        serve()
        return
    run_with_front(serve, default_cache_path())
