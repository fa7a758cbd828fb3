"""SkyPilot task generation with real ``sky.Task``/``sky.Resources`` objects and YAML round trips.

Nothing here talks to an API server: building tasks and resources is offline in SkyPilot 0.14.1, and an
autouse guard makes any attempt to start or call the server fail the test.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from vibeml.backends.base import LaunchCandidate, LaunchChoice
from vibeml.backends.skypilot.remote import SkyPilotSupervisor
from vibeml.backends.skypilot.task import (
    PAYLOAD_ENV,
    RUN_SCRIPT,
    SETUP_SCRIPT,
    STORE_MOUNT,
    SkyOptions,
    budget_plan,
    build_task_spec,
    payload_config,
    sky_cluster_name,
)
from vibeml.exceptions import ConfigurationError
from vibeml.models import TrainingRequest
from vibeml.remote.payload import decode_payload, encode_payload
from vibeml.remote.supervisor import parse_runner_lines
from vibeml.trainer.events import StoppedEvent, parse_event_lines
from vibeml.workflows.registry import TrainingProgram, render_program


@pytest.fixture(autouse=True)
def no_api_server(sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Any attempt to start or reach SkyPilot's API server fails the test; nothing leaves the machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(home))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the SkyPilot API server was contacted")

    server_common = importlib.import_module("sky.server.common")
    monkeypatch.setattr(server_common, "check_server_healthy_or_start_fn", refuse)
    monkeypatch.setattr(server_common, "make_authenticated_request", refuse)
    yield home
    assert not (home / ".sky" / "api_server").exists()


def _program(model: str = "Qwen/Qwen2.5-0.5B", dataset: str = "tatsu-lab/alpaca", **env: str) -> TrainingProgram:
    request = TrainingRequest(model="m/x", dataset="d/x", max_steps=20)
    program = render_program(
        request,
        "vml-t1",
        output_dir="/local/out",
        checkpoint_dir="/local/ckpt",
        events_path="/local/events.jsonl",
        env=env,
    )
    config = program.config.model_copy(update={"model": model, "dataset": dataset})
    return program.model_copy(update={"config": config})


OPTS = SkyOptions(install="vibeml[train]==0.1.0", stop_grace_seconds=60, autodown_idle_minutes=20)

CASES: dict[str, LaunchChoice] = {
    "single-gpu": LaunchChoice(
        gpu_type="L4", gpu_count=1, cloud="aws", region="us-east-1", hourly_rate=0.8, max_cost=4.0, disk_gb=60
    ),
    "multi-gpu": LaunchChoice(gpu_type="A100-80GB", gpu_count=4, cloud="gcp", region="us-central1", hourly_rate=20.28),
    "multi-node": LaunchChoice(
        gpu_type="H100", gpu_count=8, num_nodes=2, cloud="aws", hourly_rate=55.04, max_cost=500.0
    ),
    "spot": LaunchChoice(
        gpu_type="RTX 4090", gpu_count=1, cloud="runpod", region="global", use_spot=True, hourly_rate=0.34, max_cost=3.0
    ),
}


def _resources(task: Any) -> list[Any]:
    return sorted(task.resources, key=lambda r: str(r))


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_task_and_yaml_round_trip(sky: ModuleType, case: str) -> None:
    choice = CASES[case]
    spec = build_task_spec(_program(), "vml-t1", choice, OPTS)
    task = spec.to_task(sky)
    assert isinstance(task, sky.Task)
    (res,) = task.resources
    assert isinstance(res, sky.Resources)
    expected_acc = {"RTX 4090": "RTX4090"}.get(choice.gpu_type or "", choice.gpu_type)
    assert res.accelerators == {expected_acc: choice.gpu_count}
    assert res.use_spot is choice.use_spot
    assert task.num_nodes == choice.num_nodes
    assert task.setup == SETUP_SCRIPT and task.run == RUN_SCRIPT

    text = spec.to_yaml(sky)
    back = sky.Task.from_yaml_str(text)
    assert back.name == task.name == sky_cluster_name("vml-t1")
    assert back.num_nodes == task.num_nodes
    assert back.setup == task.setup and back.run == task.run
    assert back.envs == task.envs
    (res2,) = back.resources
    assert res2.accelerators == res.accelerators
    assert res2.use_spot == res.use_spot
    assert res2.disk_size == res.disk_size >= 100
    assert res2.max_hourly_cost == res.max_hourly_cost
    assert str(res2.cloud).lower() == str(res.cloud).lower() == choice.cloud
    config = payload_config(back.envs)
    assert config.resume is True
    assert back.envs["VIBEML_ECHO_EVENTS"] == "1"
    if choice.use_spot:
        assert spec.managed and STORE_MOUNT in back.storage_mounts
        assert config.checkpoint_dir == f"{STORE_MOUNT}/vml-t1/checkpoints"
        assert res2.autostop_config is None or not res2.autostop_config.enabled
    else:
        assert not spec.managed and not back.storage_mounts
        assert config.checkpoint_dir == "checkpoints"  # relative to the job dir, ~/vibeml-job
        assert res.autostop_config.enabled and res.autostop_config.down
    if choice.max_cost:
        assert res.max_hourly_cost == pytest.approx(choice.hourly_rate * 1.1, rel=1e-3)
        limit = decode_payload(back.envs[PAYLOAD_ENV]).budget.max_runtime_seconds
        assert limit == int(choice.max_cost / (choice.hourly_rate * 1.1 * choice.num_nodes) * 3600)
        assert config.max_runtime_seconds is not None and config.max_runtime_seconds < limit
    else:
        assert res.max_hourly_cost is None and decode_payload(back.envs[PAYLOAD_ENV]).budget.max_runtime_seconds == 0


def test_candidates_become_any_of(sky: ModuleType) -> None:
    choice = LaunchChoice(
        gpu_type="H100",
        cloud="runpod",
        hourly_rate=2.69,
        max_cost=10.0,
        candidates=(
            LaunchCandidate(gpu_type="H100", cloud="lambda", region="us-east-1", hourly_rate=2.99),
            LaunchCandidate(gpu_type="H100", cloud="nebius", region="eu-north1", hourly_rate=2.95),
        ),
    )
    spec = build_task_spec(_program(), "vml-any", choice, OPTS)
    task = spec.to_task(sky)
    assert len(task.resources) == 3
    clouds = {str(r.cloud).lower() for r in task.resources}
    assert clouds == {"runpod", "lambda", "nebius"}
    config = spec.to_yaml_config(sky)
    assert len(config["resources"]["any_of"]) == 3
    back = sky.Task.from_yaml_str(spec.to_yaml(sky))
    assert {str(r.cloud).lower() for r in back.resources} == clouds
    # The budget holds even on the priciest candidate.
    assert spec.runtime_limit_seconds == int(10.0 / (2.99 * 1.1) * 3600)


def test_budget_plan_table() -> None:
    c = LaunchChoice(gpu_type="H100", hourly_rate=2.0, max_cost=2.2)
    plan = budget_plan(c, managed=False, autodown_idle_minutes=5)
    assert plan.caps == (pytest.approx(2.2),) and plan.runtime_limit_seconds == 3600 and plan.reserve_seconds == 300
    assert budget_plan(c, managed=True, autodown_idle_minutes=5).reserve_seconds == 0
    tighter = c.model_copy(update={"max_runtime_seconds": 600.0})
    assert budget_plan(tighter, managed=True, autodown_idle_minutes=5).runtime_limit_seconds == 600
    free = LaunchChoice(gpu_type="H100", hourly_rate=2.0)
    assert budget_plan(free, managed=False, autodown_idle_minutes=5).runtime_limit_seconds is None
    two_nodes = c.model_copy(update={"num_nodes": 2})
    assert budget_plan(two_nodes, managed=False, autodown_idle_minutes=5).runtime_limit_seconds == 1800


NASTY = [
    'org/model"; rm -rf / #',
    "$(touch PWNED)",
    "`touch PWNED`",
    "evil'\nnewline $HOME ${PATH} \\ ; | & > <",
]


@pytest.mark.parametrize("nasty", NASTY)
def test_user_strings_never_reach_scripts(sky: ModuleType, nasty: str, tmp_path: Path) -> None:
    program = _program(model=nasty, dataset=nasty + "/data")
    spec = build_task_spec(program, "vml-inj", CASES["spot"], OPTS)
    for text in (spec.setup, spec.run):
        assert text in (SETUP_SCRIPT, RUN_SCRIPT)
        assert nasty not in text and "PWNED" not in text
    task = spec.to_task(sky)
    assert task.setup == SETUP_SCRIPT and task.run == RUN_SCRIPT
    back = sky.Task.from_yaml_str(spec.to_yaml(sky))
    config = payload_config(back.envs)
    assert config.model == nasty and config.dataset == nasty + "/data"
    for key, value in back.envs.items():
        if key != PAYLOAD_ENV:
            assert nasty not in value and "PWNED" not in value
    # Run the real run script and supervisor: the config arrives intact and nothing is executed.
    result = _run_script(tmp_path, back.envs)
    assert result["code"] == 0, result
    written = json.loads(result["config"])
    assert written["model"] == nasty and written["dataset"] == nasty + "/data"
    assert not list(tmp_path.rglob("PWNED"))


#: A stand-in trainer (``python -m rec_trainer``) that records how the supervisor started it.
REC_TRAINER = """\
import json, os, pathlib, sys
args = sys.argv[1:]
cfg = args[args.index("--config") + 1]
pathlib.Path(os.environ["REC_FILE"]).write_text(json.dumps({
    "argv": args, "config": pathlib.Path(cfg).read_text(), "cwd": os.getcwd(), "env": sorted(os.environ),
}))
"""
SRC = Path(importlib.import_module("vibeml").__file__ or "").resolve().parents[1]


def _run_script(
    tmp_path: Path, envs: dict[str, str], budget: dict[str, Any] | None = None, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run the task's real run script on a "node" (HOME under tmp_path): the real supervisor, with the
    payload's trainer swapped for the recording stand-in (and the budget changed when asked)."""
    home = tmp_path / "node-home"
    mods = tmp_path / "mods"
    home.mkdir(parents=True, exist_ok=True)
    mods.mkdir(parents=True, exist_ok=True)
    (mods / "rec_trainer.py").write_text(REC_TRAINER)
    record = tmp_path / "record.json"
    record.unlink(missing_ok=True)
    job = decode_payload(envs[PAYLOAD_ENV])
    # The bucket's mount point (/vibeml-store/...) is the node's; here the state stays in the node's home.
    update: dict[str, Any] = {"module": "rec_trainer", "state_dir": str(home / "vibeml-job" / "state")}
    if budget:
        update["budget"] = job.budget.model_copy(update=budget)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIBEML_", "SKYPILOT_"))}
    env.update(envs)
    env[PAYLOAD_ENV] = encode_payload(job.model_copy(update=update), compress=False)
    env.update(
        HOME=str(home),
        VIBEML_REMOTE_PYTHON=sys.executable,
        REC_FILE=str(record),
        PYTHONPATH=f"{mods}{os.pathsep}{SRC}",
    )
    env.update(extra or {})
    proc = subprocess.run(
        ["bash", "-c", RUN_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    out: dict[str, Any] = {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "home": home}
    if record.exists():
        out.update(json.loads(record.read_text()))
    state = home / "vibeml-job" / "state" / "runner_state.json"
    if state.exists():
        out["state"] = json.loads(state.read_text())
    return out


def test_the_run_script_runs_the_one_supervisor(sky: ModuleType, tmp_path: Path) -> None:
    envs = build_task_spec(_program(), "vml-run", CASES["single-gpu"], OPTS).envs
    assert RUN_SCRIPT.rstrip().endswith("-m vibeml.remote")  # the program Vast's onstart execs too
    single = _run_script(tmp_path, envs, extra={"SKYPILOT_NUM_GPUS_PER_NODE": "1"})
    assert single["code"] == 0, single
    job_dir = single["home"] / "vibeml-job"
    assert single["argv"] == ["--config", str(job_dir / "config.json")] and single["cwd"] == str(job_dir)
    config = json.loads(single["config"])
    assert config["events_path"] == str(job_dir / "events.jsonl")  # relative paths made absolute on the node
    assert config["output_dir"] == str(job_dir / "output")
    assert PAYLOAD_ENV not in single["env"] and "VIBEML_INSTALL" not in single["env"]  # the trainer never sees them
    phases = [r["phase"] for r in parse_runner_lines(single["stdout"].splitlines())]
    assert phases[0] == "start" and "trainer-start" in phases and phases[-1] == "finished"


def test_the_supervisor_launches_across_skypilots_gpus_and_nodes(tmp_path: Path) -> None:
    job = decode_payload(build_task_spec(_program(), "vml-nodes", CASES["multi-gpu"], OPTS).envs[PAYLOAD_ENV])
    config = tmp_path / "config.json"

    def argv(**env: str) -> list[str]:
        return SkyPilotSupervisor(job, {"VIBEML_REMOTE_DIR": str(tmp_path), **env}).trainer_argv(config)

    tail = ["-m", "vibeml.trainer", "--config", str(config)]
    assert argv(SKYPILOT_NUM_GPUS_PER_NODE="1") == [sys.executable, *tail]
    standalone = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert argv(SKYPILOT_NUM_GPUS_PER_NODE="4") == [*standalone, *tail]
    nodes = argv(
        SKYPILOT_NUM_NODES="2",
        SKYPILOT_NODE_RANK="1",
        SKYPILOT_NUM_GPUS_PER_NODE="8",
        SKYPILOT_NODE_IPS="10.0.0.1\n10.0.0.2",
    )
    assert nodes[:3] == [sys.executable, "-m", "torch.distributed.run"] and nodes[-4:] == tail
    rendezvous = {"--nnodes=2", "--nproc_per_node=8", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29500"}
    assert set(nodes[3:-4]) == rendezvous
    with pytest.raises(ConfigurationError):  # a bad variable: a clear refusal, the supervisor gives up
        argv(SKYPILOT_NUM_GPUS_PER_NODE="junk")


def test_the_supervisor_enforces_the_budget(sky: ModuleType, tmp_path: Path) -> None:
    envs = build_task_spec(_program(), "vml-budget", CASES["single-gpu"], OPTS).envs
    timed = _run_script(tmp_path / "a", envs, budget={"max_runtime_seconds": 999_999_999, "reserve_seconds": 0})
    assert timed["code"] == 0, timed
    limit = json.loads(timed["config"])["max_runtime_seconds"]
    assert 0 < limit < 999_999_999 - 2 * 60  # the trainer stops itself two graces before the end
    # A managed job recovered after its budget was spent (the clock lives on the bucket): no time to train.
    state = tmp_path / "b" / "node-home" / "vibeml-job" / "state"
    state.mkdir(parents=True)
    (state / "runner_state.json").write_text(json.dumps({"runs": 1, "used_seconds": 3590.0, "boots": ["x"]}))
    spent = _run_script(tmp_path / "b", envs, budget={"max_runtime_seconds": 3600})
    assert spent["code"] == 0 and "argv" not in spent, spent  # the trainer never started
    [event] = list(parse_event_lines(spent["stdout"].splitlines()))  # the trainer contract's own event
    assert isinstance(event, StoppedEvent) and event.reason == "max_runtime" and event.step is None


def test_the_budget_counts_the_boot_once_and_not_a_reused_machines_uptime(sky: ModuleType, tmp_path: Path) -> None:
    envs = build_task_spec(_program(), "vml-boot", CASES["single-gpu"], OPTS).envs
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    budget = {"max_runtime_seconds": uptime + 5000, "reserve_seconds": 0}
    # A machine started for this job: its boot (provisioning, setup) is billed and comes off the budget, once.
    fresh = _run_script(tmp_path / "m", envs, budget=budget)
    first = fresh["state"]["used_seconds"]
    assert uptime <= first <= uptime + 60, fresh["state"]
    again = _run_script(tmp_path / "m", envs, budget=budget)  # the same node runs the job again
    assert first <= again["state"]["used_seconds"] <= first + 60  # the boot is not counted twice
    assert again["state"]["runs"] == 2
    # A machine up longer than the whole budget was not started for this job (a reused cluster): from now.
    if uptime > 600:
        reused = _run_script(tmp_path / "r", envs, budget={"max_runtime_seconds": uptime - 300})
        assert reused["state"]["used_seconds"] <= 60, reused["state"]


def test_local_inputs_are_mounted(sky: ModuleType, tmp_path: Path) -> None:
    model = tmp_path / "my model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "train data.jsonl"
    data.write_text('{"text": "hi"}\n')
    spec = build_task_spec(_program(model=str(model), dataset=str(data)), "vml-mnt", CASES["single-gpu"], OPTS)
    assert spec.file_mounts == {"~/vibeml-job/inputs/model": str(model), "~/vibeml-job/inputs/dataset.jsonl": str(data)}
    assert spec.config.model == "inputs/model"  # relative to the job dir, made absolute by the supervisor
    assert spec.config.dataset == "inputs/dataset.jsonl"
    relative = decode_payload(spec.envs[PAYLOAD_ENV]).relative_fields
    assert {"model", "dataset", "events_path", "output_dir", "checkpoint_dir"} <= set(relative)
    back = sky.Task.from_yaml_str(spec.to_yaml(sky))
    assert back.file_mounts["~/vibeml-job/inputs/dataset.jsonl"] == str(data)


def test_bucket_and_install_options(sky: ModuleType, tmp_path: Path) -> None:
    wheel = tmp_path / "vibeml-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    opts = OPTS.model_copy(update={"bucket": "s3://my-bucket/runs/", "install": str(wheel)})
    spec = build_task_spec(_program(), "vml-bkt", CASES["single-gpu"], opts)
    assert spec.store is not None and spec.store.url == "s3://my-bucket/runs"
    assert spec.store_output_url == "s3://my-bucket/runs/vml-bkt/output"
    assert spec.envs["VIBEML_INSTALL"] == f"./vibeml-pkg/{wheel.name}"
    assert spec.file_mounts[f"~/vibeml-pkg/{wheel.name}"] == str(wheel)
    config = yaml.safe_load(spec.to_yaml(sky))
    assert config["file_mounts"][STORE_MOUNT]["source"] == "s3://my-bucket/runs"
    with pytest.raises(ConfigurationError, match="bucket"):
        build_task_spec(_program(), "vml-bkt", None, OPTS.model_copy(update={"bucket": "s3://x; rm -rf /"}))


def test_rejects_unsafe_requirements_and_env_names() -> None:
    bad = _program().model_copy(update={"requirements": ("--index-url=http://evil",)})
    with pytest.raises(ConfigurationError, match="requirement"):
        build_task_spec(bad, "vml-req", None, OPTS)
    with pytest.raises(ConfigurationError, match="environment"):
        build_task_spec(_program(**{"SKYPILOT_NODE_RANK": "0"}), "vml-env", None, OPTS)
    spec = build_task_spec(_program(HF_HUB_OFFLINE="1"), "vml-env", None, OPTS)
    assert spec.envs["HF_HUB_OFFLINE"] == "1"
    sent = spec.envs["VIBEML_REQUIREMENTS"].splitlines()
    assert sent == list(_program().requirements)  # the lock's lines (tests/test_lock.py), torch's among them
    assert any(r.startswith("torch==") for r in sent)
    plugin = _program().model_copy(update={"requirements": ("peft==0.21.2",)})
    assert build_task_spec(plugin, "vml-env", None, OPTS).envs["VIBEML_REQUIREMENTS"].splitlines() == [
        "torch",
        "peft==0.21.2",
    ]  # a requirement list without torch still gets one


def test_cluster_names() -> None:
    assert sky_cluster_name("vml-1a2b3c4d") == "vibeml-vml-1a2b3c4d"
    assert sky_cluster_name("VML_Weird..ID") == "vibeml-vml-weird-id"
