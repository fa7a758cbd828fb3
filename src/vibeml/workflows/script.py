"""Standalone training scripts: one self-contained Python file per fine-tune, for users who want the file.

The script is the fixed program in :mod:`vibeml.workflows._standalone` with VibeML's own dataset-format
code (:mod:`vibeml.trainer.formats`) and event stream (:mod:`vibeml.trainer.events`: the script reports
in the trainer's typed events) inlined, so it runs with transformers/peft/trl/datasets/pydantic alone.
User values never become code: they are validated into a :class:`~vibeml.trainer.config.TrainerConfig`,
serialised to JSON, base64-encoded (an alphabet of ``A-Z a-z 0-9 + / =``, inert in any string literal)
and decoded when the script starts. Nothing else in the script depends on the request.
"""

from __future__ import annotations

import ast
import base64
import functools
import importlib.util
import re
import textwrap
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from vibeml.exceptions import ConfigurationError, ValidationError
from vibeml.models import Hyperparameters, TrainingRequest
from vibeml.trainer.config import TrainerConfig
from vibeml.workflows.registry import get_workflow

__all__ = ["ScriptGenerator", "decode_script_config", "encode_config"]

_B64 = re.compile(r"^[A-Za-z0-9+/=]*$")
_CONFIG_LINE = 'CONFIG_B64 = ""\n'
#: The template's top-level imports of these modules are replaced by the whole module (the script must not
#: need VibeML installed); its import from ``vibeml.trainer.modeling`` becomes the chat template's literal.
_INLINED = ("vibeml.trainer.formats", "vibeml.trainer.bnb_compat", "vibeml.trainer.events")
_CHATML_FROM = "vibeml.trainer.modeling"
#: Script settings that are not hyperparameters (and are passed through to the trainer config).
_REQUEST_FIELDS = ("dataset_format", "dataset_split", "dataset_config", "output_dir", "save_merged", "sample_prompts")
_CONFIG_FIELDS = (
    "column_mapping",
    "checkpoint_dir",
    "device",
    "sample_max_new_tokens",
    "torch_threads",
    "attn_implementation",
    "use_liger_kernel",
    "optim",
    "resume",
)


