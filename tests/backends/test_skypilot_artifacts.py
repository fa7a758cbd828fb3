"""SkyPilot brings the adapter back in every mode, and `vibeml sky export` YAML runs as is.

SkyPilot's request API is faked at the same boundary as ``test_skypilot_backend.py`` (its ``fake``
fixture, plus the function ``sky status NAME`` uses to write the cluster's SSH entry); ``sky.Task``,
``sky.Resources`` and ``sky.Storage`` are real. "rsync" here copies from a directory standing in for the
cluster's home, so the adapter files really land in the job's local output dir.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.backends.test_skypilot_backend import ON_DEMAND, SPOT, FakeSky, _backend, _program, ev, fake
from vibeml.backends.base import LaunchChoice
from vibeml.backends.skypilot import SkyPilotBackend
from vibeml.backends.skypilot.task import PAYLOAD_ENV, build_task_spec, export_task_yaml, payload_config
from vibeml.exceptions import BackendError
from vibeml.models import JobStatus, SkyPilotHandle, TrainingRequest
from vibeml.remote.payload import decode_payload
from vibeml.settings import Settings
from vibeml.trainer.events import DoneEvent, StepEvent

__all__ = ["fake"]  # the fixture, re-used

S = JobStatus
ADAPTER = {"adapter_config.json": '{"r": 16}', "adapter_model.safetensors": "weights"}


class Rsync:
    """A local-command runner whose rsync copies ``<cluster>:<dir>/`` from ``remote_home`` (the cluster's
    home) and logs each run into the fake's call list, so the order against ``sky.down`` is visible."""

    def __init__(self, fake: FakeSky, remote_home: Path) -> None:
        self.fake = fake
        self.remote_home = remote_home
        self.fail = False

    def __call__(self, argv: list[str]) -> None:
        self.fake.calls.append(("run", {"argv": argv}))
        if self.fail:
            raise BackendError("rsync failed (255): ssh: connect to host 10.0.0.7 port 22: Connection timed out")
        assert argv[0] == "rsync", argv
        host, _, remote = argv[-2].partition(":")
        assert host in self.fake.clusters, f"rsync to {host}, which is not up"
        assert ("ssh_config", {"clusters": [host]}) in self.fake.calls  # `ssh <cluster>` works only after this
        shutil.copytree(self.remote_home / remote.strip("/"), argv[-1].rstrip("/"), dirs_exist_ok=True)


def _launch(
    fake: FakeSky, tmp_path: Path, choice: LaunchChoice, **opts: Any
) -> tuple[SkyPilotBackend, SkyPilotHandle, Rsync]:
    remote_home = tmp_path / "cluster-home"
    runner = Rsync(fake, remote_home)
    backend = _backend(runner, **opts)  # type: ignore[arg-type]
    job_dir = tmp_path / "jobs" / "vml-sky1"
    handle = backend.launch(_program(job_dir), "vml-sky1", job_dir, choice)
    out = remote_home / handle.data.remote_output_dir.lstrip("/")  # never the real /vibeml-store
    out.mkdir(parents=True)
    for name, text in ADAPTER.items():
        (out / name).write_text(text)
    return backend, handle, runner


def _finish(fake: FakeSky, sky: ModuleType, handle: SkyPilotHandle) -> None:
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.up(handle.data.cluster_name, sky.JobStatus.SUCCEEDED)
    fake.logs = [
        ev(StepEvent(step=10, max_steps=10, loss=1.1)),
        ev(DoneEvent(output_dir="output", step=10, final_loss=1.1)),
    ]


def _local_adapter(handle: SkyPilotHandle) -> dict[str, str]:
    root = Path(handle.data.local_output_dir)
    return {p.name: p.read_text() for p in root.iterdir()} if root.is_dir() else {}


# ------------------------------------------------------------------------------------------ on-demand


def test_on_demand_downloads_the_adapter_before_teardown(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, ON_DEMAND)
    (call,) = [kw for n, kw in fake.calls if n == "launch"]
    (res,) = call["task"].resources
    # The safety net: autodown after an idle window that waits for jobs and SSH sessions (the rsync).
    assert res.autostop_config.down and res.autostop_config.idle_minutes >= 2
    assert res.autostop_config.wait_for.value == "jobs_and_ssh"
    _finish(fake, sky, handle)
    p = backend.status(handle)
    assert p.status is S.COMPLETED and p.error is None
    assert _local_adapter(handle) == ADAPTER and p.output_dir == handle.data.local_output_dir
    names = fake.names()
    assert names.index("ssh_config") < names.index("run") < names.index("down")  # copied, then torn down
    (down,) = [kw for n, kw in fake.calls if n == "down"]
    assert down["cluster_name"] == handle.data.cluster_name
    assert handle.data.cluster_name not in fake.clusters


