"""The fuzz harness: a corpus of hostile files made on the fly, a bounded runner and a tally per interface.

Each front end (the Typer app, the async Python API, the MCP tools) is driven by hypothesis with hostile
values and those files. Every case must end as a result or a typed error: never exit code 70, a traceback,
an exception that is not a ``VibeMLError``, a hang past ``CASE_BOUND_S``, or a file written outside the
places the case allows. The tally is printed at the end of the run.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st

T = TypeVar("T")

#: Seconds one case may take before it counts as a hang (the slowest honest case is a plan, well under 2 s).
CASE_BOUND_S = 30.0

STATS: dict[str, Counter[str]] = {}


def tally(interface: str, outcome: str) -> None:
    STATS.setdefault(interface, Counter())[outcome] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not STATS:
        return
    terminalreporter.section("fuzz harness")
    for interface, counts in sorted(STATS.items()):
        cases = sum(counts.values())
        bad = {k: counts.get(k, 0) for k in ("internal error", "traceback", "hang", "stray file")}
        terminalreporter.write_line(
            f"{interface}: {cases} cases ({counts.get('ok', 0)} results, {counts.get('typed error', 0)} typed "
            f"errors); {bad['internal error']} internal errors, {bad['traceback']} tracebacks, {bad['hang']} hangs, "
            f"{bad['stray file']} stray files"
        )


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-case")


def bounded(interface: str, fn: Callable[[], T]) -> T:
    """Run one case with the hang bound; a case still running after it fails the test (and is tallied)."""
    future = _POOL.submit(fn)
    try:
        return future.result(timeout=CASE_BOUND_S)
    except concurrent.futures.TimeoutError:
        tally(interface, "hang")
        raise AssertionError(f"{interface}: a case ran past {CASE_BOUND_S:.0f} s") from None


def snapshot(*roots: Path) -> set[Path]:
    found: set[Path] = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            found.update(Path(dirpath) / n for n in (*dirnames, *filenames))
    return found


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Hostile inputs, made here (nothing of them is committed). None is a usable dataset, so a fuzzed launch
    given one must never start a job (``test_no_corpus_file_is_a_usable_dataset`` holds that)."""
    root = tmp_path_factory.mktemp("hostile")
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = root / name
        files[name].write_bytes(data)

    put("binary.csv", b"text\n\xff\xfe\x00\x80bin\n")
    put("latin1.jsonl", '{"text": "caf\xe9"}\n'.encode("latin-1"))
    put("deep.json", b"[" * 50_000 + b"]" * 50_000)
    put("deep.jsonl", b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n")
    put("empty.jsonl", b"")
    put("blank.jsonl", b"\n \n\t\n")
    put("not-json.jsonl", b"{nope\n")
    put("scalar.json", b"42")
    put("no-header.csv", b"")
    put("garbage.parquet", os.urandom(256))
    put("wrong-columns.jsonl", b'{"foo": 1}\n{"bar": 2}\n')
    put("nul.csv", b"\x00\x00\nab\x00c\n")  # a NUL-named column: no format
    put("long-line.jsonl", b'{"text": "' + b"x" * 2_000_000)  # 2 MB, never closed
    put("bom.jsonl", b'\xef\xbb\xbf{"text": "hi"}\n')
    put("ctrl\x1b[31m.jsonl", b'{"foo": 1}\n')
    (root / "dir.jsonl").mkdir()
    files["dir.jsonl"] = root / "dir.jsonl"
    (root / "empty-dir").mkdir()
    files["empty-dir"] = root / "empty-dir"
    files["dangling.jsonl"] = root / "dangling.jsonl"
    files["dangling.jsonl"].symlink_to(root / "nowhere")
    if hasattr(os, "mkfifo"):
        files["fifo.jsonl"] = root / "fifo.jsonl"
        os.mkfifo(files["fifo.jsonl"])
    if Path("/dev/zero").exists():
        files["zero.jsonl"] = root / "zero.jsonl"
        files["zero.jsonl"].symlink_to("/dev/zero")
        files["zero.csv"] = root / "zero.csv"
        files["zero.csv"].symlink_to("/dev/zero")
    return files


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The working directory of the cases: anything that appears in it is a stray file."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


# Values a user (or an assistant) might send, hostile ones first.
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "-",
        "--",
        "\x00",
        "\x1b[2J\x1b]0;owned\x07",
        "\u202egnp.exe",
        "{{7*7}}",
        "${HOME}",
        "$(touch PWNED)",
        "`touch PWNED`",
        "'; DROP TABLE jobs; --",
        "%s%n",
        "../../../../etc/passwd",
        "/etc/shadow",
        "~",
        "a" * 10_000,
        "NaN",
        "inf",
        "-inf",
        "1e400",
        "-1",
        "0",
        "99999999999999999999999",
        "3.5",
        "true",
        "null",
        "[]",
        "{}",
        "vml-",
        "vml-%",
        "vml-_",
        "m/x",
        "Qwen/Qwen2.5-0.5B",
        "H100",
        "aws",
        "local",
        "trl-lora",
        "\n",
        "é" * 300,
    ]
)
NUMBERISH = st.one_of(
    st.sampled_from(
        ["inf", "-inf", "nan", "1e400", "-1", "0", "1", "99999999999999999999999", "2.5", "abc", "", "0x10", "1_000"]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(str),
)
TEXT = st.one_of(HOSTILE_TEXT, st.text(max_size=40))


class Harness:
    """What the fuzz tests share, handed out as the ``fuzz`` fixture (no test imports another test module)."""

    hostile_text = HOSTILE_TEXT
    numberish = NUMBERISH
    text = TEXT
    bounded = staticmethod(bounded)
    tally = staticmethod(tally)
    snapshot = staticmethod(snapshot)


@pytest.fixture
def fuzz() -> Harness:
    return Harness()
