"""Load a finished job's model (the base with its adapter, or a full fine-tune) on this machine and answer
through the model's chat template. Torch, transformers and peft are imported here, when a model is loaded."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from vibeml.exceptions import ModelNotFoundError, ResourceError
from vibeml.results.outputs import JobOutput

__all__ = ["LoadedModel", "load_output"]

Device = Literal["auto", "cpu", "cuda"]

_CACHE: dict[tuple[str, str, str], LoadedModel] = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    """A model ready to answer: the chat template renders the turns, decoding is greedy."""

    model: Any
    tokenizer: Any
    device: str
    max_length: int
    lock: threading.Lock

    def reply(self, messages: list[dict[str, str]], max_new_tokens: int) -> str:
        """The assistant's next turn after ``messages`` (``[{"role", "content"}, ...]``)."""
        import torch
        from transformers import GenerationConfig

        from vibeml.trainer.modeling import eos_ids

        with self.lock:  # one generation at a time per model (MCP calls come from several threads)
            enc = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
            input_ids = enc["input_ids"][:, -self.max_length :]
            attention_mask = enc["attention_mask"][:, -self.max_length :]
            eos = eos_ids(self.tokenizer, self.model)
            config = GenerationConfig(
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=eos or None,
                use_cache=True,
            )
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention_mask.to(self.device),
                    generation_config=config,
                )
            text = self.tokenizer.decode(out[0, input_ids.shape[1] :], skip_special_tokens=True)
        return str(text).replace("<|im_end|>", "").strip()


def load_output(output: JobOutput, *, device: Device = "auto", max_length: int = 1024) -> LoadedModel:
    """The job's model on ``device`` (auto: a CUDA GPU when one is visible, else the CPU), loaded once per
    process and reused.

    Raises:
        ModelNotFoundError: The base model (or the adapter) cannot be loaded from where the job names it.
        ResourceError: ``device='cuda'`` without a visible GPU, or too little memory.
    """
    key = (str(output.path), output.base_model, device)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            return found
        loaded = _load(output, device, max_length)
        _CACHE.clear()  # keep one model in memory
        _CACHE[key] = loaded
        return loaded


def _load(output: JobOutput, device: Device, max_length: int) -> LoadedModel:
    from transformers import AutoTokenizer

    from vibeml.trainer.modeling import ensure_chat_template_and_pad, load_model, resolve_device

    dev = resolve_device(device, "full" if output.kind == "full" else "lora")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(output.path))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"the tokenizer saved with job {output.job_id} in {output.path} does not load: {exc}",
            {"job_id": output.job_id, "output_dir": str(output.path)},
            "The output folder is incomplete; train again or restore it.",
        ) from exc
    try:
        if output.kind == "full":
            model = load_model(str(output.path), dev.dtype_name)
        else:
            model = _with_adapter(output, load_model(output.base_model, dev.dtype_name), tokenizer)
        model.to(dev.device)
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise ResourceError(
                f"job {output.job_id}'s model does not fit in {dev.device} memory: {exc}",
                {"job_id": output.job_id, "device": dev.device},
                "Use the other device (--device cpu or --device cuda), or free memory.",
            ) from exc
        raise
    model.eval()
    ensure_chat_template_and_pad(tokenizer, model)
    return LoadedModel(model, tokenizer, dev.device, max_length, threading.Lock())


def _with_adapter(output: JobOutput, base: Any, tokenizer: Any) -> Any:
    """``base`` with the job's LoRA adapter applied (not merged)."""
    from peft import PeftModel

    fit_embeddings(base, tokenizer)
    try:
        return PeftModel.from_pretrained(base, str(output.path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelNotFoundError(
            f"the adapter of job {output.job_id} in {output.path} does not load onto {output.base_model}: {exc}",
            {"job_id": output.job_id, "output_dir": str(output.path), "base_model": output.base_model},
            "The adapter and its base model must match; check the output folder and the base model.",
        ) from exc


def fit_embeddings(model: Any, tokenizer: Any) -> None:
    """Grow the embeddings when training added tokens (a pad token), as the trainer did."""
    embeddings = model.get_input_embeddings()
    if embeddings is not None and embeddings.num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
