"""Run every ```python block of one markdown document, in order, as written (``python
tests/seed_examples_runner.py DOC.md RESULT.json``); used by ``tests/test_seed_examples.py`` in a subprocess.

The blocks share one namespace, as a reader runs a page in one session (a later block may use a name an
earlier one bound, e.g. ``launch_training``). A block with a top-level ``await`` is compiled as the body of a
coroutine (``PyCF_ALLOW_TOP_LEVEL_AWAIT``: an async function whose names stay in the namespace) and run with
``asyncio.run``. A block stops at its first exception; the next block still runs. For each block the result
records where it is, whether it completed, the exception's type, its classes and a short message, what it
printed, and the type names (never the values) of the names it bound.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import json
import re
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


def extract_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the fence, dedented source)`` for every ```python block, indented ones included."""
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        out.append((line, textwrap.dedent(m.group("body"))))
    return out


def run_block(source: str, filename: str, namespace: dict[str, Any]) -> dict[str, Any]:
    before = {k: id(v) for k, v in namespace.items()}
    printed = io.StringIO()
    result: dict[str, Any] = {"completed": False, "error": None, "mro": [], "message": None, "where": None}
    try:
        code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        with contextlib.redirect_stdout(printed):
            value = eval(code, namespace)
            if inspect.iscoroutine(value):
                asyncio.run(value)
        result["completed"] = True
    except BaseException as exc:
        result["error"] = type(exc).__name__
        result["mro"] = [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__]
        result["message"] = str(exc)[:500]
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        result["where"] = frames[-1].lineno if frames else None
    result["stdout"] = printed.getvalue()[-2000:]
    result["bound"] = {
        k: type(v).__name__
        for k, v in namespace.items()
        if not k.startswith("__") and before.get(k) != id(v) and not inspect.ismodule(v)
    }
    return result


def main(doc: str, out: str) -> int:
    text = Path(doc).read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    results = []
    for index, (line, source) in enumerate(extract_blocks(text)):
        filename = f"{Path(doc).name}:block{index}"
        entry = {"index": index, "line": line, "source": source}
        entry.update(run_block(source, filename, namespace))
        results.append(entry)
        print(f"block {index} (line {line}): {'ok' if entry['completed'] else entry['error']}", file=sys.stderr)
    Path(out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
