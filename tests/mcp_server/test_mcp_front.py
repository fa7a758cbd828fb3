"""The stdio front of `vibeml mcp`: the handshake from the cache, the hand-over, and self-correction."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from vibeml.mcp.front import HandshakeCache, StdioFront, cache_key, default_cache_path

# -- in-process: the front between two pairs of pipes; the test plays client and server ----------


class Wire:
    """The front with both ends in the test's hands."""

    def __init__(self, cache: HandshakeCache) -> None:
        c_r, self.client_w = os.pipe()  # the client writes, the front reads
        self.client_r, c_w = os.pipe()  # the front writes, the client reads
        s_r, s_w = os.pipe()  # the front writes, the server reads
        self.server_r = os.fdopen(s_r, "rb")
        o_r, self.server_w = os.pipe()  # the server writes, the front reads
        self.to_client = os.fdopen(self.client_r, "rb")
        self.front = StdioFront(cache, os.fdopen(c_r, "rb"), c_w, s_w, os.fdopen(o_r, "rb"))
        self.front.start()

    def client_send(self, msg: dict[str, Any]) -> None:
        os.write(self.client_w, json.dumps(msg).encode() + b"\n")

    def client_recv(self) -> dict[str, Any]:
        return json.loads(self.to_client.readline())

    def server_recv(self) -> dict[str, Any]:
        return json.loads(self.server_r.readline())

    def server_send(self, msg: dict[str, Any] | bytes) -> None:
        data = msg if isinstance(msg, bytes) else json.dumps(msg).encode() + b"\n"
        os.write(self.server_w, data)


INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
INIT_RESULT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {"listChanged": True}},
    "serverInfo": {"name": "vibeml", "version": "x"},
}
TOOLS = {"tools": [{"name": "estimate_training_cost", "inputSchema": {"type": "object"}}]}


def test_cold_start_relays_and_records_the_handshake(tmp_path: Path) -> None:
    cache = HandshakeCache(tmp_path / "c.json", "k1")
    w = Wire(cache)
    w.client_send(INIT)
    assert w.server_recv() == INIT  # relayed untouched
    w.server_send({"jsonrpc": "2.0", "id": 0, "result": INIT_RESULT})
    assert w.client_recv()["result"] == INIT_RESULT
    w.client_send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert w.server_recv()["method"] == "notifications/initialized"
    w.client_send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert w.server_recv()["id"] == 1
    w.server_send({"jsonrpc": "2.0", "id": 1, "result": TOOLS})
    assert w.client_recv()["result"] == TOOLS
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved == {"key": "k1", "versions": {"2025-11-25": {"initialize": INIT_RESULT, "tools/list": TOOLS}}}


def test_warm_start_answers_at_once_then_hands_over(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"key": "k1", "versions": {"2025-11-25": {"initialize": INIT_RESULT, "tools/list": TOOLS}}})
    )
    w = Wire(HandshakeCache(path, "k1"))
    w.client_send(INIT)
    assert w.client_recv() == {"jsonrpc": "2.0", "id": 0, "result": INIT_RESULT}  # no server needed
    w.client_send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    w.client_send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert w.client_recv() == {"jsonrpc": "2.0", "id": 1, "result": TOOLS}
    w.client_send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    assert w.client_recv() == {"jsonrpc": "2.0", "id": 2, "result": {}}
    w.client_send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "x"}})

    # The server, once up, sees the replayed initialize under the front's own id, then the rest in order.
    replay = w.server_recv()
    assert replay["method"] == "initialize" and replay["params"] == INIT["params"] and replay["id"] != 0
    assert w.server_recv()["method"] == "notifications/initialized"
    verify = w.server_recv()
    assert verify["method"] == "tools/list" and verify["id"] != 1
    assert w.server_recv()["id"] == 3
    w.server_send({"jsonrpc": "2.0", "id": replay["id"], "result": INIT_RESULT})  # swallowed
    w.server_send({"jsonrpc": "2.0", "id": verify["id"], "result": TOOLS})  # agrees: swallowed
    w.server_send(b"a stray print on stdout\n")  # never reaches the client
    w.server_send({"jsonrpc": "2.0", "id": 3, "result": {"content": []}})
    assert w.client_recv() == {"jsonrpc": "2.0", "id": 3, "result": {"content": []}}
    assert path.exists()
    # After the hand-over even tools/list goes to the real server.
    w.client_send({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
    assert w.server_recv()["id"] == 4


def test_a_stale_cache_is_cleared_and_the_client_told_to_refetch(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    old = {"tools": [{"name": "gone", "inputSchema": {"type": "object"}}]}
    path.write_text(
        json.dumps({"key": "k1", "versions": {"2025-11-25": {"initialize": INIT_RESULT, "tools/list": old}}})
    )
    w = Wire(HandshakeCache(path, "k1"))
    w.client_send(INIT)
    w.client_recv()
    w.client_send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    w.client_send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert w.client_recv()["result"] == old
    replay, _, verify = w.server_recv(), w.server_recv(), w.server_recv()
    w.server_send({"jsonrpc": "2.0", "id": replay["id"], "result": INIT_RESULT})
    w.server_send({"jsonrpc": "2.0", "id": verify["id"], "result": TOOLS})
    assert w.client_recv() == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    assert not path.exists()


@pytest.mark.parametrize(
    "first",
    [
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "1999-01-01",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
        },
    ],
)
def test_unknown_versions_and_modern_envelopes_go_to_the_real_server(tmp_path: Path, first: dict) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps({"key": "k1", "versions": {"2025-11-25": {"initialize": INIT_RESULT, "tools/list": TOOLS}}})
    )
    w = Wire(HandshakeCache(path, "k1"))
    w.client_send(first)
    assert w.server_recv() == first
    w.server_send({"jsonrpc": "2.0", "id": 0, "result": {"ok": True}})
    assert w.client_recv()["result"] == {"ok": True}


def test_cache_ignores_other_keys_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"key": "old", "versions": {"v": {"initialize": {}, "tools/list": {}}}}))
    assert HandshakeCache(path, "new").get("v") is None
    path.write_text("{not json")
    assert HandshakeCache(path, "new").get("v") is None
    assert path.read_text() == "{not json"  # left for the next successful record to replace


