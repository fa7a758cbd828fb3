"""A trained job, used and shared: `vibeml generate` / `chat` answer with the adapter, `vibeml export --merged`
merges LoRA and QLoRA adapters into a full-precision base, `vibeml push` (and `launch --push-to-hub`) land the
files and the card on the fake hub through huggingface_hub's real upload calls, and a fresh
`AutoPeftModelForCausalLM.from_pretrained` from that hub answers. Two tiny jobs are trained once for the module."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vibeml.cli.main import app
from vibeml.models import JobRecord
from vibeml.testing.fake_hub import FakeHub

pytestmark = [pytest.mark.needs_train, pytest.mark.slow]

runner = CliRunner()
TOKEN = "hf_" + "c" * 34
PASSPHRASE = "results test passphrase"
PROMPT = "How many words are in: moon cake frog?"  # a demo task (the demo trains on word counts)


class World:
    def __init__(self, root: Path, hub: FakeHub) -> None:
        self.root, self.hub = root, hub
        self.home = root / "home"
        self.jobs: dict[str, JobRecord] = {}

    def env(self) -> dict[str, str]:
        return {
            "VIBEML_HOME": str(self.home),
            "HF_ENDPOINT": self.hub.url,
            "HF_HOME": str(self.root / "hf-home"),
            "VIBEML_CREDENTIAL_BACKEND": "passphrase",
            "VIBEML_PASSPHRASE": PASSPHRASE,
        }

    def service(self) -> Any:
        from vibeml.client import VibeML
        from vibeml.settings import Settings

        return VibeML(Settings.from_env({**os.environ, **self.env()}))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, demo_assets_dir: Path) -> Iterator[World]:
    import huggingface_hub.constants

    from vibeml.config.credentials import CredentialManager

    root = tmp_path_factory.mktemp("use-and-share")
    with FakeHub(tokens={TOKEN: "alice"}) as hub, pytest.MonkeyPatch.context() as mp:
        w = World(root, hub)
        shutil.copytree(demo_assets_dir, w.home / "demo")
        for key, value in w.env().items():
            mp.setenv(key, value)
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        mp.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # the fake hub speaks LFS, not Xet
        svc = w.service()
        CredentialManager.from_settings(svc.settings).store_credential("huggingface", "token", TOKEN)
        lora = svc.launch(
            svc.request_from(
                demo=True, max_steps=12, sample_prompts=[], push_to_hub="alice/auto-pushed", hub_private=True
            )
        )
        qlora = svc.launch(svc.request_from(demo=True, workflow="qlora", max_steps=4, sample_prompts=[]))
        deadline = time.monotonic() + 600
        for name, job in (("lora", lora), ("qlora", qlora)):
            record = svc.get_status(job.job_id)
            while not record.status.is_terminal and time.monotonic() < deadline:
                time.sleep(1)
                record = svc.get_status(job.job_id)  # the completing call pushes (--push-to-hub)
            assert record.status.value == "completed", (name, record.error, list(svc.logs(job.job_id, tail=30)))
            w.jobs[name] = record
        yield w


@pytest.fixture
def home(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    for key, value in world.env().items():
        monkeypatch.setenv(key, value)
    return world


def _reference_reply(adapter_dir: str, max_new_tokens: int) -> str:
    """What peft's own loader answers, through the trainer's sampling helper."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    from vibeml.trainer.modeling import generate_reply

    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    return generate_reply(model, tokenizer, PROMPT, max_new_tokens, 1024)


def test_launch_push_to_hub_pushes_when_the_job_completes(home: World) -> None:
    repo = home.hub.repos[("model", "alice/auto-pushed")]
    assert repo.private and repo.owner == "alice"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer_config.json"} <= set(repo.files)
    assert not any(name.startswith(("checkpoint", "merged")) for name in repo.files)
    svc = home.service()
    events = svc.store.events(home.jobs["lora"].job_id)
    assert [e["kind"] for e in events].count("pushed") == 1  # pushed once, though every poll saw it completed
    svc.get_status(home.jobs["lora"].job_id)
    assert len(repo.commits) == 1


