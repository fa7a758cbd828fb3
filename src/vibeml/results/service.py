"""The service's side of using and sharing a result: ``VibeML.generate`` / ``chat`` / ``push`` / ``export``
delegate here (the front ends stay thin, and so does ``client.py``)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from vibeml.exceptions import ValidationError, VibeMLError
from vibeml.models import JobRecord, JobStatus
from vibeml.results.outputs import JobOutput, job_output

if TYPE_CHECKING:
    from vibeml.client import VibeML
    from vibeml.results.export import ExportReport, MergeDtype
    from vibeml.results.hub import PushReport
    from vibeml.results.inference import Device, LoadedModel

__all__ = [
    "ChatSession",
    "Generation",
    "check_push_request",
    "export",
    "generate",
    "open_chat",
    "push",
    "push_on_success",
]

logger = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 32_000
MAX_NEW_TOKENS = 4096
PUSH_CLAIM = "push.claimed"


class Generation(BaseModel):
    """One answer from a job's model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    prompt: str
    reply: str
    base_model: str
    adapter: str | None
    device: str
    max_new_tokens: int


def _check_generation(prompt: object, max_new_tokens: object, device: object) -> None:
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(
            f"the prompt must be 1 to {MAX_PROMPT_CHARS:,} characters of text",
            {"prompt_chars": len(prompt) if isinstance(prompt, str) else None},
            "Give the question as --prompt TEXT.",
        )
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or not 1 <= max_new_tokens <= MAX_NEW_TOKENS
    ):
        raise ValidationError(
            f"max_new_tokens must be a whole number from 1 to {MAX_NEW_TOKENS}, not {max_new_tokens!r}"[:160],
            {"max_new_tokens": str(max_new_tokens)[:40]},
            "Give e.g. --max-new-tokens 128.",
        )
    if device not in ("auto", "cpu", "cuda"):
        raise ValidationError(
            f"device must be auto, cpu or cuda, not {device!r}"[:120],
            {"device": str(device)[:40]},
            "Give --device cpu.",
        )


def _load(svc: VibeML, job_id: str, device: Device) -> tuple[JobRecord, JobOutput, LoadedModel]:
    from vibeml.results.inference import load_output

    record = svc.get_status(job_id)
    output = job_output(record)
    model = load_output(output, device=device, max_length=record.request.hyperparameters.max_seq_length)
    return record, output, model


def generate(
    svc: VibeML, job_id: str, prompt: str, *, max_new_tokens: int = 256, device: Device = "auto"
) -> Generation:
    """The job's model's answer to one user prompt (greedy, through its chat template)."""
    _check_generation(prompt, max_new_tokens, device)
    record, output, model = _load(svc, job_id, device)
    reply = model.reply([{"role": "user", "content": prompt}], max_new_tokens)
    return Generation(
        job_id=record.job_id,
        prompt=prompt,
        reply=reply,
        base_model=output.base_model,
        adapter=str(output.path) if output.kind == "adapter" else None,
        device=model.device,
        max_new_tokens=max_new_tokens,
    )


class ChatSession:
    """A conversation with a job's model: each ``say`` adds the user turn and the model's answer."""

    def __init__(self, job_id: str, output: JobOutput, model: LoadedModel, max_new_tokens: int) -> None:
        self.job_id, self.output, self.model, self.max_new_tokens = job_id, output, model, max_new_tokens
        self.messages: list[dict[str, str]] = []

    @property
    def device(self) -> str:
        return self.model.device

    def say(self, text: str) -> str:
        _check_generation(text, self.max_new_tokens, "auto")
        turns = [*self.messages, {"role": "user", "content": text}]
        answer = self.model.reply(turns, self.max_new_tokens)
        self.messages = [*turns, {"role": "assistant", "content": answer}]
        return answer

    def reset(self) -> None:
        self.messages = []


def open_chat(svc: VibeML, job_id: str, *, max_new_tokens: int = 256, device: Device = "auto") -> ChatSession:
    _check_generation("x", max_new_tokens, device)
    record, output, model = _load(svc, job_id, device)
    return ChatSession(record.job_id, output, model, max_new_tokens)


