"""The SkyPilot task for the planner's top plan of a 70B full fine-tune: 2 nodes × 8 H100 with FSDP.

``export_task_yaml`` (what ``vibeml sky export`` writes) plans the job, renders the trainer for the plan's
layout and writes the YAML; SkyPilot itself reads it back (``sky.Task.from_yaml``). On every node the run
script execs the one supervisor, which starts torchrun with the rendezvous SkyPilot's variables give that
node (``SKYPILOT_NUM_NODES``, ``SKYPILOT_NODE_RANK``, ``SKYPILOT_NODE_IPS``: the first address is the master).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from vibeml.backends.skypilot.remote import SkyPilotSupervisor
from vibeml.backends.skypilot.task import PAYLOAD_ENV, RUN_SCRIPT, export_task_yaml, payload_config
from vibeml.models import TrainingRequest
from vibeml.remote.payload import decode_payload
from vibeml.settings import Settings

IPS = "10.0.0.1\n10.0.0.2"


@pytest.fixture
def request_70b(tmp_path: Path, vibeml_env: Path) -> TrainingRequest:
    data = tmp_path / "alpaca.jsonl"
    data.write_text('{"instruction": "Say hi", "output": "hi"}\n' * 40, encoding="utf-8")
    return TrainingRequest(
        model="meta-llama/Llama-3.1-70B",
        dataset=str(data),
        workflow="full",
        backend="skypilot",
        gpu_type="H100",
        effective_batch=16,
        max_steps=50,
    )


def test_the_70b_full_fine_tune_yaml_runs_fsdp_across_two_8_gpu_nodes(
    sky: ModuleType, request_70b: TrainingRequest, tmp_path: Path
) -> None:
    from vibeml.client import VibeML

    plan = VibeML().plan(request_70b)
    top = plan.options[0]
    assert (top.gpu, top.gpu_count, top.num_nodes, top.strategy) == ("H100", 8, 2, "fsdp")  # the planner's pick
    assert any(r.gpu_count == 8 and r.num_nodes == 1 and r.reason == "does_not_fit" for r in plan.rejected)

    text = export_task_yaml(request_70b, settings=Settings.from_env(), job_id="vml-70b", filename="t.yaml")
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    task = sky.Task.from_yaml(str(path))
    assert task.num_nodes == 2
    assert task.resources and all(r.accelerators == {"H100": 8} for r in task.resources)
    assert all(r.cloud is None or str(r.cloud).lower() == top.cloud for r in task.resources)
    assert task.run == RUN_SCRIPT  # no user string in the script: the job is JSON in an environment variable

    trainer = payload_config(task.envs)
    assert (trainer.strategy, trainer.method, trainer.model) == ("fsdp", "full", "meta-llama/Llama-3.1-70B")
    hp = trainer.hyperparameters
    assert (hp.batch_size, hp.gradient_accumulation_steps) == (top.micro_batch, top.grad_accum)
    assert hp.batch_size * hp.gradient_accumulation_steps * 8 * task.num_nodes == 16  # the effective batch

    job = decode_payload(task.envs[PAYLOAD_ENV])
    config = tmp_path / "config.json"
    for rank in range(task.num_nodes):
        env = {
            "VIBEML_REMOTE_DIR": str(tmp_path),
            "SKYPILOT_NUM_NODES": str(task.num_nodes),
            "SKYPILOT_NODE_RANK": str(rank),
            "SKYPILOT_NUM_GPUS_PER_NODE": "8",
            "SKYPILOT_NODE_IPS": IPS,
        }
        argv = SkyPilotSupervisor(job, env).trainer_argv(config)
        assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
        assert argv[-4:] == ["-m", "vibeml.trainer", "--config", str(config)]
        assert set(argv[3:-4]) == {
            "--nnodes=2",
            "--nproc_per_node=8",
            f"--node_rank={rank}",
            "--master_addr=10.0.0.1",
            f"--master_port={job.master_port}",
        }


def test_sky_export_cli_renders_the_layout_and_strategy_it_is_given(
    sky: ModuleType, tmp_path: Path, vibeml_env: Path
) -> None:
    import logging

    from typer.testing import CliRunner

    from vibeml.cli.main import app

    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hi"}\n', encoding="utf-8")
    out = tmp_path / "task.yaml"
    args = ["sky", "export", "-m", "meta-llama/Llama-3.1-70B", "-d", str(data), "--workflow", "full"]
    args += ["--gpu", "H100", "--gpu-count", "8", "--nodes", "2", "--strategy", "fsdp", "--effective-batch", "32"]
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        result = CliRunner().invoke(app, [*args, "-o", str(out), "--json"])
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
    assert result.exit_code == 0, result.output
    task = sky.Task.from_yaml(str(out))
    assert task.num_nodes == 2 and all(r.accelerators == {"H100": 8} for r in task.resources)
    trainer = payload_config(task.envs)
    assert trainer.strategy == "fsdp"
    hp = trainer.hyperparameters
    assert hp.batch_size * hp.gradient_accumulation_steps * 16 == 32
    bad = CliRunner().invoke(app, [*args[:-2], "--effective-batch", "20", "-o", str(out), "--json"])
    assert bad.exit_code != 0 and "does not split evenly over 16 processes" in bad.output
