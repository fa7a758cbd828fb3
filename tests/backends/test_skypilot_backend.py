"""The SkyPilot backend against a fake request boundary.

``sky.Task``/``sky.Resources``/``sky.Storage`` and SkyPilot's enums and exceptions are real; only the
request API (``sky.launch``, ``sky.jobs.launch``, ``sky.get``, ``sky.stream_and_get``, ``sky.status``,
``sky.job_status``, ``sky.jobs.queue``, ``sky.down``, ``sky.cancel``, ``sky.jobs.cancel``, the tail_logs,
``sky.cost_report``, ``sky.api_status``, ``sky.storage_ls``) is replaced, and an autouse guard fails any
test that would start or reach an API server.
"""

from __future__ import annotations

import importlib
import io
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vibeml.backends.base import LaunchChoice
from vibeml.backends.skypilot import SkyPilotBackend
from vibeml.backends.skypilot.status import (
    CLUSTER_JOB_STATUS,
    MANAGED_JOB_STATUS,
    REQUEST_STATUS,
    bucket_download_argv,
    reconcile,
)
from vibeml.backends.skypilot.task import SkyOptions, payload_config
from vibeml.exceptions import BackendError, ResourceError
from vibeml.models import JobStatus, SkyPilotHandle, TrainingRequest
from vibeml.settings import Settings
from vibeml.trainer.events import (
    ECHO_PREFIX,
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    StartEvent,
    StepEvent,
    StoppedEvent,
    TrainerEvent,
    dump_event,
    read_events,
)
from vibeml.workflows.registry import TrainingProgram, render_program

S = JobStatus


def ev(event: TrainerEvent) -> str:
    return ECHO_PREFIX + dump_event(event)


def start(max_steps: int, resumed_from: str | None = None) -> StartEvent:
    return StartEvent(
        model="m", dataset="d", method="lora", device="cuda", max_steps=max_steps, resumed_from=resumed_from
    )