def test_cache_key_follows_fastmcp_settings_and_sources(tmp_path: Path) -> None:
    env = {"PATH": "/bin"}
    assert cache_key(env) == cache_key(dict(env))
    assert cache_key({**env, "FASTMCP_MASK_ERROR_DETAILS": "true"}) != cache_key(env)
    assert default_cache_path({"VIBEML_HOME": str(tmp_path)}) == tmp_path / "cache" / "mcp-handshake.json"


def test_front_survives_a_client_that_vanishes(tmp_path: Path) -> None:
    w = Wire(HandshakeCache(tmp_path / "c.json", "k"))
    os.close(w.client_w)  # EOF from the client: the front closes the server's stdin
    assert w.server_r.readline() == b""
    done = threading.Event()
    threading.Thread(target=lambda: (w.front.join_output(2), done.set()), daemon=True).start()
    w.server_send(b"\x00vibeml-front-eof\n")
    assert done.wait(5)


# -- the real thing: `vibeml mcp` twice, with the `mcp` package's client -------------------------


async def _session(env: dict[str, str], errlog: Any, stale_check: bool = False) -> dict[str, Any]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "vibeml", "mcp"], env=env)
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with stdio_client(params, errlog=errlog) as (r, w), ClientSession(r, w, message_handler=on_message) as s:
        init = await s.initialize()
        first = sorted(t.name for t in (await s.list_tools()).tools)
        if stale_check:
            await asyncio.wait_for(changed.wait(), 60)
        after = sorted(t.name for t in (await s.list_tools()).tools)
        call = await s.call_tool("list_workflows", {})
        return {
            "server": init.server_info.name,
            "first": first,
            "after": after,
            "error": call.is_error,
            "text": call.content[0].text if call.content else "",
        }


@pytest.mark.slow
def test_vibeml_mcp_fills_then_uses_the_cache_and_corrects_a_stale_one(vibeml_env: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    cache_file = default_cache_path(env)
    with open(tmp_path / "err1.log", "w") as err:
        cold = asyncio.run(_session(env, err))
    assert not cold["error"] and "trl-lora" in cold["text"]
    assert cold["first"] == cold["after"] and "launch_training" in cold["first"]
    saved = json.loads(cache_file.read_text())
    ((version, entry),) = saved["versions"].items()
    assert version == "2025-11-25"  # what the mcp client offers
    assert sorted(t["name"] for t in entry["tools/list"]["tools"]) == cold["first"]

    with open(tmp_path / "err2.log", "w") as err:
        warm = asyncio.run(_session(env, err))
    assert warm == cold  # same answers, calls work after the hand-over
    assert json.loads(cache_file.read_text()) == saved

    # Make the cache lie (as an old install's would): the client is told, and the truth follows.
    entry["tools/list"]["tools"] = entry["tools/list"]["tools"][:2]
    cache_file.write_text(json.dumps(saved))
    with open(tmp_path / "err3.log", "w") as err:
        stale = asyncio.run(_session(env, err, stale_check=True))
    assert len(stale["first"]) == 2 and stale["after"] == cold["first"] and not stale["error"]
    assert not cache_file.exists()
    assert "out of date" in (tmp_path / "err3.log").read_text()