def test_generate_answers_with_the_adapter_through_the_cli_and_the_api(home: World) -> None:
    import vibeml

    job = home.jobs["lora"]
    res = runner.invoke(app, ["generate", job.job_id, "--prompt", PROMPT, "--max-new-tokens", "12", "--json"])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.stdout)
    assert answer["device"] == "cpu" and answer["adapter"] == job.output_dir and answer["reply"]
    assert answer["reply"] == _reference_reply(str(job.output_dir), 12)  # the adapter, through the chat template
    plain = runner.invoke(app, ["generate", job.job_id[:8], "-p", PROMPT, "--max-new-tokens", "12"])
    assert plain.exit_code == 0 and plain.stdout.strip() == answer["reply"]
    api = asyncio.run(vibeml.generate(job.job_id, PROMPT, max_new_tokens=12))
    assert api.reply == answer["reply"]


def test_chat_keeps_the_conversation_and_ends_cleanly(home: World, monkeypatch: pytest.MonkeyPatch) -> None:
    job = home.jobs["lora"]
    res = runner.invoke(
        app, ["chat", job.job_id, "--max-new-tokens", "8"], input=f"{PROMPT}\n\n/reset\nWhat is 2 + 2?\n"
    )
    assert res.exit_code == 0, res.output
    assert len(res.stdout.splitlines()) == 2, res.stdout  # one answer per turn (blank lines and /reset are none)
    assert "Traceback" not in res.output
    assert runner.invoke(app, ["chat", job.job_id], input="").exit_code == 0  # EOF at once

    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", interrupted)
    res = runner.invoke(app, ["chat", job.job_id])
    assert res.exit_code == 0 and "Traceback" not in res.output

    session = home.service().open_chat(job.job_id, max_new_tokens=8)
    first = session.say(PROMPT)
    session.say("And 1 + 1?")
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[1]["content"] == first


def _safetensors_dtypes(path: Path) -> set[str]:
    from safetensors.torch import load_file

    return {str(t.dtype) for t in load_file(str(path)).values()}


