"""Fuzz the async Python API (the seed's functions) with hostile values of every type."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vibeml
from vibeml.exceptions import VibeMLError
from vibeml.models import Hyperparameters, TrainingRequest

FIELDS = [
    *sorted({*TrainingRequest.model_fields, *Hyperparameters.model_fields} - {"model", "dataset"}),
    "nope",
    "settings",
    "__class__",
    "demo",
]


def _values(fuzz: Any) -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        fuzz.text,
        st.binary(max_size=8),
        st.just(object()),
        st.just(float("inf")),
    )
    return st.recursive(
        scalar,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(fuzz.text, inner, max_size=3)),
        max_leaves=6,
    )


@pytest.mark.timeout(600)
def test_fuzz_the_python_api(corpus: dict[str, Path], sandbox: Path, vibeml_env: Path, fuzz: Any) -> None:
    values = _values(fuzz)
    paths = st.sampled_from(sorted(str(p) for p in corpus.values()))
    calls = st.one_of(
        # Only corpus files as data (none is usable) and never demo without a model: nothing may start.
        st.tuples(
            st.just("launch_training"),
            st.fixed_dictionaries(
                {"model": st.one_of(fuzz.text, values), "dataset": paths}, optional={name: values for name in FIELDS}
            ),
        ),
        st.tuples(st.just("get_job_status"), st.fixed_dictionaries({"job_id": st.one_of(fuzz.text, values)})),
        st.tuples(
            st.just("get_job_logs"),
            st.fixed_dictionaries({"job_id": st.one_of(fuzz.text, values)}, optional={"tail": values}),
        ),
        st.tuples(
            st.just("stop_job"),
            st.fixed_dictionaries({"job_id": st.one_of(fuzz.text, values)}, optional={"grace_seconds": values}),
        ),
        st.tuples(st.just("list_jobs"), st.fixed_dictionaries({}, optional={"limit": values, "settings": values})),
    )

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(call=calls)
    def case(call: tuple[str, dict[str, Any]]) -> None:
        name, kwargs = call
        if name == "launch_training" and kwargs.get("demo") is True and kwargs.get("model") is None:
            kwargs["model"] = "m/x"  # demo without a model would train the bundled model for real

        def run() -> Any:
            return asyncio.run(getattr(vibeml, name)(**kwargs))

        try:
            fuzz.bounded("api", run)
        except VibeMLError as exc:
            assert exc.message and exc.recovery_suggestion, f"{name}: {exc!r} has no recovery suggestion"
            fuzz.tally("api", "typed error")
        except AssertionError:
            raise
        except Exception as exc:  # anything else reaches a user of the API as a crash
            fuzz.tally("api", "internal error")
            raise AssertionError(f"{name}(**{kwargs!r}) raised {type(exc).__name__}: {exc}") from exc
        else:
            assert name != "launch_training", f"launch_training(**{kwargs!r}) started a job"
            fuzz.tally("api", "ok")
        assert not list((vibeml_env / "jobs").glob("vml-*")), f"{name}(**{kwargs!r}) started a job"
        assert not list(sandbox.iterdir()), f"{name} wrote into the working directory"

    case()
