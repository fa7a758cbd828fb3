"""Push a finished job to the Hugging Face hub: the adapter (or full model) and its tokenizer, and a model card,
in one commit (``HfApi.create_repo`` + ``create_commit``). With the merged model, the merged model is the repo
(what ``AutoModelForCausalLM.from_pretrained(repo)`` loads) and the adapter sits beside it in ``adapter/``
(transformers looks for an adapter at a repo's root even when asked for a subfolder, so the merged model cannot
be the subfolder).

The token comes from VibeML's credential store (then ``HF_TOKEN``, then ``hf auth login``); it goes to
``huggingface_hub`` only, and no message, event or log line holds it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import CloudProviderError, ConfigurationError, CredentialError, ValidationError
from vibeml.models import JobRecord
from vibeml.results.outputs import JobOutput

__all__ = ["PushReport", "check_repo_id", "push_output"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
#: What a job's output folder holds that is not part of the result.
_SKIP_DIRS = ("merged", "checkpoints")
_SKIP_PREFIXES = ("checkpoint-", ".")


class PushReport(BaseModel):
    """What ``vibeml push`` (or ``--push-to-hub``) put on the hub."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    repo_id: str
    url: str
    private: bool
    merged: bool
    commit: str | None = None
    files: list[str] = Field(description="Paths in the repo, the card (README.md) included.")
    warnings: list[str] = Field(default_factory=list)


def check_repo_id(repo_id: object) -> str:
    """``namespace/name`` as the hub spells repo ids.

    Raises:
        ValidationError: Anything else (no namespace, spaces, too long, ``..``).
    """
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith(".git"):
        raise ValidationError(
            f"{str(repo_id)[:120]!r} is not a hub repo id",
            {"repo_id": str(repo_id)[:120]},
            "Give it as namespace/name, e.g. your-user/qwen-support-bot (letters, digits, '-', '_', '.').",
        )
    return repo_id


def result_files(folder: Path) -> list[Path]:
    """The files of a result folder that belong on the hub (no checkpoints, no merged copy, no dotfiles)."""
    out: list[Path] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or rel.parts[0] in _SKIP_DIRS or any(p.startswith(_SKIP_PREFIXES) for p in rel.parts):
            continue
        out.append(path)
    return out


def _hub_error(exc: Exception, repo_id: str, what: str) -> Exception:
    from huggingface_hub.errors import HfHubHTTPError

    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) and exc.response is not None else None
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    if status in (401, 403):
        return CredentialError(
            f"the hub refused to {what} {repo_id} ({status}): {text}",
            {"repo_id": repo_id, "status_code": status},
            "Store a token with write access: `vibeml config set-credential huggingface token`, and push to "
            "your own namespace or an organisation you may write to.",
        )
    return CloudProviderError(
        f"could not {what} {repo_id} on the hub: {text}",
        {"repo_id": repo_id},
        "Check the network and the hub's status, then run `vibeml push JOB REPO` again.",
        status_code=status,
        retryable=status is None or status >= 500,
    )


def push_output(
    record: JobRecord,
    output: JobOutput,
    repo_id: str,
    *,
    token: str | None,
    endpoint: str | None,
    private: bool = False,
    merged_dir: Path | None = None,
) -> PushReport:
    """Create ``repo_id`` (kept when it exists) and commit the job's result and card to it.

    Raises:
        CredentialError: No token, or the hub refused it (no write access).
        CloudProviderError: The hub failed otherwise.
        ConfigurationError: The hub is switched off (HF_HUB_OFFLINE).
    """
    from vibeml.results.card import model_card

    repo_id = check_repo_id(repo_id)
    if not token:
        raise CredentialError(
            f"pushing to {repo_id} needs a Hugging Face token with write access, and none is stored",
            {"repo_id": repo_id},
            "Store one: `vibeml config set-credential huggingface token` (or set HF_TOKEN).",
        )
    import huggingface_hub.constants
    from huggingface_hub import CommitOperationAdd, HfApi

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise ConfigurationError(
            "the hub is switched off on this machine (HF_HUB_OFFLINE is set): nothing can be pushed",
            {"repo_id": repo_id},
            "Unset HF_HUB_OFFLINE for this command.",
        )
    warnings: list[str] = []
    operations: list[Any] = []
    if merged_dir is None:  # the adapter (or full model) at the root
        for path in result_files(output.path):
            operations.append(CommitOperationAdd(path.relative_to(output.path).as_posix(), str(path)))
    else:  # the merged model at the root (what AutoModelForCausalLM loads), the adapter beside it in adapter/
        for path in result_files(merged_dir):
            operations.append(CommitOperationAdd(path.relative_to(merged_dir).as_posix(), str(path)))
        for path in result_files(output.path):
            operations.append(CommitOperationAdd("adapter/" + path.relative_to(output.path).as_posix(), str(path)))
    card = model_card(record, output, repo_id, merged=merged_dir is not None)
    operations = [op for op in operations if op.path_in_repo not in ("README.md", "adapter/README.md")]
    operations.append(CommitOperationAdd("README.md", card.encode("utf-8")))
    if output.kind == "adapter" and merged_dir is None and "base_model" not in card.split("\n---\n", 1)[0]:
        warnings.append(
            f"the base model is a local folder ({output.base_model}): the adapter loads only where that folder "
            "exists; push with --merged for others to use it"
        )
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    failures = (HfHubHTTPError, httpx.HTTPError, OSError, ValueError)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
    except failures as exc:
        raise _hub_error(exc, repo_id, "create") from None
    try:
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=f"VibeML job {record.job_id}: {output.workflow} fine-tune of {Path(output.base_model).name}",
        )
    except failures as exc:
        raise _hub_error(exc, repo_id, "upload to") from None
    return PushReport(
        job_id=record.job_id,
        repo_id=repo_id,
        url=str(url),
        private=private,
        merged=merged_dir is not None,
        commit=getattr(info, "oid", None),
        files=sorted(op.path_in_repo for op in operations),
        warnings=warnings,
    )
