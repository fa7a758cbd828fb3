"""One typed contract per boundary, checked on the source: the trainer's event stream.

The event stream is written by one process and read by another, so its shape is the whole contract. These
tests read the code (``ast``) to prove it stays typed: no ``**fields`` or ``dict[str, Any]`` in the
signatures of the module that defines the events or of the fold that reads them, writers hand
``emit`` one event model, and no reader picks an event apart by its ``"event"`` key.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from vibeml.trainer import events as events_module
from vibeml.trainer.events import TrainerEvent

SRC = Path(__file__).resolve().parents[1] / "src" / "vibeml"
#: The contract's own modules: the event models and writer, and the progress fold.
CONTRACT = [SRC / "trainer" / "events.py", SRC / "jobs" / "progress.py"]
#: Every program that writes events (the trainer, its error path, the standalone script template).
WRITERS = [SRC / "trainer" / "run.py", SRC / "trainer" / "__main__.py", SRC / "workflows" / "_standalone.py"]


def _annotations(tree: ast.AST) -> list[tuple[str, ast.expr]]:
    """(where, annotation) for every parameter, return value and class-level field in ``tree``."""
    found: list[tuple[str, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    found.append((f"{node.name}({arg.arg})", arg.annotation))
            if node.returns is not None:
                found.append((f"{node.name} -> ", node.returns))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign):
                    found.append((f"{node.name}.{ast.unparse(item.target)}", item.annotation))
        elif isinstance(node, ast.AnnAssign) or (isinstance(node, ast.Assign) and _is_alias(node)):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            value = node.annotation if isinstance(node, ast.AnnAssign) else node.value
            found.append((ast.unparse(target), value))
    return found


def _is_alias(node: ast.Assign) -> bool:
    """``X = Annotated[...]``: a type alias at module level."""
    value = node.value
    return isinstance(value, ast.Subscript) and ast.unparse(value.value) in ("Annotated", "typing.Annotated")


def _names(annotation: ast.expr) -> set[str]:
    """Every name an annotation mentions (a quoted annotation is read too)."""
    names: set[str] = set()
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                names |= _names(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                continue  # a Literal's text, not a type
    return names


def _loose(annotation: ast.expr) -> bool:
    """``Any`` anywhere in it: ``Any`` itself, ``dict[str, Any]``, ``Iterable[dict[str, Any]]``…"""
    return "Any" in _names(annotation)


@pytest.mark.parametrize("path", CONTRACT, ids=lambda p: p.name)
def test_no_loose_types_in_the_event_contract(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    loose = [(where, ast.unparse(a)) for where, a in _annotations(tree) if _loose(a)]
    assert loose == [], f"{path.name}: untyped event data in {loose}"
    varargs = [
        n.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and (n.args.kwarg or n.args.vararg)
    ]
    assert varargs == [], f"{path.name}: **fields / *args in {varargs}"
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "Any" not in imported


def test_the_checks_catch_the_old_loose_contract() -> None:
    """The checks above fail on the old ``emit(event, **fields) -> dict[str, Any]`` and the old fold."""
    old = ast.parse(
        "def emit(self, event: str, **fields: Any) -> dict[str, Any]: ...\n"
        "def progress_from_events(events: 'Iterable[dict[str, Any]]', alive: bool = True) -> JobProgress: ..."
    )
    assert [where for where, a in _annotations(old) if _loose(a)] == [
        "emit(fields)",
        "emit -> ",
        "progress_from_events(events)",
    ]
    assert not _loose(ast.parse("x: Iterable[TrainerEvent]").body[0].annotation)  # type: ignore[attr-defined]


def test_every_event_field_is_typed() -> None:
    """At run time too: each model of the union, each field, a concrete type (no Any anywhere inside)."""
    members = typing.get_args(typing.get_args(TrainerEvent)[0])
    assert len(members) >= 7
    for model in members:
        assert model.model_config.get("strict") is True and model.model_config.get("allow_inf_nan") is False
        for name, field in model.model_fields.items():
            assert "Any" not in repr(field.annotation), f"{model.__name__}.{name}: {field.annotation!r}"
        assert typing.get_args(model.model_fields["event"].annotation) == (model.model_fields["event"].default,)


@pytest.mark.parametrize("path", WRITERS, ids=lambda p: p.name)
def test_writers_emit_one_event_model(path: Path) -> None:
    """Every ``.emit(...)`` call hands over exactly one event model, built right there: no kind string, no
    keyword fields."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    models = {name for name in events_module.__all__ if name.endswith("Event") and name != "TrainerEvent"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith(".emit")]
    assert calls, f"{path.name} writes no events?"
    for call in calls:
        assert not call.keywords and len(call.args) == 1, ast.unparse(call)
        (arg,) = call.args
        assert isinstance(arg, ast.Call), ast.unparse(call)
        built = arg.func.id if isinstance(arg.func, ast.Name) else ast.unparse(arg.func)
        assert built in models, ast.unparse(call)


def test_no_reader_takes_events_apart_by_key() -> None:
    """Outside the events module, no code reads ``obj["event"]`` or ``obj.get("event")``: readers parse."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "trainer" / "events.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                key = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if key == "event":
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_status_logic_does_not_read_messages() -> None:
    """No backend decides anything from the wording of an error (``"..." in progress.error``)."""
    offenders = []
    for path in sorted((SRC / "backends").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                sides = [node.left, *node.comparators]
                text = [ast.unparse(s) for s in sides]
                if any(t.endswith((".error", ".message")) for t in text[1:]) or (
                    any(t.endswith(".error") for t in text[:1]) and isinstance(sides[1], (ast.Tuple, ast.List))
                ):
                    offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
