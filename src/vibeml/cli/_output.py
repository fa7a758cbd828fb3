"""CLI output helpers and the one error boundary. Only typer/rich at import time (fast start)."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import typer

from vibeml.exceptions import ValidationError, VibeMLError

if TYPE_CHECKING:
    from vibeml.client import VibeML
    from vibeml.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

STATE: dict[str, bool] = {"debug": False}

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def to_jsonable(obj: Any) -> Any:
    """pydantic models, lists of them, enums and datetimes → plain JSON values."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, default=str) + "\n")
    sys.stdout.flush()


#: Characters never sent to a terminal raw: C0/C1 controls but newline and tab (escape sequences could move
#: the cursor, retitle the window or hide text) and the bidirectional overrides (they reorder what is shown).
_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}
_UNSAFE.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def printable(text: object, limit: int = 2000) -> str:
    """``text`` safe to print on a terminal: control characters escaped (``\\x1b``), at most ``limit``
    characters (a 100,000-character value is cut, saying so)."""
    out = str(text).translate(_UNSAFE)
    return out if len(out) <= limit else f"{out[:limit]}… ({len(out) - limit} more characters)"


def report_error(exc: VibeMLError, as_json: bool) -> None:
    if as_json:
        emit_json(exc.to_dict())
        return
    from rich.markup import escape

    err = console(stderr=True)
    err.print(f"[bold red]Error:[/] {escape(printable(exc.message))}")
    for key, value in exc.context.items():
        if key in ("fields",):
            continue
        err.print(f"  [dim]{escape(printable(key))}:[/] {escape(printable(value, 500))}")
    if exc.recovery_suggestion:
        err.print(f"[yellow]What to do:[/] {escape(printable(exc.recovery_suggestion))}")


def settings() -> Settings:
    """This run's settings, read from the environment once per command line (kept on the root click context,
    so the next invocation in the same process reads them afresh), when the command first asks: before it
    does anything, under its error boundary. A deprecated variable name is a warning on stderr.

    Raises:
        ConfigurationError: A variable's value is invalid (the error names it).
    """
    import click

    ctx = click.get_current_context(silent=True)
    meta: dict[str, Any] = ctx.find_root().meta if ctx is not None else {}
    if "vibeml.settings" not in meta:
        from vibeml.settings import SettingDeprecationWarning, Settings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SettingDeprecationWarning)
            built = Settings()
        for w in caught:
            if issubclass(w.category, SettingDeprecationWarning):
                from rich.markup import escape

                console(stderr=True).print(f"[yellow]Warning:[/] {escape(printable(w.message))}")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        meta["vibeml.settings"] = built
    return cast("Settings", meta["vibeml.settings"])


def service() -> VibeML:
    """The service over this run's settings."""
    from vibeml.client import VibeML

    return VibeML(settings())


def _invalid_values(exc: Exception) -> VibeMLError | None:
    """A pydantic validation error that escaped a model (values out of range): a clear error, not exit 70."""
    if type(exc).__module__.split(".")[0] not in ("pydantic", "pydantic_core"):
        return None
    from pydantic import ValidationError as PydanticValidationError

    return ValidationError.from_pydantic(exc, "values") if isinstance(exc, PydanticValidationError) else None


def error_boundary(fn: F) -> F:
    """Map ``VibeMLError`` to a message + recovery suggestion + exit code; never a traceback
    (unless ``--debug``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("json_out"))
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except VibeMLError as exc:
            if STATE["debug"]:
                raise
            report_error(exc, as_json)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console(stderr=True).print("[yellow]Interrupted.[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if STATE["debug"]:
                raise
            invalid = _invalid_values(exc)
            if invalid is not None:
                report_error(invalid, as_json)
                raise typer.Exit(invalid.exit_code) from None
            wrapped = VibeMLError(
                f"internal error: {type(exc).__name__}: {exc}",
                recovery_suggestion="Run the command again with --debug for the traceback, and report it.",
            )
            report_error(wrapped, as_json)
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def parse_target_modules(text: str | None) -> list[str] | str | None:
    """`--target-modules q_proj,v_proj` → a list; `all-linear` stays the string; empty → None."""
    if not text:
        return None
    mods = [m.strip() for m in text.split(",") if m.strip()]
    return "all-linear" if mods == ["all-linear"] else mods


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def fmt_money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


STATUS_STYLE = {
    "pending": "dim",
    "provisioning": "cyan",
    "running": "bold cyan",
    "stopping": "yellow",
    "completed": "bold green",
    "failed": "bold red",
    "stopped": "yellow",
}


def parse_column_mapping(value: str | None) -> dict[str, str] | None:
    """``"question=instruction,answer=output"`` → ``{"question": "instruction", "answer": "output"}``."""
    if not value:
        return None
    mapping: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValidationError(
                f"--column-mapping entries look like old=new, not {item!r}",
                {"column_mapping": value},
                "Example: --column-mapping question=instruction,answer=output",
            )
        mapping[source.strip()] = target.strip()
    return mapping or None
