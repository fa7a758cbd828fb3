"""Whole Vast launches through the CLI against faithful fake machines: nothing of the path replaced.

``vibeml launch --demo --backend vast --max-cost 1 --follow --json`` runs in a subprocess, as a user runs it,
against the fake Vast.ai over real HTTP, whose instances are faithful machines
(:mod:`vibeml.testing.fake_vast_machine`: a container filesystem, a clean image with torch and no VibeML,
a real SSH endpoint). The CLI rents an offer, waits for SSH, uploads the model, the dataset, the wheel of
this VibeML and the pinned requirements with real OpenSSH ``scp``; the fixed onstart installs them on the
machine and runs the runner and the trainer; the CLI follows the progress from the event stream, brings the
adapter back over SSH and destroys the instance.

The machine is offline, so it installs from a package source of its own: **uv's cache of this host**, hard
linked into every container at ``/root/.cache/uv`` (uv's default cache there) with ``UV_OFFLINE=1``. Why
that source: it holds exactly the locked wheels this host's venv was built from (``tools/venv.sh`` installs
with uv), so no wheelhouse has to be built, and it holds no VibeML: VibeML is installed here editable, which
uv does not cache as a wheel, and a cached build of it could not satisfy the install anyway, which asks for
the shipped wheel's file by path. The cache is *copied in* (hard links) rather than bound read-only because
uv locks and writes temporary files in its cache even offline. The host's ``src/`` is never mounted into the
container, so the machine cannot import the host's VibeML: the tests check that the VibeML it ran is the
shipped wheel, file for file (its ``RECORD``).

The image stands in for a CUDA PyTorch image on a CPU host: its torch is a CPU build, so the CUDA runtime
wheels the lock pins for Linux GPUs (``nvidia-*``, ``cuda-*``, ``triton`` and ``liger-kernel``, which needs
triton) exist nowhere here; the image's uv configuration excludes them (``UV_EXCLUDE``), as a GPU image
would already have them. Everything else in ``inputs/requirements.txt`` is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import test_vast_backend_support as support
from tests.backends.test_vast_backend_support import SECRET_KEY, assert_nothing_billing
from tests.conftest import faithful_fake_vast
from vibeml.backends.vast.progress import RECORDS_FILE
from vibeml.testing.fake_vast import FakeVast
from vibeml.testing.fake_vast_machine import FakeMachineImage
from vibeml.trainer.events import ECHO_PREFIX

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_train,
    pytest.mark.skipif(shutil.which("ssh") is None or shutil.which("scp") is None, reason="needs the OpenSSH client"),
]

demo_home = support.demo_home

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def fake(offline_image: FakeMachineImage, tmp_path: Path) -> Iterator[FakeVast]:
    with faithful_fake_vast(offline_image, tmp_path, api_key=SECRET_KEY) as server:
        yield server


def _cli_env(fake: FakeVast, home: Path, tmp_path: Path) -> dict[str, str]:
    user_home = tmp_path / "user-home"
    user_home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIBEML_", "VAST_", "PYTHONPATH"))}
    env.update(
        PYTHONPATH=str(SRC),  # this checkout's VibeML: the one whose wheel is shipped
        HOME=str(user_home),  # no ~/.vast_api_key, no ~/.ssh of this host
        VIBEML_HOME=str(home),
        VIBEML_VAST_URL=fake.url,
        VAST_API_KEY=SECRET_KEY,
        VIBEML_VAST_POLL_INTERVAL="0.2",
        VIBEML_VAST_LOGS_POLL="0.05",
        VIBEML_VAST_TERM_GRACE="3",
        VIBEML_VAST_INPUT_WAIT="120",
        VIBEML_VAST_START_TIMEOUT="60",
        VIBEML_VAST_SPOT_WAIT="60",
        # The fake serves the onstart's own output as the container log; on a real machine the runner also
        # copies it to PID 1's stdout, which here would be this host's init.
        VIBEML_VAST_LOG_MIRROR="",
    )
    return env


def _launch(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "vibeml", "launch", "--demo", "--backend", "vast", "--max-cost", "1", "--json"]
    return subprocess.Popen(
        [*argv, "--follow", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the CLI did not finish in {timeout}s\n{out[-3000:]}\n{err[-3000:]}") from None
    docs, decoder, i = [], json.JSONDecoder(), out.find("{")
    while i >= 0:  # a JSON document per progress change, then the final record
        doc, end = decoder.raw_decode(out, i)
        docs.append(doc)
        i = out.find("{", end)
    assert proc.returncode == 0 and docs, (proc.returncode, out[-3000:], err[-3000:])
    return docs[-1], docs[:-1]


def _events(job_dir: Path) -> list[dict[str, Any]]:
    """The trainer's events as the client recorded them from the instance log."""
    out = []
    for line in (job_dir / RECORDS_FILE).read_text(encoding="utf-8").splitlines():
        idx = line.find(ECHO_PREFIX)
        if idx >= 0:
            out.append(json.loads(line[idx + len(ECHO_PREFIX) :]))
    return out


