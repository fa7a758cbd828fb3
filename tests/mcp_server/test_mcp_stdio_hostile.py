"""`vibeml mcp` as a real stdio subprocess keeps answering after hostile messages (raw JSON-RPC lines).

The stdio front this server once ran behind stopped answering everything after one 2 KB line nested
1000 deep (Python's json raised RecursionError in its relay thread). Every case here sends such a line
and then a normal request that must still be answered.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

DEPTH = 1000  # "[" * 1000 + "]" * 1000 is 2 KB; Python's json module refuses it with RecursionError
NESTED = "[" * DEPTH + "]" * DEPTH
WAIT_S = 60  # a cold start on a busy 2-core machine takes a few seconds


class StdioServer:
    """`python -m vibeml mcp` on pipes: send lines, wait for the answer with a given id."""

    def __init__(self, env: dict[str, str], stderr: IO[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vibeml", "mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")  # EOF

    def send_raw(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps({"jsonrpc": "2.0", **message}))

    def answer(self, id_: int) -> dict[str, Any]:
        """The answer to request ``id_`` (other messages on the way are collected in ``self.others``)."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT_S)
            except queue.Empty:
                pytest.fail(f"no answer to request {id_} within {WAIT_S} s")
            if not line:
                pytest.fail(f"the server closed stdout before answering request {id_} (exit {self.proc.poll()})")
            msg = json.loads(line)  # nothing but JSON-RPC on stdout
            if msg.get("id") == id_:
                return msg

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture
def server(vibeml_env: Path, tmp_path: Path) -> Iterator[StdioServer]:
    with open(tmp_path / "server-stderr.log", "w", encoding="utf-8") as errlog:
        srv = StdioServer({**os.environ, "HF_HUB_OFFLINE": "1"}, errlog)
        try:
            srv.send(
                {
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "hostile-test", "version": "0"},
                    },
                }
            )
            assert srv.answer(1)["result"]["serverInfo"]["name"] == "vibeml"
            srv.send({"method": "notifications/initialized"})
            yield srv
        finally:
            if srv.proc.poll() is None:
                srv.close()


def _workflows(srv: StdioServer, id_: int) -> set[str]:
    srv.send({"id": id_, "method": "tools/call", "params": {"name": "list_workflows", "arguments": {}}})
    result = srv.answer(id_)["result"]
    assert result["isError"] is False, result
    return {w["name"] for w in result["structuredContent"]["result"]}


def test_nested_messages_do_not_stop_the_server(server: StdioServer) -> None:
    assert len(NESTED) == 2000
    with pytest.raises(RecursionError):
        json.loads(NESTED)  # the failure the front had
    # A bare 2 KB nested line: not JSON-RPC at all.
    server.send_raw(NESTED)
    assert "trl-lora" in _workflows(server, 2)
    # The same nesting inside a well-formed request's arguments, and as a request's id and params.
    server.send_raw(
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_jobs","arguments":{"limit":'
        + NESTED
        + "}}}"
    )
    server.send_raw('{"jsonrpc":"2.0","id":' + NESTED + ',"method":"tools/list"}')
    server.send_raw('{"jsonrpc":"2.0","id":4,"method":"tools/list","params":' + NESTED + "}")
    # A request nested just shallow enough to parse is answered with an error for its own id.
    shallow = "[" * 100 + "]" * 100
    server.send_raw(
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_jobs","arguments":{"limit":'
        + shallow
        + "}}}"
    )
    answer = server.answer(5)
    assert "error" in answer or answer["result"]["isError"] is True, answer
    # And the server still answers everything else, in order.
    assert "trl-lora" in _workflows(server, 6)
    server.send({"id": 7, "method": "tools/list"})
    names = {t["name"] for t in server.answer(7)["result"]["tools"]}
    assert {"list_jobs", "launch_training", "estimate_training_cost"} <= names
    assert server.close() == 0  # EOF on stdin ends it cleanly
