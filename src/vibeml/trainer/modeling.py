"""Model, tokenizer and device helpers for the trainer (transformers/peft, never remote code).

Torch and transformers are imported inside functions: :func:`resolve_model_source` and
:func:`find_latest_checkpoint` are cheap checks that run before the heavy imports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vibeml.exceptions import ConfigurationError, ModelNotFoundError, ResourceError
from vibeml.trainer.bnb_compat import guard_cpu_4bit_packing

__all__ = [
    "CHATML_FALLBACK_TEMPLATE",
    "DeviceSettings",
    "check_bitsandbytes",
    "ensure_chat_template_and_pad",
    "find_latest_checkpoint",
    "generate_reply",
    "load_model",
    "load_tokenizer",
    "load_unsloth",
    "resolve_device",
    "resolve_model_source",
]

#: Used when a tokenizer has no chat template (base models). ChatML-style turns; the tokenizer's eos
#: token follows each assistant turn so a fine-tuned model learns to stop. ``<|im_start|>``/``<|im_end|>``
#: are plain text for tokenizers that lack them as special tokens.
CHATML_FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' }}"
    "{% if message['role'] == 'assistant' and eos_token is defined and eos_token %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_OFFLINE_VALUES = ("1", "true", "yes", "on")


# ------------------------------------------------------------------------------------ cheap checks


def resolve_model_source(name: str) -> str:
    """Check that ``name`` is a local model directory or a well-formed hub id (no network).

    Returns:
        The string to hand to ``from_pretrained``.

    Raises:
        ModelNotFoundError: A missing path, a folder without ``config.json``, or a malformed id.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError("no model given", {"model": str(name)})
    path = Path(name).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if exists:
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a model directory (no config.json)",
                {"model": name},
                "Give a folder saved with save_pretrained (config.json + weights), or a hub id.",
            )
        return str(path)
    looks_like_path = name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1
    if looks_like_path or not _HUB_ID.match(name):
        raise ModelNotFoundError(
            f"model not found: {name!r} is not an existing directory nor a hub model id",
            {"model": name},
            "Check the path, or give a hub id like 'Qwen/Qwen2.5-0.5B'.",
        )
    return name


def find_latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The highest-numbered complete ``checkpoint-N`` folder (one with ``trainer_state.json``)."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for child in root.iterdir():
        m = _CHECKPOINT.match(child.name)
        if m and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(m.group(1)), child))
    return max(found)[1] if found else None


# ------------------------------------------------------------------------------------------- device


@dataclass(frozen=True)
class DeviceSettings:
    """Where and in which precision to train."""

    device: str  # "cpu" | "cuda"
    dtype_name: str  # "float32" | "bfloat16" | "float16"
    bf16: bool
    fp16: bool


def resolve_device(requested: str, method: str) -> DeviceSettings:
    """cuda when available (bf16 where supported, else fp16 mixed precision), fp32 on CPU."""
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ResourceError(
            "device 'cuda' was asked for but no CUDA GPU is visible",
            {"device": requested},
            "Run on a GPU machine, or set device to 'auto' or 'cpu'.",
        )
    if requested == "cpu" or not has_cuda:
        return DeviceSettings("cpu", "float32", bf16=False, fp16=False)
    if torch.cuda.is_bf16_supported():
        return DeviceSettings("cuda", "bfloat16", bf16=True, fp16=False)
    # fp16 AMP needs fp32 master weights for full fine-tuning; LoRA keeps its adapters in fp32 itself
    return DeviceSettings("cuda", "float32" if method == "full" else "float16", bf16=False, fp16=True)


# ------------------------------------------------------------------------------------------ loading


