"""Fuzz every MCP tool through FastMCP's client (the real protocol, in memory) with hostile arguments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibeml.mcp.server import create_server


@pytest.mark.timeout(600)
def test_fuzz_the_mcp_tools(corpus: dict[str, Path], sandbox: Path, vibeml_env: Path, fuzz: Any) -> None:
    server = create_server()  # one server for every case, as an assistant's session would have

    async def schemas() -> dict[str, list[str]]:
        async with Client(server) as client:
            return {t.name: sorted(t.input_schema.get("properties") or {}) for t in await client.list_tools()}

    tools = asyncio.run(schemas())
    assert len(tools) >= 10
    paths = st.sampled_from(sorted(str(p) for p in corpus.values()))
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), fuzz.text)
    values = st.recursive(
        scalar,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(fuzz.text, inner, max_size=3)),
        max_leaves=6,
    )
    query = st.dictionaries(
        st.sampled_from(
            [
                "model",
                "gpu",
                "max_steps",
                "mean_tokens",
                "dataset_rows",
                "batch_size",
                "max_cost",
                "top",
                "clouds",
                "gpu_count",
                "epochs",
                "nope",
            ]
        ),
        st.one_of(values, fuzz.text),
        max_size=5,
    )

    def args_for(tool: str) -> st.SearchStrategy[dict[str, Any]]:
        names = tools[tool] + ["nope"]
        optional = {n: (query if n == "query" else paths if n == "dataset" else values) for n in names}
        if tool == "launch_training":  # always a corpus file as data (none is usable): nothing may start
            return st.fixed_dictionaries(
                {"dataset": paths}, optional={k: v for k, v in optional.items() if k != "dataset"}
            )
        return st.fixed_dictionaries({}, optional=optional)

    calls = st.sampled_from(sorted(tools)).flatmap(lambda t: st.tuples(st.just(t), args_for(t)))

    @settings(
        max_examples=120,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(call=calls)
    def case(call: tuple[str, dict[str, Any]]) -> None:
        tool, args = call

        async def go() -> str:
            async with Client(server) as client:
                try:
                    await client.call_tool(tool, args)
                except ToolError as exc:
                    return str(exc)
                finally:  # whatever a call did, the server still answers
                    assert await client.list_tools()
                return ""

        error = fuzz.bounded("mcp", lambda: asyncio.run(go()))
        if "internal error" in error or "Traceback" in error:
            fuzz.tally("mcp", "internal error")
            raise AssertionError(f"{tool}({args!r}): {error[:2000]}")
        assert not list((vibeml_env / "jobs").glob("vml-*")), f"{tool}({args!r}) started a job"
        if list(sandbox.iterdir()):
            fuzz.tally("mcp", "stray file")
            raise AssertionError(f"{tool} wrote into the working directory")
        fuzz.tally("mcp", "typed error" if error else "ok")

    case()
