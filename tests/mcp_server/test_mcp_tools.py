"""Every MCP tool through FastMCP's in-memory client (the real protocol, no network)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibeml.mcp.server import create_server
from vibeml.reports import EstimateReport, GpuRecommendation, OffersReport, PlanReport, SpendingReport

EXPECTED_TOOLS = {
    "launch_training",
    "estimate_training_cost",
    "plan_training",
    "recommend_gpu",
    "search_gpu_offers",
    "list_jobs",
    "get_job_status",
    "get_job_logs",
    "generate",
    "stop_job",
    "list_workflows",
    "get_spending",
}


def call(tool: str, args: dict[str, Any] | None = None) -> Any:
    async def go() -> Any:
        async with Client(create_server()) as client:
            result = await client.call_tool(tool, args or {})
            return result.structured_content

    return asyncio.run(go())


def call_error(tool: str, args: dict[str, Any]) -> str:
    with pytest.raises(ToolError) as info:
        call(tool, args)
    return str(info.value)


def test_lists_every_tool_with_descriptions() -> None:
    async def go() -> Any:
        async with Client(create_server()) as client:
            return await client.list_tools()

    tools = asyncio.run(go())
    assert {t.name for t in tools} >= EXPECTED_TOOLS
    assert all(t.description and len(t.description) > 20 for t in tools)
    for t in tools:
        for prop in t.inputSchema.get("properties") or {}:
            if prop == "confirmation_token":  # the server's own one-time approval of a plan, not a credential
                continue
            words = set(prop.lower().split("_"))  # "max_new_tokens" counts tokens; "hf_token" would be a secret
            assert not words & {"key", "token", "password", "credential", "credentials", "secret"}, prop


#: The tools whose answer is one of the service's reports, returned as it is.
REPORT_TOOLS = {
    "estimate_training_cost": EstimateReport,
    "plan_training": PlanReport,
    "recommend_gpu": GpuRecommendation,
    "search_gpu_offers": OffersReport,
    "get_spending": SpendingReport,
}
#: JobHandle.data (inside every JobRecord) is typed by another part of issue 12; nothing else may be free-form.
FREE_FORM_ALLOWED = ("/handle/anyOf[0]/properties/data",)


def _free_form(node: Any, path: str = "") -> list[str]:
    """Paths of objects that accept any properties (``additionalProperties: true``, or no properties at all)."""
    found: list[str] = []
    if isinstance(node, dict):
        extra = node.get("additionalProperties")
        if (
            extra is True
            or extra == {}
            or (node.get("type") == "object" and not node.keys() & {"properties", "additionalProperties", "$ref"})
        ):
            found.append(path)
        for key, value in node.items():
            found += _free_form(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _free_form(value, f"{path}[{i}]")
    return found


def test_output_schemas_are_the_typed_reports() -> None:
    async def go() -> Any:
        async with Client(create_server()) as client:
            return await client.list_tools()

    tools = {t.name: t for t in asyncio.run(go())}
    for name, model in REPORT_TOOLS.items():
        schema = tools[name].output_schema
        assert schema is not None and set(schema["properties"]) == set(model.model_fields), name
        assert schema.get("additionalProperties") is False, name
    for tool in tools.values():
        assert tool.output_schema is not None, tool.name
        loose = [p for p in _free_form(tool.output_schema) if not p.endswith(FREE_FORM_ALLOWED)]
        assert loose == [], (tool.name, loose)


def test_estimate_plan_recommend_and_workflows() -> None:
    est = call("estimate_training_cost", {"query": {"model": "Qwen/Qwen2.5-0.5B", "gpu": "H100", "max_steps": 100}})
    assert est["fits"] is True and est["expected_cost"] > 0 and est["total_gib"] > 1
    assert EstimateReport.model_validate(est).breakdown.weights > 0
    plan = call("plan_training", {"query": {"model": "Qwen/Qwen2.5-7B", "max_steps": 200, "top": 5}})
    costs = [o["expected_cost"] for o in plan["options"]]
    assert costs == sorted(costs) and len(costs) == 5
    assert PlanReport.model_validate(plan).total_options >= 5
    rec = call("recommend_gpu", {"model": "meta-llama/Llama-3.1-8B"})
    assert rec["gpu_type"] and rec["memory_required_gib"] > 10
    assert GpuRecommendation.model_validate(rec).model == "meta-llama/Llama-3.1-8B"
    names = {w["name"] for w in call("list_workflows")["result"]}
    assert {"trl-lora", "full"} <= names


def test_errors_carry_the_recovery_suggestion() -> None:
    text = call_error("estimate_training_cost", {"query": {"model": "Qwen/Qwen2.5-0.5B", "gpu": "TPU-v9"}})
    assert "ConfigurationError" in text and "What to do:" in text
    text = call_error("plan_training", {"query": {"model": "Qwen/Qwen2.5-7B", "max_steps": 5000, "max_cost": 0.01}})
    assert "BudgetExceededError" in text and "cheapest_option" in text
    text = call_error("get_job_status", {"job_id": "vml-nope"})
    assert "JobNotFoundError" in text and "vibeml jobs" in text
    text = call_error("launch_training", {"model": "m/x", "dataset": "./missing.jsonl", "max_cost": 1})
    assert "DatasetError" in text
    text = call_error("search_gpu_offers", {"query": "gpu_name=RTX_4090"})
    assert "CredentialError" in text  # no key anywhere: a clear error, not a crash


def test_launch_requires_max_cost() -> None:
    text = call_error("launch_training", {"demo": True})
    assert "max_cost" in text


def test_spending_and_empty_jobs() -> None:
    spending = call("get_spending")
    assert spending["budget"]["spent"] == 0 and spending["ledger"] == []
    assert SpendingReport.model_validate(spending).total == 0
    assert call("list_jobs")["result"] == []


@pytest.mark.needs_train
def test_dry_run_starts_nothing(vibeml_env: Path, demo_assets_dir: Path) -> None:
    import shutil

    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    res = call("launch_training", {"demo": True, "max_cost": 1, "dry_run": True})
    assert res["dry_run"] is True and res["job"] is None and res["estimate"]["expected_cost"] == 0
    assert call("list_jobs")["result"] == []


@pytest.mark.needs_train
@pytest.mark.slow
def test_demo_launch_status_logs_stop(vibeml_env: Path, demo_assets_dir: Path) -> None:
    import shutil

    shutil.copytree(demo_assets_dir, vibeml_env / "demo")
    res = call("launch_training", {"demo": True, "max_cost": 1, "max_steps": 2000})
    job_id = res["job"]["job_id"]
    assert "get_job_status" in res["next_step"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = call("get_job_status", {"job_id": job_id})
        if status["status"] == "running" and (status.get("progress") or {}).get("step", 0) > 0:
            break
        time.sleep(0.5)
    assert status["status"] == "running"
    logs = call("get_job_logs", {"job_id": job_id, "tail": 50})
    assert logs["job_id"] == job_id and isinstance(logs["lines"], list)
    stopped = call("stop_job", {"job_id": job_id})
    assert stopped["status"] == "stopped"
    assert call("stop_job", {"job_id": job_id})["status"] == "stopped"
    [job] = call("list_jobs")["result"]
    assert job["job_id"] == job_id


_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    tool=st.sampled_from(sorted(EXPECTED_TOOLS - {"launch_training"})),
    args=st.dictionaries(
        st.sampled_from(["job_id", "query", "tail", "limit", "model", "month", "type", "x"]), _junk, max_size=3
    ),
)
def test_bad_arguments_are_tool_errors_never_crashes(tool: str, args: dict[str, Any]) -> None:
    async def go() -> None:
        async with Client(create_server()) as client:
            try:
                await client.call_tool(tool, args)
            except ToolError:
                pass
            # The server is still alive and answering.
            assert {t.name for t in await client.list_tools()} >= EXPECTED_TOOLS

    asyncio.run(go())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    args=st.dictionaries(
        st.sampled_from(
            ["model", "dataset", "max_cost", "max_steps", "backend", "workflow", "learning_rate", "lora_r", "gpu_count"]
        ),
        _junk,
        max_size=5,
    )
)
def test_bad_launch_arguments_never_launch_or_crash(args: dict[str, Any]) -> None:
    args = {**args, "dry_run": True}

    async def go() -> None:
        async with Client(create_server()) as client:
            try:
                await client.call_tool("launch_training", args)
            except ToolError as exc:
                assert "internal error" not in str(exc), str(exc)

    asyncio.run(go())
    assert json.loads(json.dumps(call("list_jobs")))["result"] == []