class FakeSky:
    """SkyPilot's request boundary, in memory. Every call returns a request id; ``sky.get`` resolves it."""

    def __init__(self, sky: ModuleType) -> None:
        self.sky = sky
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.results: dict[str, Callable[[], Any]] = {}
        self.request_status: dict[str, str] = {}
        self.launch_error: Exception | None = None
        self.clusters: dict[str, dict[str, Any]] = {}
        self.cluster_job: Any = None
        self.managed: list[dict[str, Any]] = []
        self.logs: list[str] = []
        self.launch_log: list[str] = ["Launching...", "Provisioned."]
        self.costs: list[dict[str, Any]] = []
        self.storages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def _req(self, call: str, result: Callable[[], Any], /, **kwargs: Any) -> str:
        self.calls.append((call, kwargs))
        rid = f"req-{call}-{next(self._ids)}"
        self.results[rid] = result
        return rid

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    # -- the boundary -----------------------------------------------------------------------
    def get(self, rid: str) -> Any:
        self.calls.append(("get", {"rid": rid}))
        return self.results[rid]()

    def stream_and_get(self, rid: str, output_stream: io.TextIOBase | None = None, **kwargs: Any) -> Any:
        self.calls.append(("stream_and_get", {"rid": rid}))
        if output_stream is not None and rid.startswith(("req-launch", "req-jobs.launch")):
            output_stream.write("\n".join(self.launch_log) + "\n")
        return self.results[rid]()

    def api_status(self, request_ids: list[str]) -> list[dict[str, Any]]:
        return [{"request_id": r, "status": self.request_status.get(r, "RUNNING"), "error": ""} for r in request_ids]

    def api_cancel(self, rid: str, silent: bool = False) -> str:
        self.request_status[rid] = "CANCELLED"
        return self._req("api_cancel", lambda: [rid], target=rid)

    def _launch_result(self) -> Any:
        if self.launch_error is not None:
            raise self.launch_error
        return (1, None)

    def launch(self, task: Any, cluster_name: str, **kwargs: Any) -> str:
        assert isinstance(task, self.sky.Task)
        return self._req("launch", self._launch_result, task=task, cluster_name=cluster_name, **kwargs)

    def jobs_launch(self, task: Any, name: str, **kwargs: Any) -> str:
        assert isinstance(task, self.sky.Task)
        return self._req("jobs.launch", self._launch_result, task=task, name=name, **kwargs)

    def status(self, cluster_names: list[str], **kwargs: Any) -> str:
        return self._req("status", lambda: [c for n, c in self.clusters.items() if n in cluster_names])

    def job_status(self, cluster_name: str, job_ids: Any = None) -> str:
        def result() -> Any:
            if cluster_name not in self.clusters:
                raise self.sky.exceptions.ClusterDoesNotExist(cluster_name)
            return {1: self.cluster_job}

        return self._req("job_status", result)

    def queue(self, refresh: bool, skip_finished: bool = False, job_ids: Any = None, **kwargs: Any) -> str:
        return self._req("jobs.queue", lambda: list(self.managed), job_ids=job_ids)

    def _gone_unless(self, name: str, then: Callable[[], Any]) -> Callable[[], Any]:
        def result() -> Any:
            if name not in self.clusters:
                raise self.sky.exceptions.ClusterDoesNotExist(f"Cluster {name} does not exist.")
            return then()

        return result

    def down(self, cluster_name: str, **kwargs: Any) -> str:
        return self._req(
            "down",
            self._gone_unless(cluster_name, lambda: self.clusters.pop(cluster_name) and None),
            cluster_name=cluster_name,
            **kwargs,
        )

    def cancel(self, cluster_name: str, **kwargs: Any) -> str:
        def then() -> None:
            self.cluster_job = self.sky.JobStatus.CANCELLED

        return self._req("cancel", self._gone_unless(cluster_name, then), cluster_name=cluster_name, **kwargs)

    def jobs_cancel(self, **kwargs: Any) -> str:
        def result() -> str:
            live = [r for r in self.managed if not r["status"].is_terminal()]
            for r in live:
                r["status"] = self.sky.ManagedJobStatus.CANCELLED
            return "Cancelled." if live else "No job to cancel."

        return self._req("jobs.cancel", result, **kwargs)

    def _chunks(self) -> Iterator[str | None]:
        text = "".join(line + "\n" for line in self.logs)
        yield from (text[i : i + 7] for i in range(0, len(text), 7))  # lines arrive split across chunks
        yield None

    def tail_logs(self, cluster_name: str, job_id: Any, follow: bool, tail: int = 0, **kwargs: Any) -> Any:
        self.calls.append(("tail_logs", {"follow": follow, "tail": tail}))
        if cluster_name not in self.clusters:
            raise self.sky.exceptions.ClusterDoesNotExist(cluster_name)
        return self._chunks()

    def jobs_tail_logs(self, **kwargs: Any) -> Any:
        self.calls.append(("jobs.tail_logs", kwargs))
        return self._chunks()

    def cost_report(self, days: int | None = None) -> str:
        return self._req("cost_report", lambda: list(self.costs))

    def storage_ls(self) -> str:
        return self._req("storage_ls", lambda: list(self.storages))

    def ssh_config(self, clusters: list[str] | None, **kwargs: Any) -> list[dict[str, Any]]:
        """``sky.client.cli.command._get_cluster_records_and_set_ssh_config`` (what ``sky status NAME`` runs)."""
        self.calls.append(("ssh_config", {"clusters": clusters}))
        if not clusters or any(c not in self.clusters for c in clusters):
            raise self.sky.exceptions.ClusterDoesNotExist(str(clusters))
        return [self.clusters[c] for c in clusters]

    # -- helpers for tests -------------------------------------------------------------------
    def up(self, name: str, job: Any) -> None:
        self.clusters[name] = {"name": name, "status": self.sky.ClusterStatus.UP}
        self.cluster_job = job

    def managed_job(self, name: str, status: Any, **fields: Any) -> None:
        if not self.managed:
            self.managed.append(
                {"job_id": 7, "job_name": name, "recovery_count": 0, "failure_reason": None, "job_duration": 0.0}
            )
        self.managed[0].update(status=status, **fields)