def _assert_shipped_wheel_installed(fake: FakeVast, iid: int, home: Path, venv: Path) -> None:
    """The machine's VibeML is the wheel the client built and uploaded, file for file."""
    wheels = list((home / "cache" / "wheels").glob("*/vibeml-*.whl"))
    assert len(wheels) == 1, wheels
    root = fake.workdir(iid)
    assert (root / "workspace" / "vibeml" / "inputs" / wheels[0].name).read_bytes() == wheels[0].read_bytes()
    with zipfile.ZipFile(wheels[0]) as zf:
        record_name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        shipped = zf.read(record_name).decode()
    site = root / str(venv).lstrip("/") / "lib"
    installed = list(site.glob(f"python*/site-packages/{record_name}"))
    assert len(installed) == 1, installed
    # uv adds its own INSTALLER/REQUESTED lines; every file of the wheel is there with the wheel's hash
    lines = set(installed[0].read_text().splitlines())
    assert {line for line in shipped.splitlines() if not line.endswith(",,")} <= lines
    # In the container (its disk outlives the instance here), the only VibeML is that one; this checkout is absent.
    image = fake.state.machine
    assert image is not None
    probe = f"python3 -c 'import vibeml; print(vibeml.__file__)'; test -e {SRC} && echo HOST-SOURCE-VISIBLE"
    res = subprocess.run(
        image.argv(root, probe),
        env={"PATH": f"{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    inside = "/" + str((installed[0].parent.parent / "vibeml" / "__init__.py").relative_to(root))
    assert res.stdout.strip() == inside, (res.stdout, res.stderr)  # the image's site-packages, nothing else


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_cli_launch_on_a_faithful_machine_ships_installs_trains_and_brings_the_adapter_back(
    fake: FakeVast, demo_home: Path, offline_image: FakeMachineImage, tmp_path: Path
) -> None:
    started = time.monotonic()
    # Enough steps (about 8 s of the demo's training) that the follower's 5 s polls see the job mid-way.
    proc = _launch(_cli_env(fake, demo_home, tmp_path), "--max-steps", "24")
    final, lines = _finish(proc, timeout=240)

    assert final["status"] == "completed", final.get("error")
    iid = int(final["handle"]["data"]["instance_id"])
    p = final["progress"]
    assert p["step"] == 24 and p["loss"] is not None and p["first_loss"] is not None
    steps = [d["progress"]["step"] for d in lines if d.get("progress")]
    assert any(0 < s < 24 for s in steps), f"progress was followed while it trained: {steps}"
    assert [e["step"] for e in _events(Path(final["handle"]["job_dir"])) if e["event"] == "step"][-1] == 24

    out = Path(final["output_dir"])
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").stat().st_size > 0
    assert out.is_relative_to(demo_home)  # the job's local output dir, copied back over SSH

    inst = fake.instance(iid)
    assert inst["destroyed"]
    assert_nothing_billing(fake)
    _assert_shipped_wheel_installed(fake, iid, demo_home, offline_image.venv)
    log = (fake.workdir(iid) / "onstart.log").read_text(errors="replace")
    assert SECRET_KEY not in log and str(SRC) not in log
    print(f"\nwall time: {time.monotonic() - started:.1f}s")


def test_a_preempted_spot_job_resumes_from_its_checkpoint_and_finishes(
    fake: FakeVast, demo_home: Path, offline_image: FakeMachineImage, tmp_path: Path
) -> None:
    started = time.monotonic()
    proc = _launch(_cli_env(fake, demo_home, tmp_path), "--spot", "--max-steps", "6", "--save-steps", "2")
    preempted: dict[str, Any] = {}

    def preempt_after_first_checkpoint() -> None:
        iid = _wait(lambda: fake.instance_ids(), 120, "an instance")[0]
        log = fake.workdir(iid) / "onstart.log"

        def checkpointed() -> bool:
            text = log.read_text(errors="replace") if log.exists() else ""
            return '"event":"checkpoint"' in text.replace(" ", "")

        _wait(checkpointed, 240, "the first checkpoint")
        fake.preempt(iid)
        preempted["iid"] = iid

    watcher = threading.Thread(target=preempt_after_first_checkpoint, daemon=True)
    watcher.start()
    final, _ = _finish(proc, timeout=270)  # under pytest's 300 s
    watcher.join(timeout=5)

    assert preempted, "the instance was preempted"
    assert final["status"] == "completed", final.get("error")
    assert final["progress"]["step"] == 6
    events = _events(Path(final["handle"]["job_dir"]))
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) >= 2 and starts[0].get("resumed_from") is None
    resumed = starts[-1]["resumed_from"]
    assert resumed and int(re.search(r"checkpoint-(\d+)", resumed).group(1)) > 0, resumed  # type: ignore[union-attr]
    assert [e["step"] for e in events if e["event"] == "step"][-1] == 6

    iid = preempted["iid"]
    assert int(final["handle"]["data"]["instance_id"]) == iid  # re-bid: the same instance ran again
    out = Path(final["output_dir"])
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").stat().st_size > 0
    assert fake.instance(iid)["destroyed"]
    assert_nothing_billing(fake)
    _assert_shipped_wheel_installed(fake, iid, demo_home, offline_image.venv)
    print(f"\nwall time: {time.monotonic() - started:.1f}s")


def test_a_2_gpu_offer_runs_two_trainer_processes_under_torchrun(
    fake: FakeVast, demo_home: Path, offline_image: FakeMachineImage, tmp_path: Path
) -> None:
    """``--gpu-count 2``: the plan rents a 2-GPU offer and the machine runs one trainer process per GPU under
    torchrun (CPU processes over gloo stand in for the GPUs: the faithful machine has none), the demo's 16
    sequences a step split 8 per process."""
    from vibeml.remote.supervisor import parse_runner_lines

    started = time.monotonic()
    proc = _launch(_cli_env(fake, demo_home, tmp_path), "--gpu-count", "2", "--max-steps", "4")
    final, _ = _finish(proc, timeout=270)

    assert final["status"] == "completed", final.get("error")
    iid = int(final["handle"]["data"]["instance_id"])
    assert fake.instance(iid)["num_gpus"] == 2  # the offer rented has 2 GPUs
    p = final["progress"]
    assert (p["world_size"], p["strategy"], p["global_batch_size"], p["step"]) == (2, "ddp", 16, 4)
    events = _events(Path(final["handle"]["job_dir"]))
    [start] = [e for e in events if e["event"] == "start"]
    assert (start["world_size"], start["num_nodes"], start["batch_size"], start["device"]) == (2, 1, 8, "cpu")
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]  # rank 0 alone reports

    log = (fake.workdir(iid) / "onstart.log").read_text(errors="replace")
    runs = [r for r in parse_runner_lines(log.splitlines()) if r.get("phase") == "trainer-start"]
    assert runs and all(r.get("processes") == 2 for r in runs), runs  # torchrun --nproc_per_node=2
    assert log.count("[vibeml] done:") == 1

    out = Path(final["output_dir"])
    assert (out / "adapter_config.json").is_file() and not list(out.rglob("*.distcp"))
    # the adapter names the machine's base path: load it on the local copy of the base, in one process
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from vibeml.demo.assets import ensure_demo_assets

    base = AutoModelForCausalLM.from_pretrained(str(ensure_demo_assets(demo_home / "demo").model_dir))
    assert type(PeftModel.from_pretrained(base, str(out))).__name__ == "PeftModelForCausalLM"
    assert fake.instance(iid)["destroyed"]
    assert_nothing_billing(fake)
    print(f"\nwall time: {time.monotonic() - started:.1f}s")
