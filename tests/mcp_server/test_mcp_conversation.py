"""The conversation docs/mcp.md shows, from a real run: FastMCP's client drives the server through estimate →
dry run → the person's yes (elicitation) → launch with wait=true (progress) → status → the log resource.

The run is real but for the cloud: the fake Vast.ai over real HTTP rents the "instance", on which the real
remote runner trains the bundled demo model on this machine's CPU. The transcript is compared with the
block in docs/mcp.md with the run's own values (job id, losses, cost so far, paths) masked; run with
WRITE_DOCS=1 to write this run's transcript into the doc.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_support import assert_nothing_billing, make_service
from vibeml.demo.assets import MODEL_DIR
from vibeml.mcp.server import create_server
from vibeml.testing.fake_vast import FakeVast

fake = support.fake
vast_env = support.vast_env
demo_home = support.demo_home

pytestmark = [pytest.mark.needs_train, pytest.mark.slow, pytest.mark.timeout(900)]  # trains on a shared CPU

DOC = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"
BEGIN, END = "<!-- conversation: begin (tests/mcp_server/test_mcp_conversation.py) -->", "<!-- conversation: end -->"
ASK = "Train the demo model on a rented GPU, 8 steps, for at most $1."
LAUNCH = {"demo": True, "backend": "vast", "max_cost": 1, "max_steps": 8}


def _args(args: dict[str, Any]) -> str:
    return json.dumps(args, separators=(", ", ": "))


def _indent(text: str) -> list[str]:
    return ["    " + line for line in text.splitlines()]


def converse(home: Path, fake: FakeVast) -> list[str]:
    """Run the conversation; its transcript, one line per turn (server texts indented)."""
    svc, _ = make_service(fake)
    out = [f"Person: {ASK}"]
    progress: list[str] = []

    shown: dict[str, str] = {}

    async def person(message: str, response_type: Any, params: Any, context: Any) -> dict[str, bool]:
        assert fake.count("create") == 0  # asked before anything is rented
        assert message == shown["confirmation"]  # the very plan and cost the dry run showed
        out.append("Server asks the person (elicitation), in the dry run's `confirmation` words:")
        out.extend(_indent(message.splitlines()[0] + " …"))
        out.append('Person: "Yes, start it."  → {"confirm": true}')
        return {"confirm": True}

    async def on_progress(step: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async def go() -> None:
        server = create_server(lambda: svc)
        async with Client(server, elicitation_handler=person, progress_handler=on_progress) as client:
            model = str(home / "demo" / MODEL_DIR)
            query = {"query": {"model": model, "gpu": "RTX 3090", "max_steps": 8, "batch_size": 4}}
            est = (await client.call_tool("estimate_training_cost", query)).structured_content
            assert est is not None and est["fits"]
            out.append(f"Assistant → estimate_training_cost {_args(query)}")
            out.append(
                f"    fits: {est['fits']}, {est['total_gib']:.1f} GiB of {est['capacity_gib']:.0f} GiB, "
                f"about {est['hours']:.2f} h, expected ${est['expected_cost']:.2f}"
            )

            dry = (await client.call_tool("launch_training", {**LAUNCH, "dry_run": True})).structured_content
            assert dry is not None and dry["confirmation"] and fake.count("create") == 0
            out.append(f"Assistant → launch_training {_args({**LAUNCH, 'dry_run': True})}")
            out.extend(_indent(f"confirmation: {dry['confirmation']}"))
            shown["confirmation"] = dry["confirmation"]

            out.append(f"Assistant → launch_training {_args({**LAUNCH, 'wait': True})}")
            res = await client.call_tool("launch_training", {**LAUNCH, "wait": True})  # the person is asked
            done = res.structured_content
            assert done is not None and done["job"]["status"] == "completed", done
            assert len(progress) >= 2, progress
            out.append(f"    progress: {progress[0]}")
            out.append("    … one notification per new step …")
            out.append(f"    progress: {progress[-1]}")
            out.append(f"    job {done['job']['job_id']}: {done['job']['status']}; next_step: {done['next_step']}")
            job_id = done["job"]["job_id"]

            status = (await client.call_tool("get_job_status", {"job_id": job_id})).structured_content
            assert status is not None
            p = status["progress"]
            out.append(f"Assistant → get_job_status {_args({'job_id': job_id})}")
            out.append(
                f"    {status['status']}, step {p['step']}/{p['max_steps']}, loss {p['loss']:.4f} "
                f"(first {p['first_loss']:.4f}), cost so far ${status['cost_so_far']:.4f}"
            )

            uri = f"vibeml://jobs/{job_id}/log"
            [log] = await client.read_resource(uri)
            lines = log.text.splitlines()  # type: ignore[union-attr]
            steps = [line for line in lines if line.startswith("[vibeml] step ")]
            [end] = [line.partition("; saved to")[0] for line in lines if line.startswith("[vibeml] done:")]
            out.append(f"Assistant → read resource {uri}  (its last step lines and the end)")
            out.extend("    " + line for line in [*steps[-2:], end])

    asyncio.run(go())
    assert_nothing_billing(fake)
    return [line.replace(str(home), "$VIBEML_HOME").rstrip() for line in out]


def _mask(text: str) -> str:
    """The run's own values: job ids, losses, costs so far, speeds, timings, the last poll's status."""
    text = re.sub(r"vml-[0-9a-f]{6,}", "vml-<id>", text)
    text = re.sub(r"(loss|first|->) \d+\.\d+", r"\1 <x>", text)
    text = re.sub(r"(cost|cost so far) \$\d+\.\d+", r"\1 $<x>", text)
    text = re.sub(r"\d+ tok/s", "<n> tok/s", text)
    text = re.sub(r"(progress: step \d+/\d+ .*)\((running|completed)\)", r"\1(<status>)", text)  # polled
    return re.sub(r"\b\d+(\.\d+)?s\b", "<t>s", text)


def _doc_block() -> str:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip().removeprefix("```text").removesuffix("```").strip()


def test_the_documented_conversation_is_what_a_run_says(demo_home: Path, vast_env: FakeVast) -> None:
    transcript = "\n".join(converse(demo_home, vast_env))
    if os.environ.get("WRITE_DOCS") == "1":
        text = DOC.read_text(encoding="utf-8")
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        DOC.write_text(text[:start] + "\n```text\n" + transcript + "\n```\n" + text[end:], encoding="utf-8")
    assert _mask(_doc_block()) == _mask(transcript), transcript
