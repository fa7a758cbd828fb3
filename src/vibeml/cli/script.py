"""`vibeml script`: write a standalone training script (transformers/peft/trl only; VibeML not needed).

Thin: parses options, makes one call to :class:`vibeml.workflows.script.ScriptGenerator`, prints where the
script went (or the script itself with ``-o -``). Every value travels as data in the script's CONFIG.
"""


import sys
from typing import Annotated, Any

import typer

from vibeml.cli._output import console, emit_json, error_boundary, parse_column_mapping, parse_target_modules

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `script` command to ``app``."""
    app.command("script")(error_boundary(script))


def script(
    model: Annotated[str, typer.Option("--model", "-m", help="Hub id or local model directory.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Hub dataset id or .jsonl/.json/.csv/.parquet.")],
    workflow: Annotated[str, typer.Option("--workflow", "-w", help="trl-lora, qlora, full or unsloth.")] = "trl-lora",
    out: Annotated[str, typer.Option("--out", "-o", help="Where to write the script ('-' = stdout).")] = "train.py",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (instead of epochs).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data (default 1).")] = None,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", "--lr")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Per-device batch size.")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Gradient accumulation steps.")] = None,
    max_seq_length: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha.")] = None,
    lora_dropout: Annotated[float | None, typer.Option(help="LoRA dropout.")] = None,
    target_modules: Annotated[str | None, typer.Option(help="Comma-separated LoRA targets, or all-linear.")] = None,
    gradient_checkpointing: Annotated[
        bool | None, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Default: on GPUs.")
    ] = None,
    packing: Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack rows into full sequences.")]
    = None,
    seed: Annotated[int | None, typer.Option()] = None,
    save_steps: Annotated[int | None, typer.Option(help="Checkpoint every N steps.")] = None,
    dataset_format: Annotated[
        str, typer.Option(help="auto, alpaca, messages, sharegpt, prompt_completion or text.")
    ] = "auto",
    dataset_split: Annotated[str, typer.Option()] = "train",
    column_mapping: Annotated[
        str | None, typer.Option(help="Rename columns first: old=new,old2=new2 (e.g. question=instruction).")
    ] = None,
    output_dir: Annotated[str | None, typer.Option(help="Where the script saves the result (default ./output).")]
    = None,
    save_merged: Annotated[bool, typer.Option("--save-merged", help="Also save merged weights.")] = False,
    sample_prompt: Annotated[
        list[str] | None, typer.Option("--sample-prompt", help="Answered after training.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write a self-contained training script for a workflow (your settings are data inside it)."""
    from vibeml.workflows.script import ScriptGenerator

    settings: dict[str, Any] = {
        "max_steps": max_steps, "num_epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum, "max_seq_length": max_seq_length, "lora_r": lora_r,
        "lora_alpha": lora_alpha, "lora_dropout": lora_dropout, "gradient_checkpointing": gradient_checkpointing,
        "packing": packing, "seed": seed, "save_steps": save_steps, "dataset_format": dataset_format,
        "dataset_split": dataset_split, "output_dir": output_dir, "save_merged": save_merged,
        "sample_prompts": sample_prompt or None, "column_mapping": parse_column_mapping(column_mapping),
    }
    settings["lora_target_modules"] = parse_target_modules(target_modules)
    settings = {k: v for k, v in settings.items() if v is not None}
    generator = ScriptGenerator()
    text = generator.generate_script(workflow, model, dataset, **settings)
    if out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = generator.write_script(out, text, overwrite=force)
    if json_out:
        emit_json({"path": str(path), "workflow": workflow, "bytes": len(text.encode("utf-8"))})
        return
    from rich.markup import escape

    console().print(f"[bold green]Wrote[/] {escape(str(path))} ({workflow}). Run it with: python {escape(str(path))}"
                    f"  (--print-config shows the settings)")
