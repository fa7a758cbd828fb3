"""``python -m vibeml.trainer --config run.json``: run one fine-tune from a config file.

Exit codes: 0 done or stopped gracefully (``done``/``stopped`` event); 1 training failed (``error``
event); 2 the config is unusable (``error`` event when its ``events_path`` can be read); 130 a second
interrupt cut the run short. VibeML errors print a message and a suggestion, never a traceback;
unexpected errors also print their traceback to stderr (the job log).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

# Before any Hugging Face import: no telemetry, no tokenizer thread pools forked into workers.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from vibeml.exceptions import ConfigurationError, VibeMLError
from vibeml.trainer.config import load_config
from vibeml.trainer.events import ErrorEvent, EventWriter, context_text

__all__ = ["main"]

_UNEXPECTED_SUGGESTION = "This looks like a bug or an environment problem; the job log holds the traceback."


def _events_path_from_raw(config_path: str) -> str | None:
    """The ``events_path`` of a config that failed validation, when the JSON can still be read."""
    try:
        raw = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = raw.get("events_path") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def _emit_error(
    writer: EventWriter | None,
    exc: BaseException,
    error_type: str,
    suggestion: str | None,
    context: dict[str, Any] | None = None,
) -> None:
    if writer is None:
        return
    try:
        writer.emit(
            ErrorEvent(
                message=str(exc) or type(exc).__name__,
                error_type=error_type,
                recovery_suggestion=suggestion,
                context=context_text(context),
            )
        )
    except OSError as write_exc:  # the event stream itself is broken: say so in the log
        print(f"[vibeml] could not write the error event: {write_exc}", file=sys.stderr)


def _print_error(exc: VibeMLError) -> None:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.recovery_suggestion:
        print(f"hint: {exc.recovery_suggestion}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the config, train; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m vibeml.trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="path of the trainer's JSON config")
    args = parser.parse_args(argv)
    # Library deprecation notices are noise in a job log; they say nothing the user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    try:
        config = load_config(args.config)
    except ConfigurationError as exc:
        events_path = _events_path_from_raw(args.config)
        writer = None
        if events_path:
            try:
                writer = EventWriter(events_path)
            except OSError:
                writer = None
        _emit_error(writer, exc, type(exc).__name__, exc.recovery_suggestion, exc.context)
        _print_error(exc)
        return 2

    try:
        writer = EventWriter(config.events_path)
    except OSError as exc:
        print(f"error: cannot open the event stream {config.events_path}: {exc}", file=sys.stderr)
        return 1

    try:
        from vibeml.trainer.run import train

        train(config, writer)
    except VibeMLError as exc:
        _emit_error(writer, exc, type(exc).__name__, exc.recovery_suggestion, exc.context)
        _print_error(exc)
        return 1
    except KeyboardInterrupt as exc:
        _emit_error(writer, exc, "Interrupted", "Run the job again to resume from its last checkpoint.")
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        _emit_error(writer, exc, type(exc).__name__, _UNEXPECTED_SUGGESTION)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