def _hub_model_error(exc: BaseException, name: str) -> ModelNotFoundError | ConfigurationError:
    chain: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 6:
        chain.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    text = " | ".join(chain)
    ctx = {"model": name}
    if re.search(r"trust_remote_code|custom code|execute the configuration file", text, re.I):
        return ConfigurationError(
            f"model {name!r} needs custom code from its repository; VibeML never runs remote code",
            ctx,
            "Pick a model whose architecture transformers supports natively.",
        )
    unrecognized = re.search(r"Unrecognized model|model_type|not supported|does not recognize", text, re.I)
    if os.path.isdir(name) and not unrecognized:  # a local directory: the hub is not involved
        return ModelNotFoundError(
            f"could not load the model in {name}: {type(exc).__name__}: {exc}",
            ctx,
            "Its files may be damaged or incomplete (an interrupted download or copy): save the model again "
            "with save_pretrained(), or point --model at a complete model directory.",
        )
    if re.search(r"GatedRepoError|gated|401|403|Unauthorized|access to model", text, re.I):
        return ModelNotFoundError(
            f"model {name!r} is gated or private and no valid token was given",
            ctx,
            "Accept the model's licence on huggingface.co, then store a token that has access "
            "(`vibeml config set-credential huggingface token`) or set HF_TOKEN.",
        )
    if re.search(r"RepositoryNotFoundError|404|not a valid model identifier|does not appear to have", text, re.I):
        return ModelNotFoundError(
            f"model {name!r} was not found on the hub",
            ctx,
            "Check the spelling (e.g. 'Qwen/Qwen2.5-0.5B'), or give a local model directory.",
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in _OFFLINE_VALUES
    if offline or re.search(r"LocalEntryNotFound|couldn't connect|offline|connection", text, re.I):
        why = "offline mode is on (HF_HUB_OFFLINE)" if offline else "the hub could not be reached"
        return ModelNotFoundError(
            f"model {name!r} is not in the local cache and {why}",
            ctx,
            "Download the model first (or give a local model directory), or enable network access to the hub.",
        )
    if unrecognized:
        return ModelNotFoundError(
            f"{name!r} is not a causal language model transformers can load: {exc}",
            ctx,
            "Give a causal LM (a text-generation model) saved with save_pretrained.",
        )
    return ModelNotFoundError(f"could not load model {name!r}: {type(exc).__name__}: {exc}", ctx)


def load_tokenizer(source: str) -> Any:
    """``AutoTokenizer`` with ``trust_remote_code=False``; errors become VibeML errors."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except Exception as exc:
        raise _hub_model_error(exc, source) from exc


def check_bitsandbytes(device: str) -> None:
    """Make sure bitsandbytes can quantise to 4-bit NF4 on ``device`` (QLoRA), before loading anything big.

    Raises:
        ResourceError: bitsandbytes is missing, fails to import, or this build cannot run on ``device``.
    """
    try:
        import bitsandbytes.functional as bnbf
    except Exception as exc:
        missing = isinstance(exc, ModuleNotFoundError)
        raise ResourceError(
            "QLoRA needs bitsandbytes, which is " + ("not installed" if missing else f"not usable here ({exc})"),
            {"method": "qlora", "device": device},
            "Run QLoRA on a CUDA GPU backend (its setup installs bitsandbytes), `pip install bitsandbytes`, "
            "or use the trl-lora workflow.",
        ) from exc
    import torch

    try:  # a tiny quantisation: builds without a backend for this device fail here, not mid-load
        probe = torch.zeros(64, dtype=torch.float32, device=device)
        bnbf.quantize_4bit(probe, quant_type="nf4")
    except Exception as exc:
        raise ResourceError(
            f"this bitsandbytes build cannot quantise to 4-bit on {device}: {type(exc).__name__}: {exc}",
            {"method": "qlora", "device": device},
            "Run QLoRA on a CUDA GPU backend, install a bitsandbytes with CPU support (>= 0.48), or use trl-lora.",
        ) from exc


def load_model(
    source: str, dtype_name: str, *, attn_implementation: str | None = None, quantize_4bit: bool = False
) -> Any:
    """``AutoModelForCausalLM`` in ``dtype_name`` with ``trust_remote_code=False``.

    Args:
        attn_implementation: e.g. ``"sdpa"`` or ``"flash_attention_2"`` (None: transformers' default).
        quantize_4bit: Load the base weights as bitsandbytes 4-bit NF4 (double quantisation, compute in
            ``dtype_name``) for QLoRA; call :func:`check_bitsandbytes` first.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, dtype_name)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": False}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    try:  # `dtype` (transformers >= 4.56; `torch_dtype` is its deprecated spelling)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        if quantize_4bit:
            guard_cpu_4bit_packing(model)  # sampling after training would crash on some layer widths
        return model
    except Exception as exc:
        if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
            raise
        text = str(exc).lower()
        if quantize_4bit and ("bitsandbytes" in text or "quantiz" in text):
            raise ResourceError(
                f"loading {source} in 4-bit failed: {type(exc).__name__}: {exc}",
                {"model": source, "method": "qlora"},
                "Run QLoRA on a CUDA GPU with bitsandbytes installed, or use the trl-lora workflow.",
            ) from exc
        if attn_implementation and attn_implementation != "sdpa" and "attn" in text:
            return load_model(source, dtype_name, attn_implementation="sdpa", quantize_4bit=quantize_4bit)
        raise _hub_model_error(exc, source) from exc


#: The projections "all-linear" means for Unsloth, which wants explicit module names.
UNSLOTH_ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def load_unsloth(
    source: str,
    *,
    device: str,
    method: str,
    max_seq_length: int,
    lora_r: int,
    lora_alpha: int,
    lora_dropout: float,
    target_modules: list[str] | str,
    gradient_checkpointing: bool,
    seed: int,
) -> tuple[Any, Any]:
    """Model (with LoRA adapters unless ``method == "full"``) and tokenizer through Unsloth.

    ``unsloth`` patches transformers/TRL when imported, so this runs before TRL is imported.

    Raises:
        ResourceError: No CUDA GPU, or unsloth is not installed.
    """
    if device != "cuda":
        raise ResourceError(
            "the unsloth workflow needs an NVIDIA GPU (CUDA) and none is visible",
            {"engine": "unsloth", "device": device},
            "Run it on a GPU backend (vast or skypilot; their setup installs unsloth), or use trl-lora here.",
        )
    try:
        from unsloth import FastLanguageModel
    except ImportError as exc:
        raise ResourceError(
            f"the unsloth workflow needs the unsloth package: {exc}",
            {"engine": "unsloth"},
            "`pip install unsloth` on the GPU machine (the vast and skypilot setups do), or use trl-lora.",
        ) from exc
    checkpointing: str | bool = "unsloth" if gradient_checkpointing else False
    try:
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=source,
            max_seq_length=max_seq_length,
            dtype=None,  # bf16 where supported, else fp16
            load_in_4bit=method == "qlora",
            full_finetuning=method == "full",
            trust_remote_code=False,
            use_gradient_checkpointing=checkpointing,
            random_state=seed,
        )
    except Exception as exc:
        if isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower():
            raise
        raise _hub_model_error(exc, source) from exc
    if method != "full":
        targets = list(UNSLOTH_ALL_LINEAR) if target_modules == "all-linear" else list(target_modules)
        model = FastLanguageModel.get_peft_model(
            model,
            r=lora_r,
            target_modules=targets,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            bias="none",
            use_gradient_checkpointing=checkpointing,
            random_state=seed,
        )
    return model, tokenizer


