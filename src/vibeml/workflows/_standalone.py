#!/usr/bin/env python3
"""Fine-tune a causal language model with TRL's SFTTrainer (LoRA, QLoRA, full, or Unsloth).

Written by VibeML (`vibeml script`). It needs only transformers, peft, trl, datasets and pydantic (plus
bitsandbytes for QLoRA, unsloth for the Unsloth workflow); VibeML itself is not required.

Progress is VibeML's trainer event stream: one JSON line per event (start, step, checkpoint, sample,
done, error) appended to CONFIG's events_path and echoed to stdout after "@@vibeml-event ".

Every setting you chose is in CONFIG: one JSON document, stored base64-encoded below and decoded when
the script starts. It is data, never code. Read it with `python train.py --print-config`; edit it by
regenerating the script (`vibeml script ...`) or by replacing CONFIG_B64.

Usage: python train.py [--print-config] [--max-steps N]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# ---- your settings: base64 of UTF-8 JSON (only the characters A-Z a-z 0-9 + / =) ----
CONFIG_B64 = ""

# ---- VibeML's own dataset formats, bitsandbytes CPU guard and event stream: each import below is replaced by
# ---- the module ----
from vibeml.trainer.bnb_compat import guard_cpu_4bit_packing  # noqa: E402
from vibeml.trainer.events import (  # noqa: E402
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    EventWriter,
    SampleEvent,
    StartEvent,
    StepEvent,
)
from vibeml.trainer.formats import (  # noqa: E402
    DatasetError,
    RowProblem,
    check_column_mapping,
    detect_format,
    normalise_row,
    rename_row,
)

# ---- the chat template used when a tokenizer has none ----
from vibeml.trainer.modeling import CHATML_FALLBACK_TEMPLATE  # noqa: E402

DATA_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
UNSLOTH_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def decode_config(encoded: str) -> dict[str, Any]:
    """CONFIG_B64 → the settings dict."""
    data = json.loads(base64.b64decode(encoded.encode("ascii"), validate=True).decode("utf-8"))
    if not isinstance(data, dict):
        raise SystemExit("CONFIG_B64 does not hold a JSON object")
    return data


def log(message: str) -> None:
    print(f"[train] {message}", flush=True)


def load_rows(cfg: dict[str, Any]) -> tuple[Any, str]:
    """The dataset, renamed, detected and normalised: (datasets.Dataset, format)."""
    import datasets

    name, split = cfg["dataset"], cfg.get("dataset_split") or "train"
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in DATA_BUILDERS)
        else:
            files = [str(path)]
        if not files:
            raise SystemExit(f"no .jsonl/.json/.csv/.parquet data under {path}")
        builder = DATA_BUILDERS.get(Path(files[0]).suffix.lower())
        if builder is None:
            raise SystemExit(f"unsupported dataset file type: {files[0]}")
        raw = datasets.load_dataset(builder, data_files=files, split=split)
    else:
        raw = datasets.load_dataset(name, cfg.get("dataset_config"), split=split)
    mapping = check_column_mapping(list(raw.column_names), cfg.get("column_mapping"))
    rows = [rename_row(row, mapping) for row in raw]
    fmt = detect_format(rows[:100], cfg.get("dataset_format") or "auto")
    good: list[dict[str, Any]] = []
    skipped = 0
    for row in rows:
        try:
            good.append(normalise_row(row, fmt))
        except RowProblem:
            skipped += 1
    if not good:
        raise SystemExit(f"no usable rows in {name} as {fmt!r}")
    if skipped:
        log(f"skipped {skipped} malformed rows")
    return datasets.Dataset.from_list(good), fmt


def device_settings(cfg: dict[str, Any]) -> tuple[str, Any, bool, bool]:
    """(device, torch dtype, bf16 autocast, fp16 autocast)."""
    import torch

    want = cfg.get("device") or "auto"
    cuda = torch.cuda.is_available() and want != "cpu"
    if want == "cuda" and not cuda:
        raise SystemExit("device 'cuda' was asked for but no CUDA GPU is visible")
    if not cuda:
        return "cpu", torch.float32, False, False
    if torch.cuda.is_bf16_supported():
        return "cuda", torch.bfloat16, True, False
    return "cuda", (torch.float32 if cfg["method"] == "full" else torch.float16), False, True


def lora_targets(hp: dict[str, Any], unsloth: bool) -> Any:
    targets = hp.get("lora_target_modules", "all-linear")
    if targets == "all-linear":
        return list(UNSLOTH_ALL_LINEAR) if unsloth else "all-linear"
    return list(targets)


def load_model(cfg: dict[str, Any], device: str, dtype: Any) -> tuple[Any, Any, bool]:
    """(model, tokenizer, adapters already added)."""
    hp = cfg["hyperparameters"]
    method, engine = cfg["method"], cfg.get("engine", "transformers")
    checkpointing = hp.get("gradient_checkpointing")
    if checkpointing is None:
        checkpointing = device == "cuda"
    if engine == "unsloth":
        if device != "cuda":
            raise SystemExit("the unsloth workflow needs an NVIDIA GPU (CUDA); use the trl-lora workflow here")
        from unsloth import FastLanguageModel  # must come before transformers/TRL are used

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=cfg["model"],
            max_seq_length=hp["max_seq_length"],
            dtype=None,
            load_in_4bit=method == "qlora",
            full_finetuning=method == "full",
            trust_remote_code=False,
            use_gradient_checkpointing="unsloth" if checkpointing else False,
            random_state=hp["seed"],
        )
        if method == "full":
            return model, tokenizer, False
        model = FastLanguageModel.get_peft_model(
            model,
            r=hp["lora_r"],
            target_modules=lora_targets(hp, unsloth=True),
            lora_alpha=hp["lora_alpha"],
            lora_dropout=hp["lora_dropout"],
            bias="none",
            use_gradient_checkpointing="unsloth" if checkpointing else False,
            random_state=hp["seed"],
        )
        return model, tokenizer, True

    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": False}
    attn = cfg.get("attn_implementation") or "auto"
    if attn == "auto":
        import importlib.util

        attn = "flash_attention_2" if device == "cuda" and importlib.util.find_spec("flash_attn") else "sdpa"
    kwargs["attn_implementation"] = attn
    if method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise SystemExit("QLoRA needs bitsandbytes: pip install bitsandbytes (or use trl-lora)") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"], trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], **kwargs)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        guard_cpu_4bit_packing(model)

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model, tokenizer, False


def prepare_tokenizer(tokenizer: Any, model: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_FALLBACK_TEMPLATE
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
            model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id


def sft_config(cfg: dict[str, Any], device: str, bf16: bool, fp16: bool, max_steps: int | None) -> Any:
    from trl import SFTConfig

    hp = cfg["hyperparameters"]
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    steps = max_steps if max_steps is not None else hp.get("max_steps")
    checkpointing = hp.get("gradient_checkpointing")
    if checkpointing is None:
        checkpointing = device == "cuda"
    if cfg.get("engine") == "unsloth":
        checkpointing = False  # Unsloth wires its own checkpointing into the model
    kwargs: dict[str, Any] = {
        "output_dir": cfg["checkpoint_dir"],
        "max_steps": steps if steps is not None else -1,
        "num_train_epochs": hp.get("num_epochs") or 1.0,
        "learning_rate": hp["learning_rate"],
        "per_device_train_batch_size": hp["batch_size"],
        "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
        "max_length": hp["max_seq_length"],
        "packing": hp["packing"],
        "seed": hp["seed"],
        "weight_decay": hp["weight_decay"],
        "lr_scheduler_type": hp["lr_scheduler_type"],
        "logging_steps": hp["logging_steps"],
        "save_strategy": "steps",
        "save_steps": hp["save_steps"],
        "save_total_limit": hp["save_total_limit"],
        "report_to": "none",
        "bf16": bf16,
        "fp16": fp16,
        "use_cpu": device == "cpu",
        "dataloader_pin_memory": device == "cuda",
        "activation_checkpointing": checkpointing,
        "gradient_checkpointing": checkpointing,
        "warmup_steps": hp["warmup_ratio"],  # transformers 5: a float below 1 is a ratio of the steps
    }
    if checkpointing:
        kwargs["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    if device == "cuda":
        kwargs["optim"] = cfg.get("optim") or "adamw_torch_fused"
        import importlib.util

        if cfg.get("use_liger_kernel") is not False and importlib.util.find_spec("liger_kernel"):
            kwargs["use_liger_kernel"] = True  # layer kernels; TRL keeps its fused LM head + loss
    if "activation_checkpointing" in known:
        kwargs.pop("gradient_checkpointing")
    else:
        kwargs.pop("activation_checkpointing")
        kwargs["gradient_checkpointing_kwargs"] = kwargs.pop("activation_checkpointing_kwargs", None)
    if "warmup_ratio" in known:
        kwargs["warmup_ratio"] = kwargs.pop("warmup_steps")
    return SFTConfig(**{k: v for k, v in kwargs.items() if k in known})


def latest_checkpoint(folder: str) -> str | None:
    root = Path(folder)
    found = (
        [
            (int(p.name.split("-")[1]), p)
            for p in root.glob("checkpoint-*")
            if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").is_file()
        ]
        if root.is_dir()
        else []
    )
    return str(max(found)[1]) if found else None


def sample(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, events: EventWriter) -> None:
    import torch

    model.eval()
    for prompt in prompts:
        enc = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        device = next(model.parameters()).device
        with torch.inference_mode():
            out = model.generate(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        reply = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        events.emit(SampleEvent(phase="after", prompt=prompt, completion=reply))


def progress_callback(events: EventWriter, t0: float) -> Any:
    """A TrainerCallback that reports each logged step and each checkpoint as an event."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                lr = logs.get("learning_rate")
                events.emit(
                    StepEvent(
                        step=int(state.global_step),
                        max_steps=int(state.max_steps) if state.max_steps else None,
                        epoch=round(float(state.epoch or 0.0), 4),
                        loss=float(logs["loss"]),
                        learning_rate=float(lr) if lr is not None else None,
                        elapsed_seconds=round(time.monotonic() - t0, 2),
                    )
                )

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            events.emit(CheckpointEvent(step=int(state.global_step), path=str(path)))

    return Progress()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tune with the settings in CONFIG.")
    parser.add_argument("--print-config", action="store_true", help="print the settings as JSON and exit")
    parser.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    args = parser.parse_args(argv)
    cfg = decode_config(CONFIG_B64)
    if args.print_config:
        print(json.dumps(cfg, indent=2, ensure_ascii=False))
        return 0
    t0 = time.monotonic()
    events = EventWriter(cfg["events_path"], echo=True)
    try:
        import torch

        device, dtype, bf16, fp16 = device_settings(cfg)
        if cfg.get("torch_threads"):
            torch.set_num_threads(int(cfg["torch_threads"]))
        model, tokenizer, adapters_added = load_model(cfg, device, dtype)  # Unsloth first, then TRL
        dataset, fmt = load_rows(cfg)
    except DatasetError as exc:
        suggestion = exc.recovery_suggestion
        events.emit(ErrorEvent(message=str(exc), error_type="DatasetError", recovery_suggestion=suggestion))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # a setting this machine cannot honour (no GPU, no bitsandbytes, no rows)
        if isinstance(exc.code, str):
            events.emit(ErrorEvent(message=exc.code, error_type="SystemExit"))
        raise
    prepare_tokenizer(tokenizer, model)
    from peft import LoraConfig
    from trl import SFTTrainer

    hp = cfg["hyperparameters"]
    peft_config = None
    if cfg["method"] != "full" and not adapters_added:
        peft_config = LoraConfig(
            r=hp["lora_r"],
            lora_alpha=hp["lora_alpha"],
            lora_dropout=hp["lora_dropout"],
            target_modules=lora_targets(hp, unsloth=False),
            bias="none",
            task_type="CAUSAL_LM",
        )
    log(f"{cfg['method']} fine-tune of {cfg['model']} on {len(dataset)} {fmt} rows ({device})")
    training_args = sft_config(cfg, device, bf16, fp16, args.max_steps)
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress_callback(events, t0)],
    )
    resume = latest_checkpoint(cfg["checkpoint_dir"]) if cfg.get("resume", True) else None
    events.emit(
        StartEvent(
            model=cfg["model"],
            dataset=cfg["dataset"],
            method=cfg["method"],
            engine=cfg.get("engine", "transformers"),
            device=device,
            max_steps=training_args.max_steps if training_args.max_steps > 0 else None,
            num_examples=len(dataset),
            dataset_format=fmt,
            resumed_from=resume,
        )
    )
    result = trainer.train(resume_from_checkpoint=resume)
    out = Path(cfg["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    merged_dir = None
    if cfg.get("save_merged") and cfg["method"] == "lora" and peft_config is not None:
        peft_model: Any = trainer.model
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(str(out / "merged"))
        tokenizer.save_pretrained(str(out / "merged"))
        merged_dir = str(out / "merged")
    if cfg.get("sample_prompts"):
        sample(trainer.model, tokenizer, list(cfg["sample_prompts"]), int(cfg.get("sample_max_new_tokens", 32)), events)
    step = int(trainer.state.global_step)
    events.emit(
        DoneEvent(
            output_dir=str(out),
            step=step,
            first_loss=losses[0] if losses else None,
            final_loss=losses[-1] if losses else None,
            elapsed_seconds=round(time.monotonic() - t0, 2),
            merged_dir=merged_dir,
        )
    )
    log(f"done: {step} steps, mean training loss {result.training_loss:.4f}; saved to {out}")
    if not all(math.isfinite(x) for x in losses):
        print("warning: the loss was not finite at some step", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
