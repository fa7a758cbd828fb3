"""Fuzz the Typer app: every command family with hostile values and the hostile-file corpus."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vibeml.cli.main import app

runner = CliRunner()
OUT = "allowed"  # the one folder of the sandbox a case may write to (script -o, sky export -o)


def _commands(corpus: dict[str, Path], fuzz: Any) -> st.SearchStrategy[list[str]]:
    text, numberish, hostile = fuzz.text, fuzz.numberish, fuzz.hostile_text
    paths = st.sampled_from(sorted(str(p) for p in corpus.values()))
    data = st.one_of(paths, text)
    outs = st.sampled_from(
        [
            "-",
            f"{OUT}/train.py",
            f"{OUT}/deep/er/task.yaml",
            OUT,
            "/dev/full",
            "/dev/null",
            str(next(iter(corpus.values())).parent),
            f"{OUT}/\x1b[31m.py",
        ]
    )
    model = st.one_of(st.sampled_from(["Qwen/Qwen2.5-0.5B", "meta-llama/Llama-3.1-8B"]), text)

    def opts(names: list[str], values: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[list[str]]:
        return st.lists(st.tuples(st.sampled_from(names), numberish if values is None else values), max_size=4).map(
            lambda pairs: [x for pair in pairs for x in pair]
        )

    shape = [
        "--batch-size",
        "--max-seq-length",
        "--lora-r",
        "--lora-dropout",
        "--max-steps",
        "--epochs",
        "--dataset-rows",
        "--mean-tokens",
        "--grad-accum",
    ]
    return st.one_of(
        st.tuples(st.just(["validate", "dataset"]), data, opts(["--max-seq-length"])).map(
            lambda t: [*t[0], t[1], *t[2]]
        ),
        st.tuples(
            st.just(["estimate", "--model"]), model, opts([*shape, "--gpu-count"]), opts(["--gpu", "--cloud"], text)
        ).map(lambda t: [*t[0], t[1], *t[2], *t[3]]),
        st.tuples(st.just(["plan", "--model"]), model, opts([*shape, "--max-cost", "--max-hours", "--top"])).map(
            lambda t: [*t[0], t[1], *t[2]]
        ),
        st.tuples(st.just(["jobs", "--limit"]), numberish).map(lambda t: [*t[0], t[1]]),
        st.tuples(st.sampled_from(["status", "logs", "stop"]), text).map(list),  # two strings: a flat list
        st.tuples(
            st.just(["script", "-m"]),
            model,
            st.just("-d"),
            data,
            st.just("-o"),
            outs,
            st.sampled_from([[], ["--force"]]),
            opts(["--max-steps", "--lora-r", "--save-steps"]),
        ).map(lambda t: [*t[0], t[1], t[2], t[3], t[4], t[5], *t[6], *t[7]]),
        st.tuples(
            st.just(["sky", "export", "--model"]),
            model,
            st.just("--dataset"),
            data,
            opts(["--max-steps", "--nodes", "--gpu-count", "--max-cost"]),
            opts(["--cloud", "--gpu"], text),
            st.sampled_from([[], ["-o", f"{OUT}/task.yaml"], ["-o", OUT], ["-o", "/dev/full"]]),
        ).map(lambda t: [*t[0], t[1], t[2], t[3], *t[4], *t[5], *t[6]]),
        # Launches get only corpus files as data: none of them is usable, so nothing may ever start.
        st.tuples(
            st.just(["launch", "--model"]),
            model,
            st.just("--dataset"),
            paths,
            opts(["--max-steps", "--max-cost", "--lr", "--batch-size", "--gpu-count"]),
            opts(["--backend", "--workflow", "--cloud", "--name", "--dataset-split"], text),
        ).map(lambda t: [*t[0], t[1], t[2], t[3], *t[4], *t[5]]),
        st.tuples(st.just(["budget", "set"]), opts(["--monthly", "--per-job", "--warn-at"])).map(
            lambda t: [*t[0], *t[1]]
        ),
        st.tuples(st.just(["config", "set"]), hostile, text).map(lambda t: [*t[0], t[1], t[2]]),
        st.tuples(
            st.just(["mcp", "--http"]),
            st.sampled_from(
                ["abc", ":", ":0", ":65536", "127.0.0.1:99999", "[::1]:", "h:-1", "a b:80", "{{7*7}}:80", "x" * 300]
            ),
        ).map(lambda t: [*t[0], t[1]]),
        st.lists(text, max_size=3),  # whatever else
    )


@pytest.mark.timeout(600)
def test_fuzz_the_cli(corpus: dict[str, Path], sandbox: Path, vibeml_env: Path, fuzz: Any) -> None:
    (sandbox / OUT).mkdir()
    corpus_dir = next(iter(corpus.values())).parent
    watched = fuzz.snapshot(corpus_dir)
    devices = {p: os.stat(p).st_rdev for p in ("/dev/full", "/dev/null") if os.path.exists(p)}

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(args=_commands(corpus, fuzz), as_json=st.booleans())
    def case(args: list[str], as_json: bool) -> None:
        if as_json and args and args[0] in ("validate", "estimate", "plan", "jobs", "status", "script", "launch"):
            args = [*args, "--json"]
        before = fuzz.snapshot(sandbox) - fuzz.snapshot(sandbox / OUT)
        result = fuzz.bounded("cli", lambda: runner.invoke(app, args))
        out = (result.stdout or "") + (result.stderr or "")
        if result.exit_code == 70 or "internal error" in out:
            fuzz.tally("cli", "internal error")
            raise AssertionError(f"exit 70 for {args!r}:\n{out[-2000:]}")
        if "Traceback" in out or (result.exception is not None and not isinstance(result.exception, SystemExit)):
            fuzz.tally("cli", "traceback")
            raise AssertionError(f"uncaught {result.exception!r} for {args!r}:\n{out[-2000:]}")
        stray = (fuzz.snapshot(sandbox) - fuzz.snapshot(sandbox / OUT)) - before
        if stray or fuzz.snapshot(corpus_dir) != watched:
            fuzz.tally("cli", "stray file")
            raise AssertionError(f"{args!r} wrote outside {OUT}/: {sorted(map(str, stray))}")
        for path, rdev in devices.items():
            assert stat.S_ISCHR(os.stat(path).st_mode) and os.stat(path).st_rdev == rdev, path
        assert not list((vibeml_env / "jobs").glob("vml-*")), f"{args!r} started a job"
        fuzz.tally("cli", "ok" if result.exit_code == 0 else "typed error")

    case()


def test_no_corpus_file_is_a_usable_dataset(corpus: dict[str, Path]) -> None:
    from vibeml.exceptions import VibeMLError
    from vibeml.validation.dataset import DatasetValidator

    for path in corpus.values():
        with pytest.raises(VibeMLError):
            DatasetValidator().validate_dataset(str(path))
