"""The validate_model and validate_dataset MCP tools (FastMCP's in-memory client, the real protocol)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from vibeml.mcp.server import create_server


def call(tool: str, args: dict[str, Any]) -> Any:
    async def go() -> Any:
        async with Client(create_server()) as client:
            return (await client.call_tool(tool, args)).structured_content

    return asyncio.run(go())


@pytest.mark.needs_train
def test_validate_model_and_dataset_tools(demo_assets_dir: Path) -> None:
    model = call("validate_model", {"model": str(demo_assets_dir / "tiny-llama")})
    assert model["source"] == "local" and model["architecture"] == "LlamaForCausalLM" and model["parameter_count"]
    report = call("validate_dataset", {"dataset": str(demo_assets_dir / "demo_dataset.jsonl"), "max_seq_length": 32})
    assert report["format"] == "alpaca" and report["token_stats"]["method"] == "estimate"
    assert report["stats"]["rows"] == report["usable_rows"]


def test_tool_errors_carry_what_to_do(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(ToolError) as err:
        call("validate_dataset", {"dataset": str(qa)})
    assert "DatasetError" in str(err.value) and "What to do:" in str(err.value) and "question" in str(err.value)
    mapped = call(
        "validate_dataset", {"dataset": str(qa), "column_mapping": {"question": "instruction", "answer": "output"}}
    )
    assert mapped["format"] == "alpaca"
    with pytest.raises(ToolError) as offline:
        call("validate_model", {"model": "acme/some-model"})
    assert "HF_HUB_OFFLINE" in str(offline.value)
