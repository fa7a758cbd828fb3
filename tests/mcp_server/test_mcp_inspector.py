"""The MCP Inspector's CLI (``npx @modelcontextprotocol/inspector --cli``, the protocol's reference client,
in Node) against ``vibeml mcp`` over stdio: it lists every tool with its annotations and reads a finished
job's log resource.

The Inspector runs from the npm cache only (``npx --offline``): where npx or the cached package is missing,
the test skips and says how to cache it. The job is a finished local job of the stand-in trainer (a real
process, its events and log), made before the server starts; the server reads it back as any local job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.mcp_server.test_mcp_annotations import EXPECTED
from tests.standin_local import StandInLocal, standin_service
from vibeml.models import TrainingRequest

pytestmark = [pytest.mark.needs_train, pytest.mark.slow]  # the demo assets; Node and a server per call

#: The newest Inspector that runs on Node 20 (0.16 and later need Node 22).
INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"
ROOT = Path(__file__).resolve().parents[2]


def inspector_argv(home: Path, *method: str) -> list[str]:
    """``npx … --cli -e … <python> -m vibeml mcp --method …``: the Inspector spawns the server itself."""
    env = [f"VIBEML_HOME={home}", "HF_HUB_OFFLINE=1", f"PYTHONPATH={ROOT / 'src'}"]
    return [
        "npx",
        "-y",
        "--offline",
        INSPECTOR,
        "--cli",
        *[arg for kv in env for arg in ("-e", kv)],
        sys.executable,
        "-m",
        "vibeml",
        "mcp",
        "--method",
        *method,
    ]


def _run(argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=dict(os.environ), check=False)


@pytest.fixture(scope="module")
def inspector() -> None:
    if shutil.which("npx") is None:
        pytest.skip("npx (Node.js) is not installed")
    probe = _run(["npx", "-y", "--offline", INSPECTOR, "--help"], timeout=300)
    if probe.returncode != 0 or "--cli" not in probe.stdout:
        pytest.skip(f"{INSPECTOR} is not in the npm cache; cache it once online: npx -y {INSPECTOR} --help")


def _finished_job(demo_assets_dir: Path) -> str:
    StandInLocal.mode = "complete"
    svc = standin_service()
    model = next(demo_assets_dir.rglob("config.json")).parent
    data = next(demo_assets_dir.rglob("*.jsonl"))
    record = svc.launch(TrainingRequest(model=str(model), dataset=str(data), max_steps=5))
    deadline = time.monotonic() + 60
    while not (record := svc.get_status(record.job_id)).status.is_terminal and time.monotonic() < deadline:
        time.sleep(0.2)
    assert record.status.value == "completed", record.error
    return record.job_id


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_inspector_lists_annotated_tools_and_reads_a_job_log(
    inspector: None, vibeml_env: Path, demo_assets_dir: Path
) -> None:
    job_id = _finished_job(demo_assets_dir)

    tools = {t["name"]: t for t in _json(_run(inspector_argv(vibeml_env, "tools/list")))["tools"]}
    assert set(tools) == set(EXPECTED)
    for name, tool in tools.items():
        a = tool["annotations"]
        got = (a["readOnlyHint"], a["destructiveHint"], a["idempotentHint"], a["openWorldHint"])
        assert got == EXPECTED[name], (name, got)
        assert a["title"] == tool["title"]

    templates = _json(_run(inspector_argv(vibeml_env, "resources/templates/list")))["resourceTemplates"]
    assert {t["uriTemplate"] for t in templates} == {"vibeml://jobs/{job_id}/log", "vibeml://jobs/{job_id}/events"}

    uri = f"vibeml://jobs/{job_id}/log"
    [content] = _json(_run(inspector_argv(vibeml_env, "resources/read", "--uri", uri)))["contents"]
    assert content["uri"] == uri and content["mimeType"] == "text/plain"
    lines = content["text"].splitlines()
    assert "started complete" in lines and "step 5" in lines, lines  # the stand-in trainer's own log

    missing = _run(inspector_argv(vibeml_env, "resources/read", "--uri", "vibeml://jobs/vml-nope/log"))
    assert missing.returncode != 0 and "no job 'vml-nope'" in missing.stdout + missing.stderr
