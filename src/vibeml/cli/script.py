"""`vibeml script`: write a standalone training script (transformers/peft/trl only; VibeML not needed).

Thin: parses options, makes one call to :class:`vibeml.workflows.script.ScriptGenerator`, prints where the
script went (or the script itself with ``-o -``). Every value travels as data in the script's CONFIG.
"""

import sys
from typing import Annotated

import typer

from vibeml.cli._options import (
    BatchSizeOpt,
    ColumnMappingOpt,
    DatasetFormatOpt,
    DatasetSplitOpt,
    EpochsOpt,
    GradAccumOpt,
    GradientCheckpointingOpt,
    LearningRateOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraROpt,
    MaxSeqLengthOpt,
    MaxStepsOpt,
    PackingOpt,
    SaveMergedOpt,
    SaveStepsOpt,
    SeedOpt,
    TargetModulesOpt,
    training_settings,
)
from vibeml.cli._output import console, emit_json, error_boundary

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
    max_steps: MaxStepsOpt = None,
    epochs: EpochsOpt = None,
    learning_rate: LearningRateOpt = None,
    batch_size: BatchSizeOpt = None,
    grad_accum: GradAccumOpt = None,
    max_seq_length: MaxSeqLengthOpt = None,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    target_modules: TargetModulesOpt = None,
    gradient_checkpointing: GradientCheckpointingOpt = None,
    packing: PackingOpt = None,
    seed: SeedOpt = None,
    save_steps: SaveStepsOpt = None,
    dataset_format: DatasetFormatOpt = "auto",
    dataset_split: DatasetSplitOpt = "train",
    column_mapping: ColumnMappingOpt = None,
    output_dir: Annotated[
        str | None, typer.Option(help="Where the script saves the result (default ./output).")
    ] = None,
    save_merged: SaveMergedOpt = False,
    sample_prompt: Annotated[list[str] | None, typer.Option("--sample-prompt", help="Answered after training.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write a self-contained training script for a workflow (your settings are data inside it)."""
    from vibeml.workflows.script import ScriptGenerator

    settings = training_settings(
        max_steps=max_steps,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_seq_length=max_seq_length,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        gradient_checkpointing=gradient_checkpointing,
        packing=packing,
        seed=seed,
        save_steps=save_steps,
        column_mapping=column_mapping,
    )
    extra = {
        "dataset_format": dataset_format,
        "dataset_split": dataset_split,
        "output_dir": output_dir,
        "save_merged": save_merged,
        "sample_prompts": sample_prompt or None,
    }
    settings.update({k: v for k, v in extra.items() if v is not None})
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

    console().print(
        f"[bold green]Wrote[/] {escape(str(path))} ({workflow}). Run it with: python {escape(str(path))}"
        f"  (--print-config shows the settings)"
    )