@pytest.fixture
def fake(sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSky]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(home))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the SkyPilot API server was contacted")

    server_common = importlib.import_module("sky.server.common")
    monkeypatch.setattr(server_common, "check_server_healthy_or_start_fn", refuse)
    monkeypatch.setattr(server_common, "make_authenticated_request", refuse)
    f = FakeSky(sky)
    for name in (
        "get",
        "stream_and_get",
        "api_status",
        "api_cancel",
        "launch",
        "status",
        "job_status",
        "down",
        "cancel",
        "tail_logs",
        "cost_report",
        "storage_ls",
    ):
        monkeypatch.setattr(sky, name, getattr(f, name))
    command = importlib.import_module("sky.client.cli.command")
    monkeypatch.setattr(command, "_get_cluster_records_and_set_ssh_config", f.ssh_config)
    for name, attr in (
        ("launch", "jobs_launch"),
        ("queue", "queue"),
        ("cancel", "jobs_cancel"),
        ("tail_logs", "jobs_tail_logs"),
    ):
        monkeypatch.setattr(sky.jobs, name, getattr(f, attr))
    yield f
    assert not (home / ".sky" / "api_server").exists()


class Runner:
    """Records local commands (rsync, bucket sync) instead of running them."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.fail = False

    def __call__(self, argv: list[str]) -> None:
        self.commands.append(argv)
        if self.fail:
            raise BackendError("rsync failed")
        dest = Path(argv[-1])  # rsync / bucket sync: the copy lands in the last argument
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "adapter_config.json").write_text("{}")


def _program(job_dir: Path) -> TrainingProgram:
    request = TrainingRequest(model="Qwen/Qwen2.5-0.5B", dataset="tatsu-lab/alpaca", max_steps=30)
    return render_program(
        request,
        "vml-sky1",
        output_dir=str(job_dir / "output"),
        checkpoint_dir=str(job_dir / "checkpoints"),
        events_path=str(job_dir / "events.jsonl"),
    )


def _backend(runner: Runner, **opts: Any) -> SkyPilotBackend:
    options = SkyOptions(install="vibeml[train]==0.1.0", **opts)
    return SkyPilotBackend(Settings.from_env(), options=options, runner=runner, poll_seconds=0.01)


ON_DEMAND = LaunchChoice(gpu_type="A10G", cloud="aws", region="us-east-1", hourly_rate=1.01, max_cost=5.0)
SPOT = LaunchChoice(gpu_type="A10G", cloud="aws", region="us-east-1", use_spot=True, hourly_rate=0.45, max_cost=5.0)


def _launch(
    fake: FakeSky, tmp_path: Path, choice: LaunchChoice, **opts: Any
) -> tuple[SkyPilotBackend, SkyPilotHandle, Runner]:
    runner = Runner()
    backend = _backend(runner, **opts)
    job_dir = tmp_path / "jobs" / "vml-sky1"
    handle = backend.launch(_program(job_dir), "vml-sky1", job_dir, choice)
    return backend, handle, runner


# ------------------------------------------------------------------------------------------ tables


def test_every_skypilot_status_is_mapped(sky: ModuleType) -> None:
    assert {s.value for s in sky.ManagedJobStatus} <= set(MANAGED_JOB_STATUS)
    assert {s.value for s in sky.JobStatus} <= set(CLUSTER_JOB_STATUS)
    assert set(REQUEST_STATUS) >= {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"}


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("PENDING", S.PROVISIONING),
        ("STARTING", S.PROVISIONING),
        ("RUNNING", S.RUNNING),
        ("RECOVERING", S.PROVISIONING),
        ("CANCELLING", S.STOPPING),
        ("CANCELLED", S.STOPPED),
        ("SUCCEEDED", S.COMPLETED),
        ("FAILED", S.FAILED),
        ("FAILED_SETUP", S.FAILED),
        ("FAILED_NO_RESOURCE", S.FAILED),
        ("FAILED_CONTROLLER", S.FAILED),
        ("FAILED_PRECHECKS", S.FAILED),
    ],
)
def test_managed_status_table(raw: str, want: JobStatus) -> None:
    assert MANAGED_JOB_STATUS[raw] is want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("INIT", S.PROVISIONING),
        ("PENDING", S.PROVISIONING),
        ("SETTING_UP", S.PROVISIONING),
        ("RUNNING", S.RUNNING),
        ("SUCCEEDED", S.COMPLETED),
        ("FAILED", S.FAILED),
        ("FAILED_DRIVER", S.FAILED),
        ("FAILED_SETUP", S.FAILED),
        ("CANCELLED", S.STOPPED),
    ],
)
def test_cluster_job_status_table(raw: str, want: JobStatus) -> None:
    assert CLUSTER_JOB_STATUS[raw] is want


STEP = StepEvent(step=3, max_steps=10, loss=2.0)
DONE = DoneEvent(step=10, final_loss=1.0, output_dir="x")
STOPPED = StoppedEvent(step=5, reason="max_runtime")
ERROR = ErrorEvent(message="CUDA out of memory")


@pytest.mark.parametrize(
    ("sky_status", "events", "want", "error"),
    [
        (S.RUNNING, [STEP], S.RUNNING, None),
        (S.PROVISIONING, [STEP], S.PROVISIONING, None),  # recovering after a preemption
        (S.COMPLETED, [STEP, DONE], S.COMPLETED, None),
        (S.COMPLETED, [STEP, STOPPED], S.STOPPED, "stopped: max_runtime"),  # budget stop exits 0
        (S.COMPLETED, [], S.COMPLETED, None),
        (S.FAILED, [STEP, ERROR], S.FAILED, "CUDA out of memory"),
        (S.FAILED, [STEP], S.FAILED, "no capacity"),
        (S.FAILED, [STEP, STOPPED], S.STOPPED, "stopped: max_runtime"),  # killed after the TERM grace
        (S.STOPPED, [STEP], S.STOPPED, "cancelled"),
        (None, [], S.PROVISIONING, None),
    ],
)
def test_reconcile(
    sky_status: JobStatus | None, events: list[TrainerEvent], want: JobStatus, error: str | None
) -> None:
    p = reconcile(sky_status, events, "no capacity" if sky_status is S.FAILED else None)
    assert p.status is want
    assert p.error == error


# ------------------------------------------------------------------------------------------ clusters


def test_on_demand_cluster_lifecycle(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, runner = _launch(fake, tmp_path, ON_DEMAND)
    name = handle.data.cluster_name
    (call,) = [kw for n, kw in fake.calls if n == "launch"]
    assert call["cluster_name"] == name and call["down"] is True and call["idle_minutes_to_autostop"] >= 2
    (res,) = call["task"].resources
    assert res.accelerators == {"A10G": 1} and res.max_hourly_cost == pytest.approx(1.111)
    assert handle.data.mode == "cluster" and (Path(handle.job_dir) / "sky_task.yaml").exists()
    assert "get" not in fake.names()  # launch returns at once: nothing waits on the request

    assert backend.status(handle).status is S.PROVISIONING  # request still running, no cluster yet
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.up(name, sky.JobStatus.RUNNING)
    fake.logs = ["setup done", ev(start(10)), ev(StepEvent(step=4, max_steps=10, loss=2.5))]
    fake.costs = [{"name": name, "total_cost": 0.3}, {"name": "someone-else", "total_cost": 9.0}]
    p = backend.status(handle)
    assert (p.status, p.step, p.loss, p.cost_so_far) == (S.RUNNING, 4, 2.5, 0.3)
    mirrored = list(read_events(handle.data.events_path))  # the local copy reads as the same events
    assert [type(e) for e in mirrored] == [StartEvent, StepEvent] and mirrored[1].step == 4

    fake.cluster_job = sky.JobStatus.SUCCEEDED
    fake.logs += [
        ev(StepEvent(step=10, max_steps=10, loss=1.1)),
        ev(DoneEvent(output_dir="output", step=10, final_loss=1.1)),
    ]
    fake.costs = [{"name": name, "total_cost": 0.52}]
    p = backend.status(handle)
    assert p.status is S.COMPLETED and p.cost_so_far == 0.52
    assert p.output_dir == handle.data.local_output_dir
    assert runner.commands == [
        ["rsync", "-a", "--partial", f"{name}:vibeml-job/output/", f"{handle.data.local_output_dir}/"]
    ]
    names = fake.names()
    last_cost = len(names) - 1 - names[::-1].index("cost_report")
    assert last_cost > names.index("down")  # copied back, torn down, then costed
    assert name not in fake.clusters
    # Terminal status is cached: no further SkyPilot calls, and logs come from the mirror.
    before = len(fake.calls)
    assert backend.status(handle).status is S.COMPLETED and len(fake.calls) == before
    assert list(backend.logs(handle, tail=2))[-1].startswith(ECHO_PREFIX)


def test_stop_is_idempotent(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, runner = _launch(fake, tmp_path, ON_DEMAND)
    name = handle.data.cluster_name
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.up(name, sky.JobStatus.RUNNING)
    backend.stop(handle)
    assert {"cancel", "down"} <= set(fake.names()) and name not in fake.clusters
    assert runner.commands and runner.commands[0][0] == "rsync"  # the output so far, before teardown
    backend.stop(handle)  # gone: not an error
    fresh = _backend(Runner())
    fresh.stop(handle)  # another process, same handle: still fine
    p = backend.status(handle)
    assert p.status is S.STOPPED and p.error == "stopped by request"


def test_stop_while_provisioning_cancels_the_launch_request(fake: FakeSky, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, ON_DEMAND)
    backend.stop(handle)
    assert ("api_cancel", {"target": handle.data.request_id}) in fake.calls
    assert backend.status(handle).status is S.STOPPED


def test_failed_launch_is_reported(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, ON_DEMAND)
    fake.request_status[handle.data.request_id] = "FAILED"
    fake.launch_error = sky.exceptions.ResourcesUnavailableError("No launchable resource found")
    p = backend.status(handle)
    assert p.status is S.FAILED and "No launchable resource" in (p.error or "")


def test_translated_errors(fake: FakeSky, sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise sky.exceptions.ResourcesUnavailableError("no H100 anywhere")

    monkeypatch.setattr(sky, "launch", boom)
    with pytest.raises(ResourceError, match="no H100 anywhere"):
        _launch(fake, tmp_path, ON_DEMAND)


def test_cluster_gone_mid_run_is_a_failure(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, ON_DEMAND)
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.up(handle.data.cluster_name, sky.JobStatus.RUNNING)
    fake.logs = [ev(StepEvent(step=2, max_steps=10, loss=3.0))]
    assert backend.status(handle).status is S.RUNNING
    fake.clusters.clear()
    p = backend.status(handle)
    assert p.status is S.FAILED and "went away" in (p.error or "") and p.step == 2


def test_artifact_copy_failure_keeps_the_cluster_for_a_retry(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, runner = _launch(fake, tmp_path, ON_DEMAND)
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.up(handle.data.cluster_name, sky.JobStatus.SUCCEEDED)
    fake.logs = [ev(DoneEvent(output_dir="output", step=10, final_loss=1.0))]
    runner.fail = True
    p = backend.status(handle)
    assert p.status is S.STOPPING and "rsync" in (p.error or "")  # open: the next status retries
    assert "down" not in fake.names()  # autodown is the backstop
    runner.fail = False
    assert backend.fetch_artifacts(handle) == Path(handle.data.local_output_dir)
    assert "down" in fake.names()


def test_logs(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, ON_DEMAND)
    name = handle.data.cluster_name
    fake.up(name, sky.JobStatus.RUNNING)
    fake.logs = [f"line {i}" for i in range(5)]
    assert list(backend.logs(handle, tail=2)) == ["line 3", "line 4"]
    assert ("tail_logs", {"follow": False, "tail": 2}) in fake.calls
    # follow: the launch request's provisioning log, then the job's log, until the job ends
    fake.clusters.clear()
    followed = backend.logs(handle, tail=None, follow=True)
    assert next(followed) == "Launching..."
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.up(name, sky.JobStatus.RUNNING)
    assert list(itertools.islice(followed, 6)) == ["Provisioned.", *(f"line {i}" for i in range(5))]
    fake.cluster_job = sky.JobStatus.SUCCEEDED
    assert list(followed) == []  # ended: nothing replayed
    assert [kw["follow"] for n, kw in fake.calls if n == "tail_logs"].count(True) == 1


# ------------------------------------------------------------------------------------------ managed spot


def test_spot_runs_as_a_managed_job_and_resumes_after_preemption(
    fake: FakeSky, sky: ModuleType, tmp_path: Path
) -> None:
    backend, handle, runner = _launch(fake, tmp_path, SPOT)
    name = handle.data.cluster_name
    (call,) = [kw for n, kw in fake.calls if n == "jobs.launch"]
    task = call["task"]
    assert call["name"] == name and "launch" not in fake.names()
    (res,) = task.resources
    assert res.use_spot and (res.autostop_config is None or not res.autostop_config.enabled)
    config = payload_config(task.envs)
    assert config.resume is True
    assert config.checkpoint_dir == "/vibeml-store/vml-sky1/checkpoints"
    assert task.storage_mounts["/vibeml-store"].name == name  # a bucket that outlives the machine

    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.managed_job(name, sky.ManagedJobStatus.RUNNING, job_duration=600.0)
    fake.logs = [
        ev(start(30)),
        ev(CheckpointEvent(step=10, path=config.checkpoint_dir + "/checkpoint-10")),
        ev(StepEvent(step=12, max_steps=30, loss=2.0)),
    ]
    p = backend.status(handle)
    assert (p.status, p.step, p.cost_so_far) == (S.RUNNING, 12, round(600 / 3600 * 0.45, 4))

    # Preempted: SkyPilot relaunches elsewhere. The old attempt's log is gone with its machine.
    fake.managed_job(name, sky.ManagedJobStatus.RECOVERING, recovery_count=1)
    fake.logs = []
    p = backend.status(handle)
    assert p.status is S.PROVISIONING and p.step == 12  # progress survives in the mirror
    assert p.last_checkpoint == config.checkpoint_dir + "/checkpoint-10"

    fake.managed_job(name, sky.ManagedJobStatus.RUNNING, job_duration=900.0)
    fake.logs = [
        ev(start(30, resumed_from=config.checkpoint_dir + "/checkpoint-10")),
        ev(StepEvent(step=20, max_steps=30, loss=1.5)),
    ]
    p = backend.status(handle)
    assert (p.status, p.step, p.loss) == (S.RUNNING, 20, 1.5)
    # Same task, same checkpoint dir: the recovered run resumes from the bucket.
    assert payload_config(task.envs).checkpoint_dir == config.checkpoint_dir
    assert sorted(p.name for p in (Path(handle.job_dir) / "sky_logs").iterdir()) == [
        "attempt-000.log",
        "attempt-001.log",
    ]

    fake.managed_job(name, sky.ManagedJobStatus.SUCCEEDED, job_duration=1200.0)
    fake.logs.append(ev(DoneEvent(output_dir="output", step=30, final_loss=1.2)))
    fake.storages = [{"name": name, "store": [sky.StoreType.S3]}]
    p = backend.status(handle)
    assert p.status is S.COMPLETED and p.cost_so_far == round(1200 / 3600 * 0.45, 4)
    assert runner.commands == [
        ["aws", "s3", "sync", "--no-follow-symlinks", f"s3://{name}/vml-sky1/output", handle.data.local_output_dir]
    ]
    assert "down" not in fake.names()  # the jobs controller tears managed clusters down itself


def test_managed_stop_is_idempotent(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, SPOT, bucket="gs://my-bucket/vibeml")
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.managed_job(handle.data.cluster_name, sky.ManagedJobStatus.RUNNING)
    assert backend.status(handle).status is S.RUNNING
    backend.stop(handle, grace_seconds=45)
    cancel = [kw for n, kw in fake.calls if n == "jobs.cancel"]
    assert cancel[0] == {"graceful": True, "graceful_timeout": 45, "job_ids": [7]}
    backend.stop(handle)  # "No job to cancel." is not an error
    assert backend.status(handle).status is S.STOPPED


def test_bucket_downloads() -> None:
    assert bucket_download_argv("gs://b/x/output", Path("/tmp/a b")) == [
        "gsutil",
        "-m",
        "rsync",
        "-r",
        "gs://b/x/output",
        "/tmp/a b",
    ]
    with pytest.raises(BackendError, match="cannot download"):
        bucket_download_argv("cos://b/x", Path("/tmp/x"))


def test_budget_stop_reads_as_stopped(fake: FakeSky, sky: ModuleType, tmp_path: Path) -> None:
    backend, handle, _ = _launch(fake, tmp_path, SPOT, bucket="s3://b/v")
    fake.request_status[handle.data.request_id] = "SUCCEEDED"
    fake.managed_job(handle.data.cluster_name, sky.ManagedJobStatus.SUCCEEDED, job_duration=100.0)
    fake.logs = [ev(StepEvent(step=5, max_steps=30, loss=2.0)), ev(StoppedEvent(step=5, reason="max_runtime"))]
    p = backend.status(handle)
    assert p.status is S.STOPPED and p.error == "stopped: max_runtime"


# ------------------------------------------------------------------------------------------ wiring


def test_registered_and_declared(sky: ModuleType) -> None:
    from vibeml.backends.registry import default_registry

    backend = default_registry(Settings.from_env()).get("skypilot")
    assert isinstance(backend, SkyPilotBackend)
    caps = backend.capabilities
    assert caps.spot.supported and caps.multi_node.supported and caps.multi_gpu.supported and not caps.free
    backend.check(TrainingRequest(model="m/x", dataset="d/x", use_spot=True, gpu_count=4, gpu_type="H100"))


def test_live_quotes_come_from_skypilots_catalogue(
    sky: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path))
    backend = _backend(Runner())  # its settings (SKY_RUNTIME_DIR) are read once, by then
    assert backend.live_quotes(TrainingRequest(model="m/x", dataset="d/x")) is None
    vms = tmp_path / ".sky" / "catalogs" / "v8" / "runpod" / "vms.csv"
    vms.parent.mkdir(parents=True)
    vms.write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region\n"
        "1x_H100_SECURE,H100,1,16,64,H100,2.39,1.99,CA\n"
    )
    quotes = backend.live_quotes(TrainingRequest(model="m/x", dataset="d/x")) or []
    assert {(q.gpu, q.spot, q.usd_per_gpu_hour) for q in quotes} == {("H100", False, 2.39), ("H100", True, 1.99)}
