"""Launch options that would do nothing for this request: each is refused here, before anything starts,
instead of being silently ignored by the trainer or the backend."""

from __future__ import annotations

from vibeml.exceptions import ConfigurationError
from vibeml.models import TrainingRequest

__all__ = ["LORA_FIELDS", "check_option_combinations"]

#: Hyperparameters only a LoRA adapter uses.
LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")


def check_option_combinations(request: TrainingRequest, method: str) -> None:
    """Refuse options that ``method`` (the workflow's: lora, qlora, full) or the inputs would ignore.

    Raises:
        ConfigurationError: ``save_merged`` with qlora (the trainer merges only into a full-precision base:
            use ``vibeml export JOB --merged`` after the job) or with full (nothing to merge); LoRA settings
            with a full fine-tune; ``hub_private`` without ``push_to_hub``. (A ``dataset_config`` or split that
            local data does not have is refused by ``inputs.check_dataset_split``.)
    """
    if request.save_merged and method == "qlora":
        raise ConfigurationError(
            "--save-merged does not work with the qlora workflow: its base is 4-bit, and merging into it would "
            "lose the adapter's precision",
            {"workflow": request.workflow, "save_merged": True},
            "Drop --save-merged and run `vibeml export JOB --merged` once the job is done (it merges into a "
            "bf16 reload of the base), or use --workflow trl-lora.",
        )
    if request.save_merged and method == "full":
        raise ConfigurationError(
            "--save-merged does nothing with the full workflow: it trains every weight, so its output already "
            "is the whole model",
            {"workflow": request.workflow, "save_merged": True},
            "Drop --save-merged.",
        )
    if method == "full":
        given = sorted(set(LORA_FIELDS) & request.hyperparameters.model_fields_set)
        if given:
            raise ConfigurationError(
                f"{', '.join(given)} configure a LoRA adapter, and the full workflow trains no adapter",
                {"workflow": request.workflow, "fields": given},
                "Drop them (CLI: --lora-r, --lora-alpha, --lora-dropout, --target-modules), or use --workflow "
                "trl-lora.",
            )
    if getattr(request, "hub_private", False) and getattr(request, "push_to_hub", None) is None:
        raise ConfigurationError(
            "--private says how to push to the hub, but no --push-to-hub REPO was given",
            {"hub_private": True},
            "Add --push-to-hub your-user/REPO, or drop --private.",
        )
