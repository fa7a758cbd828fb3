"""The model card (README.md) pushed with a job: what was trained on what, how, and what it cost.

User strings reach the YAML block as JSON values (JSON is YAML), never as bare text; in the body they are
shown inside code spans with backticks removed."""

from __future__ import annotations

import json
from typing import Any

from vibeml.models import JobRecord
from vibeml.results.outputs import JobOutput

__all__ = ["card_facts", "model_card"]


def _looks_like_hub_id(value: str) -> bool:
    from vibeml.inputs import looks_like_path

    return not looks_like_path(value)


def card_facts(record: JobRecord) -> dict[str, Any]:
    """The figures the card states, from the job's record (None where the job did not measure one)."""
    p = record.progress
    elapsed = p.elapsed_seconds if p else None
    return {
        "base_model": record.request.model,
        "dataset": record.request.dataset,
        "workflow": record.request.workflow,
        "steps": p.step if p else None,
        "final_train_loss": p.loss if p else None,
        "first_train_loss": p.first_loss if p else None,
        "final_eval_loss": getattr(p, "eval_loss", None) if p else None,
        "training_seconds": elapsed,
        "cost_usd": round(record.cost_so_far, 4),
        "backend": record.backend,
        "job_id": record.job_id,
        "hyperparameters": record.request.hyperparameters.model_dump(mode="json"),
    }


def _code(value: object) -> str:
    return "`" + str(value).replace("`", "'").replace("\n", " ") + "`"


def _num(value: float | None, digits: int = 4) -> str:
    return "not measured" if value is None else f"{value:.{digits}f}"


def model_card(record: JobRecord, output: JobOutput, repo_id: str, *, merged: bool) -> str:
    """README.md text for ``repo_id``."""
    facts = card_facts(record)
    adapter = output.kind == "adapter"
    meta: dict[str, Any] = {
        "library_name": "peft" if adapter and not merged else "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["vibeml", output.workflow, "lora" if adapter else "full-fine-tune"],
    }
    if _looks_like_hub_id(facts["base_model"]):
        meta["base_model"] = facts["base_model"]
    if _looks_like_hub_id(facts["dataset"]):
        meta["datasets"] = [facts["dataset"]]
    yaml = "\n".join(f"{k}: {json.dumps(v)}" for k, v in meta.items())
    seconds = facts["training_seconds"]
    rows = [
        ("Base model", _code(facts["base_model"])),
        ("Dataset", _code(facts["dataset"])),
        ("Workflow", _code(facts["workflow"])),
        ("Steps", str(facts["steps"]) if facts["steps"] is not None else "not measured"),
        ("Final train loss", _num(facts["final_train_loss"]) + f" (first {_num(facts['first_train_loss'])})"),
        ("Final eval loss", _num(facts["final_eval_loss"])),
        ("Training time", "not measured" if seconds is None else f"{seconds:.0f} s"),
        ("Cost", f"${facts['cost_usd']:.4f} on {facts['backend']}"),
    ]
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    config = json.dumps(facts["hyperparameters"], indent=2, sort_keys=True)
    if merged:  # AutoPeftModel would pass subfolder= on to the base model too, so the base is loaded first
        peft_use = (
            "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"base = AutoModelForCausalLM.from_pretrained({json.dumps(facts['base_model'])})\n"
            f'model = PeftModel.from_pretrained(base, {json.dumps(repo_id)}, subfolder="adapter")\n'
            f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(repo_id)})\n```\n"
        )
    else:
        peft_use = (
            "```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
            f"model = AutoPeftModelForCausalLM.from_pretrained({json.dumps(repo_id)})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(repo_id)})\n```\n"
        )
    full_use = (
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f"model = AutoModelForCausalLM.from_pretrained({json.dumps(repo_id)})\n"
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(repo_id)})\n```\n"
    )
    if adapter and merged:
        use = (
            f"The adapter merged into the base weights:\n\n{full_use}\n"
            f"The LoRA adapter itself is in `adapter/`:\n\n{peft_use}"
        )
    else:
        use = peft_use if adapter else full_use
    local_base = (
        ""
        if "base_model" in meta
        else (
            "\n> The base model was a local folder when this was trained: loading the adapter needs that base model.\n"
        )
    )
    return (
        f"---\n{yaml}\n---\n\n# {repo_id.split('/')[-1]}\n\n"
        f"A {'LoRA adapter' if adapter else 'full fine-tune'} trained with VibeML "
        f"(job {_code(facts['job_id'])}).\n{local_base}\n{table}\n\n## Use it\n\n{use}\n"
        f"## Training configuration\n\n```json\n{config}\n```\n"
    )
