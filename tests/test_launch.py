"""The one launcher (vibeml.launch): the trainer's command line from the job's process layout, for every backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vibeml.backends.vast.backend import VastBackend
from vibeml.backends.vast.remote import VastSupervisor
from vibeml.exceptions import ConfigurationError, VibeMLError
from vibeml.launch import Rendezvous, rendezvous_from_skypilot, trainer_command
from vibeml.models import TrainingRequest
from vibeml.workflows.registry import get_workflow, render_program, resolve_strategy

TRAINER = ["-m", "vibeml.trainer", "--config", "c.json"]


def test_one_process_runs_the_trainer_directly() -> None:
    assert trainer_command("py", "c.json") == ["py", *TRAINER]
    assert trainer_command("py", "c.json", Rendezvous(nproc_per_node=1)) == ["py", *TRAINER]


def test_several_processes_on_one_node_run_under_standalone_torchrun() -> None:
    cmd = trainer_command("py", "c.json", Rendezvous(nproc_per_node=4))
    assert cmd == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", *TRAINER]


def test_several_nodes_rendezvous_at_the_master() -> None:
    cmd = trainer_command("py", "c.json", Rendezvous(nproc_per_node=8, nnodes=2, node_rank=1, master_addr="10.0.0.1"))
    assert cmd == [
        "py",
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=8",
        "--node_rank=1",
        "--master_addr=10.0.0.1",
        "--master_port=29500",
        *TRAINER,
    ]


@pytest.mark.parametrize(
    "kw",
    [
        {"nproc_per_node": 0},
        {"nnodes": 2, "node_rank": 2, "master_addr": "10.0.0.1"},
        {"nnodes": 2},  # no master address
        {"nnodes": 2, "master_addr": "10.0.0.1; rm -rf /"},  # never a shell word
        {"master_port": 70000},
    ],
)
def test_a_bad_rendezvous_is_a_typed_error(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as err:
        Rendezvous(**kw)
    assert err.value.recovery_suggestion


def test_skypilot_environment_gives_the_node_its_place() -> None:
    env = {
        "SKYPILOT_NUM_NODES": "3",
        "SKYPILOT_NODE_RANK": "2",
        "SKYPILOT_NUM_GPUS_PER_NODE": "4",
        "SKYPILOT_NODE_IPS": "10.1.0.5\n10.1.0.6\n10.1.0.7\n",
        "VIBEML_MASTER_PORT": "29600",
    }
    r = rendezvous_from_skypilot(env)
    assert (r.nnodes, r.node_rank, r.nproc_per_node, r.master_addr, r.master_port) == (3, 2, 4, "10.1.0.5", 29600)
    assert r.world_size == 12
    assert rendezvous_from_skypilot({}).world_size == 1
    with pytest.raises(ConfigurationError, match="whole number"):
        rendezvous_from_skypilot({"SKYPILOT_NUM_NODES": "two"})


def test_module_prints_the_command_it_would_exec(tmp_path: Path) -> None:
    env = {"SKYPILOT_NUM_NODES": "1", "SKYPILOT_NUM_GPUS_PER_NODE": "2", "PATH": "/usr/bin:/bin"}
    import os

    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-m", "vibeml.launch", "--skypilot", "--print", "--config", "c.json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *TRAINER]
    assert (
        "torch"
        not in subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, vibeml.launch; print(' '.join(m for m in sys.modules if m == 'torch'))",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )


def test_cpu_processes_are_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from vibeml.backends.local import LocalBackend
    from vibeml.settings import Settings

    request = TrainingRequest(model="org/m", dataset="org/d", gpu_count=2)
    backend = LocalBackend(Settings.from_env())
    monkeypatch.setattr(backend, "_trainer_cuda_count", lambda: 0)
    with pytest.raises(ConfigurationError, match="sees 0") as err:
        backend.check(request)
    assert "VIBEML_CPU_PROCESSES=2" in str(err.value.recovery_suggestion)
    monkeypatch.setenv("VIBEML_CPU_PROCESSES", "2")
    allowed = LocalBackend(Settings.from_env())
    monkeypatch.setattr(allowed, "_trainer_cuda_count", lambda: 0)
    allowed.check(request)
    with pytest.raises(ConfigurationError, match="qlora workflow cannot run"):
        allowed.check(request.model_copy(update={"workflow": "qlora", "strategy": "fsdp"}))
    monkeypatch.setattr(allowed, "_trainer_cuda_count", lambda: 4)  # GPUs: no CPU opt-in needed
    allowed.check(request.model_copy(update={"gpu_count": 4}))


# ------------------------------------------------------------------------------ strategies and programs


def _render(**kw: Any) -> Any:
    gpus = kw.pop("gpus", None)
    nodes = kw.pop("nodes", 1)
    request = TrainingRequest(model="org/m", dataset="org/d", max_steps=3, **kw)
    return render_program(
        request, "j", output_dir="o", checkpoint_dir="c", events_path="e", gpu_count=gpus, num_nodes=nodes
    )


def test_one_gpu_is_always_single_and_several_default_to_ddp() -> None:
    assert _render().config.strategy == "single"
    assert _render(strategy="fsdp").config.strategy == "single"  # nothing to shard across
    p = _render(gpu_count=2)
    assert (p.config.strategy, p.nproc_per_node, p.nnodes) == ("ddp", 2, 1)
    assert p.argv("py", "c.json")[:5] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    p = _render(gpu_count=1, strategy="fsdp", gpus=8, nodes=2)  # the plan's layout wins over the request's
    assert (p.config.strategy, p.nproc_per_node, p.nnodes) == ("fsdp", 8, 2)


@pytest.mark.parametrize(
    ("workflow", "strategy", "match"),
    [
        ("qlora", "fsdp", "qlora workflow cannot run"),
        ("unsloth", None, "unsloth workflow cannot run"),
        ("trl-lora", "single", "one process"),
    ],
)
def test_strategies_a_workflow_lacks_are_refused(workflow: str, strategy: str | None, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as err:
        resolve_strategy(get_workflow(workflow), strategy, 2)
    assert err.value.recovery_suggestion
    assert {"single", "ddp", "fsdp"} == get_workflow("trl-lora").strategies == get_workflow("full").strategies
    assert get_workflow("qlora").strategies == {"single", "ddp"}


def test_trainer_refuses_qlora_with_fsdp_and_single_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from vibeml.trainer.config import TrainerConfig
    from vibeml.trainer.parallel import check_strategy

    base = {"model": "m", "dataset": "d", "output_dir": "o", "checkpoint_dir": "c", "events_path": "e"}
    with pytest.raises(ConfigurationError, match="QLoRA cannot be trained with FSDP"):
        check_strategy(TrainerConfig(**base, method="qlora", strategy="fsdp"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigurationError, match="started as 2 processes"):
        check_strategy(TrainerConfig(**base))
    check_strategy(TrainerConfig(**base, strategy="ddp"))


# ------------------------------------------------------------------------------------------ Vast


def test_vast_payload_and_runner_start_one_process_per_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = _render(gpu_count=4, strategy="fsdp")
    payload = VastBackend._payload(program, [])
    assert payload.gpus_per_node == 4 and payload.config["strategy"] == "fsdp"
    env = {"VIBEML_REMOTE_DIR": str(tmp_path / "job")}
    runner = VastSupervisor(payload, env)
    runner.root.mkdir(parents=True)
    seen: list[list[str]] = []
    monkeypatch.setattr(runner, "_supervise", lambda argv, env, announce=None: (seen.append(argv), (0, "exit"))[1])
    runner._train()
    [argv] = seen
    assert argv[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert argv[5:7] == ["-m", "vibeml.trainer"]
    single = VastSupervisor(VastBackend._payload(_render(), []), env)
    monkeypatch.setattr(single, "_supervise", lambda argv, env, announce=None: (seen.append(argv), (0, "exit"))[1])
    single._train()
    assert seen[-1][:3] == [sys.executable, "-m", "vibeml.trainer"]


def test_vast_refuses_a_plan_the_program_does_not_match(tmp_path: Path) -> None:
    from vibeml.models import LaunchChoice
    from vibeml.settings import Settings

    backend = VastBackend(Settings.from_env())
    with pytest.raises(VibeMLError, match="one machine"):
        backend.launch(_render(gpus=2, nodes=2), "j", tmp_path / "j", LaunchChoice(gpu_count=2, num_nodes=2))
    with pytest.raises(VibeMLError, match="runs 1 trainer process"):
        backend.launch(_render(), "j", tmp_path / "j", LaunchChoice(gpu_count=2))