def test_export_merges_lora_into_the_base(home: World, tmp_path: Path) -> None:
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job = home.jobs["lora"]
    dest = tmp_path / "lora-merged"
    res = runner.invoke(app, ["export", job.job_id, "--merged", "-o", str(dest), "--dtype", "float32", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["output_dir"] == str(dest) and report["dtype"] == "float32"
    assert (dest / "config.json").exists() and not (dest / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(str(dest))
    ids = tok.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    with torch.inference_mode():
        merged = AutoModelForCausalLM.from_pretrained(str(dest))(ids).logits
        adapter = AutoPeftModelForCausalLM.from_pretrained(str(job.output_dir))(ids).logits
    assert torch.allclose(merged, adapter, atol=1e-4)  # the merge is the adapter's model
    again = runner.invoke(app, ["export", job.job_id, "--merged", "-o", str(dest), "--json"])
    assert again.exit_code == 2 and "already exists" in json.loads(again.stdout)["message"]


def test_export_merges_qlora_into_a_bf16_reload_not_the_4bit_model(home: World, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    import vibeml

    job = home.jobs["qlora"]
    report = asyncio.run(vibeml.export_model(job.job_id, output_dir=str(tmp_path / "q")))
    dest = Path(report.output_dir)
    config = json.loads((dest / "config.json").read_text())
    assert "quantization_config" not in config and report.dtype == "bfloat16"
    [weights] = dest.glob("*.safetensors")
    assert _safetensors_dtypes(weights) == {"torch.bfloat16"}  # no packed 4-bit uint8 tensors
    merged = AutoModelForCausalLM.from_pretrained(str(dest))
    base = AutoModelForCausalLM.from_pretrained(job.request.model, dtype=torch.bfloat16)
    name = next(n for n, _ in merged.named_parameters() if "q_proj" in n)
    assert not torch.equal(dict(merged.named_parameters())[name], dict(base.named_parameters())[name])
    res = runner.invoke(app, ["export", job.job_id, "--merged", "--json"])  # default: merged/ in its output
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["output_dir"] == str(Path(str(job.output_dir)) / "merged")


_FRESH_LOAD = """
import json, sys
from peft import AutoPeftModelForCausalLM, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from vibeml.trainer.modeling import generate_reply
adapter_repo, merged_repo, prompt, base_model = sys.argv[1:5]
model = AutoPeftModelForCausalLM.from_pretrained(adapter_repo)
tokenizer = AutoTokenizer.from_pretrained(adapter_repo)
merged = AutoModelForCausalLM.from_pretrained(merged_repo)
# as the merged repo's card says: the base, then the adapter beside the merged weights
beside = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), merged_repo, subfolder="adapter")
print(json.dumps({"reply": generate_reply(model, tokenizer, prompt, 12, 1024),
                  "merged": generate_reply(merged, AutoTokenizer.from_pretrained(merged_repo), prompt, 12, 1024),
                  "beside": generate_reply(beside, tokenizer, prompt, 12, 1024)}))
"""


def test_push_lands_the_files_and_the_card_and_a_fresh_load_answers(home: World, tmp_path: Path) -> None:
    job = home.jobs["lora"]
    res = runner.invoke(app, ["push", job.job_id, "alice/demo-tuned", "--json"])
    assert res.exit_code == 0, res.output
    assert TOKEN not in res.output
    report = json.loads(res.stdout)
    assert report["repo_id"] == "alice/demo-tuned" and not report["private"] and not report["merged"]
    assert report["warnings"] and "local folder" in report["warnings"][0]  # the demo's base is a local folder
    repo = home.hub.repos[("model", "alice/demo-tuned")]
    assert set(report["files"]) == set(repo.files)
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "README.md"} <= set(repo.files)
    assert "adapter_model.safetensors" in repo.lfs and "config.json" not in repo.files
    card = repo.files["README.md"].decode()
    p = job.progress
    assert p is not None and p.loss is not None and p.elapsed_seconds is not None
    for fact in (
        job.request.model,
        job.request.dataset,
        f"| Steps | {p.step} |",
        f"{p.loss:.4f}",
        f"{p.elapsed_seconds:.0f} s",
        "$0.0000",
        '"learning_rate"',
        "Final eval loss",
        "AutoPeftModelForCausalLM",
    ):
        assert fact in card, fact

    merged = runner.invoke(app, ["push", job.job_id, "alice/demo-merged", "--merged", "--json"])
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout)["warnings"] == []  # the merged model stands alone
    mrepo = home.hub.repos[("model", "alice/demo-merged")]
    assert {
        "config.json",
        "model.safetensors",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    } <= set(mrepo.files)
    assert (
        'PeftModel.from_pretrained(base, "alice/demo-merged", subfolder="adapter")' in mrepo.files["README.md"].decode()
    )
    for r in (repo, mrepo):
        for name, data in r.files.items():
            assert TOKEN.encode() not in data, name
    for path in home.home.rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".log", ".json", ".db", ".txt"):
            assert TOKEN.encode() not in path.read_bytes(), path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=home.hub.url, HF_HUB_CACHE=str(tmp_path / "fresh-cache"), HF_HUB_DISABLE_XET="1")
    run = subprocess.run(
        [sys.executable, "-c", _FRESH_LOAD, "alice/demo-tuned", "alice/demo-merged", PROMPT, job.request.model],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    fresh = json.loads(run.stdout.strip().splitlines()[-1])
    expected = _reference_reply(str(job.output_dir), 12)
    assert fresh["reply"] == expected and fresh["beside"] == expected
    assert isinstance(fresh["merged"], str)
    assert any(r.path.startswith("/alice/demo-tuned/resolve/") for r in home.hub.requests)  # read from the hub
    assert any(r.path.startswith("/alice/demo-merged/resolve/") for r in home.hub.requests)


def test_push_through_the_api_private_and_refused_without_write_access(home: World) -> None:
    import vibeml
    from vibeml.exceptions import CredentialError

    job = home.jobs["qlora"]
    report = asyncio.run(vibeml.push_to_hub(job.job_id, "alice/qlora-private", private=True))
    assert report.private and home.hub.repos[("model", "alice/qlora-private")].private
    with pytest.raises(CredentialError, match="403") as info:
        asyncio.run(vibeml.push_to_hub(job.job_id, "acme/not-yours"))
    assert TOKEN not in str(info.value.to_dict() if hasattr(info.value, "to_dict") else info.value)