def test_failed_download_keeps_the_cluster_says_where_and_retries(
    fake: FakeSky, sky: ModuleType, tmp_path: Path
) -> None:
    backend, handle, runner = _launch(fake, tmp_path, ON_DEMAND)
    name = handle.data.cluster_name
    _finish(fake, sky, handle)
    runner.fail = True
    p = backend.status(handle)
    assert not p.status.is_terminal  # still open, so every `vibeml status` polls again
    assert "down" not in fake.names() and name in fake.clusters
    error = p.error or ""
    assert "Connection timed out" in error and "retries" in error
    assert f"sky status {name} && rsync -a --partial {name}:vibeml-job/output/ " in error  # where + how
    assert _local_adapter(handle) == {}

    tries = fake.names().count("run")
    p = backend.status(handle)  # the client's next poll tries again; still failing, still kept
    assert fake.names().count("run") == tries + 1 and not p.status.is_terminal and name in fake.clusters

    runner.fail = False
    p = backend.status(handle)
    assert p.status is S.COMPLETED and p.error is None and _local_adapter(handle) == ADAPTER
    names = fake.names()
    assert len(names) - 1 - names[::-1].index("run") < names.index("down") and name not in fake.clusters


def test_fetch_artifacts_after_a_failed_download_tears_down(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, runner = _launch(fake, tmp_path, ON_DEMAND)
    _finish(fake, sky, handle)
    runner.fail = True
    assert not backend.status(handle).status.is_terminal
    runner.fail = False
    assert backend.fetch_artifacts(handle) == Path(handle.data.local_output_dir)
    assert _local_adapter(handle) == ADAPTER and "down" in fake.names()
    assert backend.status(handle).status is S.COMPLETED


def test_an_empty_download_is_not_success(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, ON_DEMAND)
    shutil.rmtree(tmp_path / "cluster-home" / handle.data.remote_output_dir)
    (tmp_path / "cluster-home" / handle.data.remote_output_dir).mkdir()
    _finish(fake, sky, handle)
    p = backend.status(handle)
    assert not p.status.is_terminal and "no files" in (p.error or "") and "down" not in fake.names()


def test_autodowned_before_the_client_returned_is_reported(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, ON_DEMAND)
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.logs = [ev(DoneEvent(output_dir="output", step=10, final_loss=1.1))]
    fake.up(handle.data.cluster_name, sky.JobStatus.RUNNING)
    assert backend.status(handle).status is S.RUNNING
    fake.clusters.clear()  # the job ended and SkyPilot's autodown removed the cluster meanwhile
    p = backend.status(handle)
    assert p.status is S.FAILED
    assert "torn down" in (p.error or "") and "VIBEML_SKY_BUCKET" in (p.error or "")
    assert "run" not in fake.names()  # no rsync to a cluster that is gone


# ------------------------------------------------------------------------------------------ managed spot


def test_managed_spot_yaml_mounts_a_bucket_and_resumes_from_it(sky: ModuleType) -> None:
    from vibeml.backends.skypilot.task import SkyOptions

    program = _program(Path("/tmp/unused-job"))
    spec = build_task_spec(program, "vml-sky1", SPOT, SkyOptions(install="vibeml[train]==0.1.0"))
    config = yaml.safe_load(spec.to_yaml(sky))
    mount = config["file_mounts"]["/vibeml-store"]
    assert mount["name"] == "vibeml-vml-sky1" and mount["mode"] == "MOUNT_CACHED" and mount["persistent"] is True
    trainer = payload_config(config["envs"])
    assert trainer.resume is True
    assert trainer.checkpoint_dir == "/vibeml-store/vml-sky1/checkpoints"
    assert trainer.output_dir == "/vibeml-store/vml-sky1/output"
    assert decode_payload(config["envs"][PAYLOAD_ENV]).state_dir == "/vibeml-store/vml-sky1/state"  # the clock too
    back = sky.Task.from_yaml_str(spec.to_yaml(sky))
    assert back.storage_mounts["/vibeml-store"].mode is sky.StorageMode.MOUNT_CACHED


def test_managed_download_failure_says_where_the_adapter_is(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, runner = _launch(fake, tmp_path, SPOT, bucket="s3://my-bucket/vibeml")
    runner.fail = True
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.managed_job(handle.data.cluster_name, sky.ManagedJobStatus.SUCCEEDED, job_duration=100.0)
    fake.logs = [ev(DoneEvent(output_dir="output", step=10, final_loss=1.0))]
    p = backend.status(handle)
    assert p.status is S.COMPLETED and p.output_dir is None  # the bucket keeps it: the job may end
    url = "s3://my-bucket/vibeml/vml-sky1/output"
    assert f"the adapter is at {url}" in (p.error or "")
    assert f"aws s3 sync --no-follow-symlinks {url} {handle.data.local_output_dir}" in (p.error or "")
    assert "down" not in fake.names()


# ------------------------------------------------------------------------------------------ export


NASTY_MODEL = 'org/it\'s "quoted" {{7*7}} ${HOME}'


def _export(tmp_path: Path, choice: LaunchChoice, dataset: str) -> tuple[Path, str]:
    request = TrainingRequest(model=NASTY_MODEL, dataset=dataset, max_steps=20)
    text = export_task_yaml(request, settings=Settings.from_env(), choice=choice, job_id="vml-exp1", filename="t.yaml")
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path, text


@pytest.mark.parametrize("choice", [ON_DEMAND, SPOT], ids=["on-demand", "spot"])
def test_export_yaml_loads_with_skypilot_and_runs_as_is(
    sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, choice: LaunchChoice
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_supersecretvalue123")
    data = tmp_path / "my data {{7*7}}.jsonl"
    data.write_text('{"text": "hi"}\n')
    path, text = _export(tmp_path, choice, str(data))
    assert "hf_supersecretvalue123" not in text  # secrets go in with `--secret HF_TOKEN`, never inlined
    task = sky.Task.from_yaml(str(path))
    trainer = payload_config(task.envs)
    assert trainer.model == NASTY_MODEL  # quotes, {{7*7}} and ${HOME} stay data
    for remote, source in (task.file_mounts or {}).items():
        assert Path(source).is_absolute() and Path(source).exists(), (remote, source)
    assert str(data.resolve()) in (task.file_mounts or {}).values()
    head = [line for line in text.splitlines() if line.startswith("#")]
    run = "sky jobs launch -n vibeml-vml-exp1 t.yaml" if choice.use_spot else "sky launch -c vibeml-vml-exp1 t.yaml"
    assert any(run in line for line in head)
    if not choice.use_spot:
        assert any("rsync -a --partial vibeml-vml-exp1:vibeml-job/output/ output/" in line for line in head)
        assert task.resources and all(r.autostop_config.down for r in task.resources)
    else:
        assert "/vibeml-store" in task.storage_mounts


def test_export_header_never_holds_user_strings(sky: ModuleType, tmp_path: Path) -> None:
    request = TrainingRequest(model=NASTY_MODEL, dataset="d/x", max_steps=5)
    text = export_task_yaml(
        request, settings=Settings.from_env(), choice=ON_DEMAND, job_id="vml-exp2", filename="x\nrun: rm -rf ~"
    )
    head = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert "rm -rf" not in text and "sky launch -c vibeml-vml-exp2 task.yaml" in head
    assert "7*7" not in head and sky.Task.from_yaml_str(text).run == build_task_spec.__globals__["RUN_SCRIPT"]


def test_newlines_in_user_strings_survive_a_yaml_file(sky: ModuleType, tmp_path: Path) -> None:
    from vibeml.backends.skypilot.task import SkyOptions

    program = _program(tmp_path / "job")
    nasty = "line one\nline: two {{7*7}}\n- three"
    program = program.model_copy(update={"config": program.config.model_copy(update={"model": nasty})})
    spec = build_task_spec(program, "vml-nl", ON_DEMAND, SkyOptions(install="vibeml[train]==0.1.0"))
    path = tmp_path / "task.yaml"
    path.write_text(spec.to_yaml(sky))
    back = sky.Task.from_yaml(str(path))
    assert payload_config(back.envs).model == nasty


def test_the_ssh_entry_helper_exists_in_the_pinned_skypilot(sky: ModuleType) -> None:
    import inspect

    from sky.client.cli import command

    params = inspect.signature(command._get_cluster_records_and_set_ssh_config).parameters
    assert list(params)[:1] == ["clusters"]


def test_a_missing_local_command_is_a_backend_error(tmp_path: Path) -> None:
    from vibeml.backends.skypilot.status import run_command

    with pytest.raises(BackendError, match="cannot run") as info:
        run_command([str(tmp_path / "no-such-rsync"), "-a", "x:y/", "z/"])
    assert "Install" in (info.value.recovery_suggestion or "")


def test_on_demand_with_a_bucket_may_tear_down_when_the_copy_fails(
    fake: FakeSky, sky: ModuleType, tmp_path: Path
) -> None:
    backend, handle, runner = _launch(fake, tmp_path, ON_DEMAND, bucket="gs://my-bucket/v")
    _finish(fake, sky, handle)
    runner.fail = True
    p = backend.status(handle)
    url = "gs://my-bucket/v/vml-sky1/output"
    assert p.status is S.COMPLETED and f"the adapter is at {url}" in (p.error or "")
    assert f"gsutil -m rsync -r {url} " in (p.error or "")
    (down,) = [kw for n, kw in fake.calls if n == "down"]  # the adapter is safe on the bucket
    assert down["graceful"] is True  # MOUNT_CACHED uploads finish before the teardown