def encode_config(config: dict[str, Any]) -> str:
    """JSON (ASCII-only) → base64: the one way user values enter a script."""
    import json

    text = json.dumps(config, ensure_ascii=True, sort_keys=True, allow_nan=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_script_config(script: str) -> dict[str, Any]:
    """Read the settings back out of a generated script without running it (for checks and tests)."""
    import ast
    import json

    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CONFIG_B64" for t in node.targets):
            value = ast.literal_eval(node.value)
            data = json.loads(base64.b64decode(value, validate=True).decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("CONFIG_B64 does not hold a JSON object")
            return data
    raise ValueError("no CONFIG_B64 in this script")


@functools.cache
def _source(module: str) -> str:
    """The source text of one of our modules (found, not imported: the template is never executed here)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:  # pragma: no cover - part of this package
        raise ConfigurationError(f"internal error: cannot find the source of {module}")
    return Path(spec.origin).read_text(encoding="utf-8")


@functools.cache
def _inline(module: str) -> str:
    """One of our modules as top-level code for the script (its ``__future__`` import removed)."""
    text = _source(module)
    lines = [ln for ln in text.splitlines() if ln.strip() != "from __future__ import annotations"]
    return "\n".join(lines).strip("\n") + "\n"


def _chatml_line() -> str:
    from vibeml.trainer.modeling import CHATML_FALLBACK_TEMPLATE

    return f"CHATML_FALLBACK_TEMPLATE = {CHATML_FALLBACK_TEMPLATE!r}\n"


def _config_block(encoded: str) -> str:
    if not _B64.match(encoded):  # defence in depth: only base64 characters ever enter the script
        raise ConfigurationError("internal error: the encoded config is not base64")
    chunks = textwrap.wrap(encoded, 100) or [""]
    body = "".join(f'    "{c}"\n' for c in chunks)
    return f"CONFIG_B64 = (\n{body})\n"


def _validation_error(exc: PydanticValidationError) -> ValidationError:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"] if x != "hyperparameters") or "request"
        problems.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return ValidationError(
        "invalid script settings: " + "; ".join(problems),
        {"fields": [p.split(":", 1)[0] for p in problems]},
        "Fix the named fields; `vibeml script --help` lists every option.",
    )


class ScriptGenerator:
    """Writes standalone training scripts (seed API)."""

    def build_config(self, workflow: str, model: str, dataset: str, **settings: Any) -> TrainerConfig:
        """Validate everything a script needs into a trainer config (what the script embeds).

        Args:
            workflow: A registered workflow name (``trl-lora``, ``qlora``, ``full``, ``unsloth``).
            model: Hub id or local model directory.
            dataset: Hub dataset id or local data file/folder.
            **settings: Hyperparameters (``max_steps``, ``learning_rate``, ``lora_r``…) and script settings
                (``output_dir``, ``sample_prompts``, ``dataset_format``, ``dataset_split``,
                ``dataset_config``, ``save_merged``, ``column_mapping``, ``checkpoint_dir``, ``device``, …).

        Raises:
            ConfigurationError: Unknown workflow or setting. ValidationError: a value out of range.
        """
        wf = get_workflow(workflow)
        known = set(Hyperparameters.model_fields) | set(_REQUEST_FIELDS) | set(_CONFIG_FIELDS)
        unknown = sorted(k for k in settings if k not in known)
        if unknown:
            raise ConfigurationError(
                f"unknown script settings: {', '.join(unknown)}",
                {"unknown": unknown},
                "Use hyperparameter names (max_steps, learning_rate, lora_r, ...) or output_dir, sample_prompts, "
                "dataset_format, dataset_split, dataset_config, save_merged, column_mapping.",
            )
        extra = {k: settings.pop(k) for k in list(settings) if k in _CONFIG_FIELDS and settings[k] is not None}
        settings = {k: v for k, v in settings.items() if v is not None}
        try:
            request = TrainingRequest.model_validate(
                {"model": model, "dataset": dataset, "workflow": wf.name, **settings}
            )
        except PydanticValidationError as exc:
            raise _validation_error(exc) from None
        from vibeml.validation.options import check_option_combinations

        check_option_combinations(request, wf.method)  # what the script would silently ignore is refused
        output_dir = request.output_dir or "output"
        try:
            return TrainerConfig.model_validate(
                {
                    "job_id": "script",
                    "model": request.model,
                    "dataset": request.dataset,
                    "dataset_format": request.dataset_format,
                    "dataset_split": request.dataset_split,
                    "dataset_config": request.dataset_config,
                    "method": wf.method,
                    "engine": wf.engine,
                    "hyperparameters": request.hyperparameters.model_dump(mode="json"),
                    "output_dir": output_dir,
                    "checkpoint_dir": extra.pop("checkpoint_dir", None) or f"{output_dir}/checkpoints",
                    "events_path": f"{output_dir}/events.jsonl",
                    "save_merged": request.save_merged,
                    "sample_prompts": list(request.sample_prompts),
                    **extra,
                }
            )
        except PydanticValidationError as exc:
            raise _validation_error(exc) from None

    def render(self, config: TrainerConfig) -> str:
        """The script for an already validated trainer config."""
        template = _source("vibeml.workflows._standalone")
        if template.count(_CONFIG_LINE) != 1:
            raise ConfigurationError("internal error: the script template has no single CONFIG_B64 line")
        lines = template.splitlines(keepends=True)
        replaced: dict[int, tuple[int, str]] = {}  # first line (0-based) → (line after the import, new text)
        for node in ast.parse(template).body:
            if isinstance(node, ast.ImportFrom) and node.module in (*_INLINED, _CHATML_FROM):
                text = _chatml_line() if node.module == _CHATML_FROM else _inline(node.module)
                replaced[node.lineno - 1] = (node.end_lineno or node.lineno, text)
        out: list[str] = []
        i = 0
        while i < len(lines):
            if i in replaced:
                i, text = replaced[i]
                out.append(text)
                continue
            line = lines[i]
            out.append(_config_block(encode_config(config.model_dump(mode="json"))) if line == _CONFIG_LINE else line)
            i += 1
        script = "".join(out)
        compile(script, "train.py", "exec")  # a template bug must fail here, not on the user's GPU
        return script

    def generate_script(self, workflow: str, model: str, dataset: str, **hyperparameters: Any) -> str:
        """A self-contained training script (seed API); see :meth:`build_config` for the arguments.

        Returns:
            Python source. Run it with ``python train.py`` (``--print-config`` shows the settings).
        """
        return self.render(self.build_config(workflow, model, dataset, **hyperparameters))

    def write_script(self, path: str | Path, script: str, *, overwrite: bool = False) -> Path:
        """Write ``script`` to ``path`` atomically (executable; refuses to replace a file unless ``overwrite``,
        and never replaces anything but a regular file).

        Raises:
            ConfigurationError: The file exists (without ``overwrite``), is a directory, device or pipe, or
                cannot be written.
        """
        from vibeml.safe_paths import check_output_path, write_text_atomic

        target = check_output_path(path, overwrite=overwrite, what="script")
        write_text_atomic(target, script, mode=0o755)
        return target
