"""Record the MCP Inspector's CLI against `vibeml mcp`: the tools with their annotations, the resource
templates, and a finished job's log resource (bench/results/mcp_inspector.txt).

The job is real: `vibeml launch --demo --follow` trains the bundled tiny model on this machine's CPU, in a
fresh VIBEML_HOME (a temporary directory), with HF_HUB_OFFLINE=1. Then the Inspector (from the npm cache:
`npx -y --offline`) spawns `python -m vibeml mcp` over stdio for each method. The commands are the ones
`tests/mcp_server/test_mcp_inspector.py` runs (imported from it); outputs are trimmed as noted.

Run: `.venv/bin/python bench/mcp_inspector.py [--out bench/results/mcp_inspector.txt]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mcp_server.test_mcp_inspector import INSPECTOR, inspector_argv  # noqa: E402


def _show(argv: list[str], home: Path) -> str:
    return "$ " + shlex.join(argv).replace(str(home), "$VIBEML_HOME").replace(str(ROOT), ".")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mcp_inspector.txt")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="vibeml-inspector-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "VIBEML_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
        launch = [sys.executable, "-m", "vibeml", "launch", "--demo", "--max-cost", "1"]
        launch += ["--max-steps", str(args.steps), "--follow"]
        ran = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=900, check=False)
        if ran.returncode != 0:
            print(ran.stdout[-2000:], ran.stderr[-2000:], file=sys.stderr)
            return 1
        jobs = subprocess.run(
            [sys.executable, "-m", "vibeml", "jobs", "--json"], capture_output=True, text=True, env=env, check=True
        )
        [job] = json.loads(jobs.stdout)
        job_id = job["job_id"]
        out = [
            f"# MCP Inspector CLI ({INSPECTOR}, Node {node}) against `vibeml mcp` (stdio)",
            "# VIBEML_HOME: a fresh temporary directory (shown as $VIBEML_HOME); a finished job made first by: "
            f"vibeml launch --demo --max-cost 1 --max-steps {args.steps} --follow  → {job_id} {job['status']}",
            "",
        ]

        def run(*method: str) -> dict:
            argv = inspector_argv(home, *method)
            res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
            if res.returncode != 0:
                raise SystemExit(f"{_show(argv, home)} failed: {res.stderr[-2000:]}")
            out.append(_show(argv, home))
            return json.loads(res.stdout)

        tools = run("tools/list")["tools"]
        out.append(f"# {len(tools)} tools; each tool's name and its `annotations`, verbatim (schemas trimmed):")
        for t in tools:
            out.append(f"{t['name']}: {json.dumps(t['annotations'])}")
        out.append("")
        templates = run("resources/templates/list")["resourceTemplates"]
        out.append("# the resource templates (uriTemplate, mimeType):")
        out += [f"{t['uriTemplate']}  {t.get('mimeType')}" for t in templates]
        out.append("")
        [content] = run("resources/read", "--uri", f"vibeml://jobs/{job_id}/log")["contents"]
        lines = content["text"].splitlines()
        out.append(
            f"# contents[0]: uri={content['uri']} mimeType={content['mimeType']}, {len(lines)} lines; "
            "its first 5 and last 5:"
        )
        out += [*lines[:5], "…", *lines[-5:]]
    text = "\n".join(out).replace(str(home), "$VIBEML_HOME") + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
