"""Options several commands share (`launch` and `script` take the same training settings), declared once."""

from typing import Annotated, Any

import typer

from vibeml.cli._output import parse_column_mapping, parse_target_modules

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

MaxStepsOpt = Annotated[int | None, typer.Option(help="Optimizer steps (instead of epochs).")]
EpochsOpt = Annotated[float | None, typer.Option(help="Passes over the data (default 1).")]
LearningRateOpt = Annotated[float | None, typer.Option("--learning-rate", "--lr")]
BatchSizeOpt = Annotated[int | None, typer.Option(help="Per-device batch size.")]
GradAccumOpt = Annotated[int | None, typer.Option(help="Gradient accumulation steps.")]
EffectiveBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--effective-batch",
        min=1,
        help="Sequences per optimizer step over all GPUs; the planner picks batch size × accumulation × GPUs.",
    ),
]
MaxSeqLengthOpt = Annotated[int | None, typer.Option(help="Tokens per sequence.")]
LoraROpt = Annotated[int | None, typer.Option(help="LoRA rank.")]
LoraAlphaOpt = Annotated[int | None, typer.Option(help="LoRA alpha.")]
LoraDropoutOpt = Annotated[float | None, typer.Option(help="LoRA dropout.")]
TargetModulesOpt = Annotated[str | None, typer.Option(help="Comma-separated LoRA targets, or all-linear.")]
GradientCheckpointingOpt = Annotated[
    bool | None,
    typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Default: on for GPUs."),
]
PackingOpt = Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack rows into full sequences.")]
SeedOpt = Annotated[int | None, typer.Option()]
SaveStepsOpt = Annotated[int | None, typer.Option(help="Checkpoint every N steps.")]
DatasetFormatOpt = Annotated[str, typer.Option(help="auto, alpaca, messages, sharegpt, prompt_completion or text.")]
DatasetSplitOpt = Annotated[str, typer.Option()]
ColumnMappingOpt = Annotated[
    str | None, typer.Option(help="Rename columns first: old=new,old2=new2 (e.g. question=instruction).")
]
SaveMergedOpt = Annotated[bool, typer.Option("--save-merged", help="Also save merged weights.")]


def training_settings(
    *,
    max_steps: int | None,
    epochs: float | None,
    learning_rate: float | None,
    batch_size: int | None,
    grad_accum: int | None,
    max_seq_length: int | None,
    lora_r: int | None,
    lora_alpha: int | None,
    lora_dropout: float | None,
    target_modules: str | None,
    gradient_checkpointing: bool | None,
    packing: bool | None,
    seed: int | None,
    save_steps: int | None,
    column_mapping: str | None,
    effective_batch: int | None = None,
) -> dict[str, Any]:
    """The shared options as request fields (flat hyperparameters included); unset ones left out."""
    fields: dict[str, Any] = {
        "max_steps": max_steps,
        "num_epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "effective_batch": effective_batch,
        "max_seq_length": max_seq_length,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
        "gradient_checkpointing": gradient_checkpointing,
        "packing": packing,
        "seed": seed,
        "save_steps": save_steps,
        "lora_target_modules": parse_target_modules(target_modules),
        "column_mapping": parse_column_mapping(column_mapping),
    }
    return {k: v for k, v in fields.items() if v is not None}
