"""A gated hub model trains wherever the job runs: the HF token reaches the trainer and nowhere else.

The token lives only in VibeML's encrypted credential store (not in the environment). The service hands
it to the trainer's process (local), the instance's environment (Vast) or SkyPilot's ``secrets``, never
to the config, the handle, the store, a log, or a listing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.backends import test_vast_backend_support as vast_support
from vibeml.backends.local import LocalBackend
from vibeml.backends.registry import default_registry
from vibeml.client import VibeML
from vibeml.config.credentials import CredentialManager
from vibeml.models import JobStatus, TrainingRequest
from vibeml.settings import Settings
from vibeml.testing.fake_hub import FakeHub
from vibeml.vast import VastAI
from vibeml.workflows.registry import TrainingProgram

pytestmark = pytest.mark.needs_train  # the train extra: skipped by `make test-compat`

TOKEN = "hf_" + "a" * 34  # the root conftest's "good" token: the fake hub knows it
REPO = "acme/gated-tiny"
fake = vast_support.fake
vast_env = vast_support.vast_env


@pytest.fixture
def gated(
    hub: FakeHub,
    vibeml_env: Path,
    demo_assets_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tokens: dict[str, str],
) -> dict[str, Any]:
    """The demo's tiny model as a gated repo on the fake hub; the token only in VibeML's store."""
    assert tokens["good"] == TOKEN
    files = {p.name: p.read_bytes() for p in (demo_assets_dir / "tiny-llama").iterdir() if p.is_file()}
    hub.add_model(REPO, files, gated="manual")
    hub.grant(REPO, TOKEN)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-hf-login"))  # no `hf auth login` token either
    monkeypatch.setenv("VIBEML_CREDENTIAL_BACKEND", "passphrase")
    monkeypatch.setenv("VIBEML_PASSPHRASE", "correct horse battery staple")
    CredentialManager.from_settings(Settings.from_env()).store_credential("huggingface", "token", SecretStr(TOKEN))
    return {"dataset": str(demo_assets_dir / "demo_dataset.jsonl"), "hub": hub}


def _wait(svc: VibeML, job_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = svc.get_status(job_id)
        if record.status.is_terminal:
            return record
        time.sleep(0.3)
    raise AssertionError(f"{job_id} did not finish")


def _text_under(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file())


class _FakeTrainerLocal(LocalBackend):
    """The local backend, running the stand-in trainer (it reports a digest of the HF_TOKEN it was given)."""

    def launch(self, program: TrainingProgram, job_id: str, job_dir: Path, choice: Any = None) -> Any:
        program = program.model_copy(update={"module": "fake_program"})
        program.env.update({"VIBEML_TEST_MODE": "complete", "PYTHONPATH": vast_support.FAKE_PATH})
        return super().launch(program, job_id, job_dir, choice)


def test_the_local_trainer_process_gets_the_stored_token(
    gated: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env()
    registry = default_registry(settings)
    registry.register("local", _FakeTrainerLocal)
    svc = VibeML(settings, backends=registry)
    record = svc.launch(TrainingRequest(model=REPO, dataset=gated["dataset"], max_steps=2))
    final = _wait(svc, record.job_id, timeout=60)
    assert final.status is JobStatus.COMPLETED, final.error
    digest = (svc.job_dir(record.job_id) / "hf_token_sha256").read_text(encoding="utf-8")
    assert digest == hashlib.sha256(TOKEN.encode()).hexdigest()
    out = capsys.readouterr()
    for text in (_text_under(svc.settings.home), final.model_dump_json(), out.out, out.err):
        assert TOKEN not in text


def test_the_vast_instance_and_its_trainer_get_the_token_and_nothing_shows_it(
    gated: dict[str, Any], vast_env: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The planner reads the gated config.json with the stored token; the instance (the fake Vast, over
    HTTP) gets HF_TOKEN in its environment and its runner hands it to the trainer process (the stand-in
    trainer, which reports a digest); listings, --explain and --curl mask it."""
    caplog.set_level(logging.DEBUG)
    svc, _backend = vast_support.make_service(vast_env, backend_cls=vast_support.FakeProgramVast)
    request = TrainingRequest(model=REPO, dataset=gated["dataset"], backend="vast", max_cost=1.0, max_steps=2)
    record = svc.launch(request)
    iid = int(record.handle.data.instance_id)  # type: ignore[union-attr]
    assert dict(vast_env.instance(iid)["extra_env"])["HF_TOKEN"] == TOKEN  # it reached the machine

    client = VastAI(api_key=vast_support.SECRET_KEY, server_url=vast_env.url, explain=True)
    shown = client.show_instance(iid)
    assert dict(shown["extra_env"])["HF_TOKEN"] == "****"
    assert all(dict(row["extra_env"]).get("HF_TOKEN") == "****" for row in client.show_instances())
    curl = VastAI(api_key=vast_support.SECRET_KEY, server_url=vast_env.url, curl=True)
    printed = curl.create_instance(1, image="x", disk=10, env={"HF_TOKEN": TOKEN})
    assert TOKEN not in json.dumps(printed)

    final = vast_support.wait_terminal(svc, record.job_id, timeout=120)
    assert final.status is JobStatus.COMPLETED, final.error
    digest = (vast_env.workdir(iid) / "vibeml-job" / "hf_token_sha256").read_text(encoding="utf-8")
    assert digest == hashlib.sha256(TOKEN.encode()).hexdigest()
    vast_support.assert_nothing_billing(vast_env)
    out = capsys.readouterr()
    machine = _text_under(vast_env.workdir(iid))  # the runner's onstart.log, the job dir on the instance
    assert "started" in machine
    for text in (_text_under(svc.settings.home), final.model_dump_json(), out.out, out.err, caplog.text, machine):
        assert TOKEN not in text


def test_skypilot_gets_the_token_as_a_secret_never_in_its_yaml(gated: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("sky")
    from vibeml.backends.base import LaunchChoice
    from vibeml.backends.skypilot.task import SkyOptions, build_task_spec
    from vibeml.workflows.registry import render_program

    svc = VibeML(Settings.from_env())
    secrets = svc._hub_secrets()
    assert secrets["HF_TOKEN"].get_secret_value() == TOKEN and TOKEN not in repr(secrets)
    request = TrainingRequest(model=REPO, dataset="org/data", max_steps=5)
    program = render_program(
        request,
        "vml-sec",
        output_dir=str(tmp_path / "o"),
        checkpoint_dir=str(tmp_path / "c"),
        events_path=str(tmp_path / "e.jsonl"),
        secrets=secrets,
    )
    assert TOKEN not in program.model_dump_json() and TOKEN not in repr(program)
    choice = LaunchChoice(gpu_type="A10G", cloud="aws", region="us-east-1", hourly_rate=1.0, max_cost=5.0)
    spec = build_task_spec(program, "vml-sec", choice, SkyOptions(install="vibeml[train]==0.1.0"))
    task = spec.to_task(secrets=program.secret_env())
    assert task.secrets["HF_TOKEN"].get_secret_value() == TOKEN
    assert TOKEN not in spec.to_yaml() and "HF_TOKEN" not in json.dumps(task.envs)
