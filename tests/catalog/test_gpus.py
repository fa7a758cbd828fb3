"""GPU catalogue: required entries, facts and alias resolution."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vibeml.catalog.gpus import GPUS, list_gpus, normalize_gpu_name, resolve_gpu, try_resolve_gpu
from vibeml.exceptions import ConfigurationError

REQUIRED = [
    "H200",
    "H100",
    "A100-80GB",
    "A100-40GB",
    "L40S",
    "L40",
    "A10G",
    "A10",
    "L4",
    "RTX 4090",
    "RTX 3090",
    "RTX A6000",
    "T4",
    "V100",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_gpus_present_with_sane_facts(name: str) -> None:
    g = GPUS[name]
    assert 10 < g.memory_gib < 150
    assert g.bf16_tflops > 0 and g.memory_bandwidth_gbs > 0 and g.interconnect_gbs > 0
    assert g.bf16 == (float(g.compute_capability) >= 8.0)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("RTX 4090", "RTX 4090"),
        ("RTX4090", "RTX 4090"),
        ("4090", "RTX 4090"),
        ("rtx-4090", "RTX 4090"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("A100-80GB", "A100-80GB"),
        ("A100 80GB SXM4", "A100-80GB"),
        ("a100-sxm4-80gb", "A100-80GB"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("A100", "A100-40GB"),
        ("A100-40GB", "A100-40GB"),
        ("H100", "H100"),
        ("h100-sxm", "H100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("H100:8", "H100"),
        ("8xH100", "H100"),
        ("A10G", "A10G"),
        ("A10", "A10"),
        ("L4", "L4"),
        ("L40", "L40"),
        ("L40S", "L40S"),
        ("Tesla T4", "T4"),
        ("Tesla V100", "V100"),
        ("V100-32GB", "V100-32GB"),
        ("A6000", "RTX A6000"),
        ("RTX_3090", "RTX 3090"),
        ("H200", "H200"),
    ],
)
def test_alias_resolution(alias: str, canonical: str) -> None:
    assert resolve_gpu(alias).name == canonical


def test_similar_names_stay_distinct() -> None:
    assert {resolve_gpu(n).name for n in ("A10", "A10G", "A100", "A100-80GB", "L4", "L40", "L40S")} == {
        "A10",
        "A10G",
        "A100-40GB",
        "A100-80GB",
        "L4",
        "L40",
        "L40S",
    }


def test_unknown_gpu_suggests_close_names() -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_gpu("H1000")
    assert "H100" in err.value.message
    assert try_resolve_gpu("TPU-v5") is None
    assert try_resolve_gpu("") is None


def test_list_is_largest_first() -> None:
    mems = [g.memory_gib for g in list_gpus()]
    assert mems == sorted(mems, reverse=True)


def _mutations(alias: str) -> st.SearchStrategy[str]:
    def mutate(flags: list[bool], sep: str) -> str:
        chars = [c.upper() if f else c.lower() for c, f in zip(alias, flags, strict=False)]
        return "".join(chars).replace(" ", sep).replace("-", sep)

    return st.builds(
        mutate, st.lists(st.booleans(), min_size=len(alias), max_size=len(alias)), st.sampled_from(["", " ", "-", "_"])
    )


@given(
    st.sampled_from([(a, g.name) for g in GPUS.values() for a in (g.name, *g.aliases)]).flatmap(
        lambda pair: st.tuples(_mutations(pair[0]), st.just(pair[1]))
    )
)
def test_any_case_and_separator_resolves(pair: tuple[str, str]) -> None:
    spelled, canonical = pair
    assert resolve_gpu(spelled).name == canonical
    assert normalize_gpu_name(spelled) == normalize_gpu_name(spelled.upper())