# --------------------------------------------------------------------------------------------- export


def export(
    svc: VibeML, job_id: str, *, merged: bool = True, output_dir: str | None = None, dtype: MergeDtype = "bfloat16"
) -> ExportReport:
    """Merge the job's adapter into its base (``merged=True``; the only export there is), into ``output_dir``
    (default: ``merged/`` in the job's output folder)."""
    from vibeml.results.export import check_can_merge, merge_adapter

    if merged is not True:
        raise ValidationError(
            "export writes the merged model; the adapter itself is already in the job's output folder",
            {"merged": merged},
            "Add --merged (the adapter alone: use the output folder `vibeml status JOB` names).",
        )
    if dtype not in ("bfloat16", "float32"):
        raise ValidationError(
            f"dtype must be bfloat16 or float32, not {dtype!r}"[:120],
            {"dtype": str(dtype)[:40]},
            "Give --dtype bfloat16.",
        )
    output = job_output(svc.get_status(job_id))
    check_can_merge(output)
    dest = Path(output_dir).expanduser().resolve() if output_dir else output.path / "merged"
    return merge_adapter(output, dest, dtype=dtype)


# ----------------------------------------------------------------------------------------------- push


def push(svc: VibeML, job_id: str, repo_id: str, *, private: bool = False, merged: bool = False) -> PushReport:
    """Push the job's result (and the merged model when ``merged``; made first when missing) with a card."""
    from vibeml.results.export import check_can_merge, merge_adapter
    from vibeml.results.hub import check_repo_id, push_output

    check_repo_id(repo_id)
    record = svc.get_status(job_id)
    output = job_output(record)
    merged_dir = None
    if merged:
        check_can_merge(output)
        merged_dir = output.path / "merged"
        if not (merged_dir / "config.json").is_file():
            merge_adapter(output, merged_dir)
    report = push_output(
        record,
        output,
        repo_id,
        token=svc._hub_token(),
        endpoint=svc.settings.hub.endpoint,
        private=private,
        merged_dir=merged_dir,
    )
    svc.store.add_event(
        record.job_id, "pushed", {"repo_id": report.repo_id, "url": report.url, "commit": report.commit}
    )
    return report


def check_push_request(svc: VibeML, request: Any) -> None:
    """Before a launch with ``push_to_hub``: a valid repo id and a stored token (so the push cannot fail for
    want of one after the money is spent)."""
    from vibeml.exceptions import CredentialError
    from vibeml.results.hub import check_repo_id

    repo = getattr(request, "push_to_hub", None)
    if repo is None:
        return
    check_repo_id(repo)
    if not svc._hub_token():
        raise CredentialError(
            f"--push-to-hub {repo} needs a Hugging Face token with write access, and none is stored",
            {"repo_id": repo},
            "Store one first: `vibeml config set-credential huggingface token` (or set HF_TOKEN).",
        )


def push_on_success(svc: VibeML, record: JobRecord) -> None:
    """A job that asked for ``push_to_hub`` has just completed: push it, once (the first caller that sees
    it completed claims it). A failed push does not fail the job: it becomes a warning event, and
    ``vibeml push JOB REPO`` retries it."""
    repo = getattr(record.request, "push_to_hub", None)
    if repo is None or record.status is not JobStatus.COMPLETED:
        return
    claim = svc.job_dir(record.job_id) / PUSH_CLAIM
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        logger.warning("job %s: cannot claim its push (%s)", record.job_id, exc)
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps({"pid": os.getpid()}))
    private = bool(getattr(record.request, "hub_private", False))
    try:
        push(svc, record.job_id, repo, private=private, merged=record.request.save_merged)
    except VibeMLError as exc:
        message = f"the push to {repo} failed: {exc.message}; retry with `vibeml push {record.job_id} {repo}`"
        svc.store.add_event(record.job_id, "warning", {"message": message})
        logger.warning("job %s: %s", record.job_id, message)
