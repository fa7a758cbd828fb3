"""A SkyPilot task run as is on a faithful machine: the exported setup and run scripts, nothing replaced.

The node is the faithful fake machine's container (:mod:`vibeml.testing.fake_vast_machine`: a clean image
with torch and no VibeML, offline, installing from this host's uv cache; see ``test_vast_faithful_e2e``).
What SkyPilot itself would do is done here by hand, as it documents it: copy the task's ``file_mounts`` to
their paths on the node (the shipped wheel of this VibeML, the local model and dataset), set the task's
``envs`` and SkyPilot's node variables, run ``setup`` then ``run`` with bash from ``$HOME``. The setup installs
the shipped wheel with the lock's pins; the run is the one remote supervisor, which trains the tiny model
under the budget and leaves the adapter where the client's rsync fetches it (``~/vibeml-job/output``).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from vibeml.backends.base import LaunchChoice
from vibeml.backends.skypilot.task import RUN_SCRIPT, SETUP_SCRIPT, SkyOptions, build_task_spec
from vibeml.demo.assets import DATASET_FILE, MODEL_DIR
from vibeml.models import TrainingRequest
from vibeml.remote.supervisor import parse_runner_lines
from vibeml.testing.fake_vast_machine import SYSTEM_PATH, FakeMachineImage
from vibeml.trainer.events import DoneEvent, StepEvent, parse_event_lines
from vibeml.workflows.registry import render_program

pytestmark = [pytest.mark.slow, pytest.mark.needs_train]


def _run(image: FakeMachineImage, node: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # SkyPilot runs each script with bash in the node's home.
    return subprocess.run(
        image.argv(node, f'cd "$HOME" && bash -c {shlex.quote(script)}'),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_skypilot_node_installs_the_shipped_build_and_trains(
    offline_image: FakeMachineImage, demo_assets_dir: Path, tmp_path: Path
) -> None:
    request = TrainingRequest(
        model=str(demo_assets_dir / MODEL_DIR), dataset=str(demo_assets_dir / DATASET_FILE), max_steps=6
    )
    program = render_program(
        request,
        "vml-skynode",
        output_dir=str(tmp_path / "out"),
        checkpoint_dir=str(tmp_path / "ckpt"),
        events_path=str(tmp_path / "events.jsonl"),
    )
    options = SkyOptions(install="ship", wheel_cache=tmp_path / "wheels", stop_grace_seconds=30)
    # The fake node shares this host's /proc/uptime, which the supervisor bills as the node's boot time when
    # it is under the time budget: a budget of 250 h stays far above any host's uptime here (2 h did not: a
    # host up 2.5 h left no time to train).
    choice = LaunchChoice(gpu_type="L4", cloud="aws", region="us-east-1", hourly_rate=0.8, max_cost=200.0)
    spec = build_task_spec(program, "vml-skynode", choice, options)
    assert not spec.managed and spec.store is None  # on demand: the output stays on the node for the rsync

    node = tmp_path / "node"
    offline_image.materialize(node)
    for target, source in spec.file_mounts.items():  # SkyPilot's file_mounts, by hand
        assert target.startswith("~/")
        dest = node / "root" / target[2:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if Path(source).is_dir() else shutil.copy2)(source, dest)
    env = {"PATH": f"{offline_image.venv / 'bin'}:{SYSTEM_PATH}", "HOME": "/root", "LANG": "C.UTF-8"}
    env.update(offline_image.extra_env)
    env.update(spec.envs)
    env.update(
        SKYPILOT_NUM_NODES="1", SKYPILOT_NODE_RANK="0", SKYPILOT_NUM_GPUS_PER_NODE="1", SKYPILOT_NODE_IPS="10.0.0.1"
    )

    setup = _run(offline_image, node, SETUP_SCRIPT, env)
    assert setup.returncode == 0 and "[vibeml] setup done" in setup.stdout, (setup.stdout[-2000:], setup.stderr[-3000:])
    # The node's VibeML is the shipped wheel, nothing of this checkout.
    [wheel] = (tmp_path / "wheels").rglob("vibeml-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert "vibeml/remote/supervisor.py" in zf.namelist()
    probe = _run(offline_image, node, "python3 -c 'import vibeml; print(vibeml.__file__)'", env)
    assert probe.stdout.strip().startswith(str(offline_image.venv)), probe

    run = _run(offline_image, node, RUN_SCRIPT, env)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    lines = run.stdout.splitlines()
    phases = [r["phase"] for r in parse_runner_lines(lines)]
    assert phases[0] == "start" and "trainer-start" in phases and phases[-1] == "finished"
    events = list(parse_event_lines(lines))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps and steps[-1].step == 6 and isinstance(events[-1], DoneEvent)
    output = node / "root" / spec.remote_output_dir  # what the client's rsync copies back from ~/
    assert (output / "adapter_config.json").exists() and list(output.glob("adapter_model.*"))
    state = json.loads((node / "root" / "vibeml-job" / "state" / "runner_state.json").read_text())
    assert state["phase"] == "finished" and state["outcome"] == "done" and state["runs"] == 1