def ensure_chat_template_and_pad(tokenizer: Any, model: Any) -> dict[str, bool]:
    """Give a tokenizer without a chat template :data:`CHATML_FALLBACK_TEMPLATE`, and a pad token.

    The pad token is the eos token when there is one; otherwise ``<|pad|>`` is added and the model's
    embeddings are resized.
    """
    changed = {"chat_template": False, "pad_token": False}
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_FALLBACK_TEMPLATE
        changed["chat_template"] = True
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
            model.resize_token_embeddings(len(tokenizer))
        changed["pad_token"] = True
    pad_id = tokenizer.pad_token_id
    model.config.pad_token_id = pad_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = pad_id
    return changed


# --------------------------------------------------------------------------------------- generation


def eos_ids(tokenizer: Any, model: Any) -> list[int]:
    """The token ids that end a reply: the generation config's, then the tokenizer's EOS."""
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    configured = getattr(gen, "eos_token_id", None)
    if isinstance(configured, int):
        ids.append(configured)
    elif isinstance(configured, (list, tuple)):
        ids.extend(i for i in configured if isinstance(i, int))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def generate_reply(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, max_length: int) -> str:
    """Greedy answer to one user ``prompt`` through the chat template."""
    import torch
    from transformers import GenerationConfig

    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    input_ids = enc["input_ids"][:, -max_length:]
    attention_mask = enc["attention_mask"][:, -max_length:]
    device = next(model.parameters()).device
    eos = eos_ids(tokenizer, model)
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos or None,
        use_cache=True,
    )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=gen_config,
            )
    finally:
        if was_training:
            model.train()
    text = tokenizer.decode(out[0, input_ids.shape[1] :], skip_special_tokens=True)
    return str(text).replace("<|im_end|>", "").strip()
