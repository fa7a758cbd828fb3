"""The search query language: table tests against the official encoding, and property tests."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibeml.exceptions import ValidationError
from vibeml.vast.query import (
    DEFAULT_FILTERS,
    OFFER_MULTIPLIERS,
    VastQueryError,
    build_search_query,
    parse_order,
    parse_query,
    render_query,
)


def test_facts_worked_example_exactly() -> None:
    body = build_search_query("gpu_name=RTX_4090 num_gpus>=2 reliability>0.99")
    expected = json.loads(
        '{"verified":{"eq":true},"external":{"eq":false},"rentable":{"eq":true},"gpu_name":{"eq":"RTX 4090"},'
        '"num_gpus":{"gte":"2"},"reliability":{"gt":"0.99"},"order":[["score","desc"]],"type":"on-demand",'
        '"allocated_storage":5.0}'
    )
    assert body == expected
    assert list(body) == list(expected)  # same key order on the wire
    assert json.dumps(body, separators=(",", ":")) == json.dumps(expected, separators=(",", ":"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("num_gpus=2", {"num_gpus": {"eq": "2"}}),
        ("num_gpus==2", {"num_gpus": {"eq": "2"}}),
        ("num_gpus!=2", {"num_gpus": {"neq": "2"}}),
        ("num_gpus>2", {"num_gpus": {"gt": "2"}}),
        ("num_gpus>=2", {"num_gpus": {"gte": "2"}}),
        ("num_gpus<2", {"num_gpus": {"lt": "2"}}),
        ("num_gpus<=2", {"num_gpus": {"lte": "2"}}),
        ("num_gpus eq 2", {"num_gpus": {"eq": "2"}}),
        ("num_gpus neq 2", {"num_gpus": {"neq": "2"}}),
        ("num_gpus noteq 2", {"num_gpus": {"neq": "2"}}),
        ("num_gpus not eq 2", {"num_gpus": {"neq": "2"}}),
        ("num_gpus gt 2", {"num_gpus": {"gt": "2"}}),
        ("num_gpus gte 2", {"num_gpus": {"gte": "2"}}),
        ("num_gpus lt 2", {"num_gpus": {"lt": "2"}}),
        ("num_gpus lte 2", {"num_gpus": {"lte": "2"}}),
        ("num_gpus = 2", {"num_gpus": {"eq": "2"}}),
        ("gpu_name in [RTX_4090,RTX_3090]", {"gpu_name": {"in": ["RTX 4090", "RTX 3090"]}}),
        ("gpu_name notin [RTX_4090, A100_SXM4]", {"gpu_name": {"notin": ["RTX 4090", "A100 SXM4"]}}),
        ("gpu_name not in [H100_SXM]", {"gpu_name": {"notin": ["H100 SXM"]}}),
        ("gpu_name nin [H100_SXM]", {"gpu_name": {"notin": ["H100 SXM"]}}),
        ("geolocation in US,CA", {"geolocation": {"in": ["US", "CA"]}}),
        ('gpu_name in ["RTX 4090","L40S"]', {"gpu_name": {"in": ["RTX 4090", "L40S"]}}),
        ('gpu_name="RTX 4090"', {"gpu_name": {"eq": "RTX 4090"}}),
        ('gpu_name="RTX_4090"', {"gpu_name": {"eq": "RTX 4090"}}),
        ("gpu_name=[RTX_4090]", {"gpu_name": {"eq": "RTX 4090"}}),
        ("verified=true", {"verified": {"eq": True}}),
        ("verified=True", {"verified": {"eq": True}}),
        ("external=false", {"external": {"eq": False}}),
        ("verification=null", {"verification": {"eq": None}}),
        ("verification=None", {"verification": {"eq": None}}),
        ("reliability>0.99", {"reliability": {"gt": "0.99"}}),
        ("gpu_ram>=24", {"gpu_ram": {"gte": 24000.0}}),
        ("gpu_ram>=23.5", {"gpu_ram": {"gte": 23500.0}}),
        ("cpu_ram>64", {"cpu_ram": {"gt": 64000.0}}),
        ("gpu_total_ram>=160", {"gpu_total_ram": {"gte": 160000.0}}),
        ("duration>=3", {"duration": {"gte": 259200.0}}),
        ("duration>0.5", {"duration": {"gt": 43200.0}}),
        ("gpu_ram in [24,48]", {"gpu_ram": {"in": [24000.0, 48000.0]}}),
        ("cuda_vers>=12.1", {"cuda_max_good": {"gte": "12.1"}}),
        ("dph<0.5", {"dph_total": {"lt": "0.5"}}),
        ("dlperf_usd>100", {"dlperf_per_dphtotal": {"gt": "100"}}),
        ("flops_usd>3", {"flops_per_dphtotal": {"gt": "3"}}),
        ("driver_version>=535.86.05", {"driver_version": {"gte": 535086005}}),
        ("num_gpus>=2 num_gpus<=4", {"num_gpus": {"gte": "2", "lte": "4"}}),
        ("num_gpus>=2 num_gpus>=4", {"num_gpus": {"gte": "4"}}),
        ("num_gpus>=2 num_gpus=any", {}),
        ("num_gpus>=2 num_gpus=?", {}),
        ("num_gpus>=2 num_gpus=*", {}),
        ("num_gpus>=2 num_gpus=[any]", {}),
        ('gpu_name="any"', {"gpu_name": {"eq": "any"}}),
        ("dph<1 dph=any", {}),
        ("", {}),
        ("   ", {}),
        ("  num_gpus=1   gpu_name=A10  ", {"num_gpus": {"eq": "1"}, "gpu_name": {"eq": "A10"}}),
        ("x>-1", {"x": {"gt": "-1"}}),
        ("a=b=c", {"a": {"eq": "b=c"}}),
    ],
)
def test_parse_table(query: str, expected: dict[str, Any]) -> None:
    assert parse_query(query) == expected


def test_list_of_words_is_joined() -> None:
    assert parse_query(["gpu_name=RTX_4090", "num_gpus>=2"]) == {
        "gpu_name": {"eq": "RTX 4090"},
        "num_gpus": {"gte": "2"},
    }


def test_any_removes_a_default_filter() -> None:
    body = build_search_query("verified=any rentable=any")
    assert "verified" not in body and "rentable" not in body
    assert body["external"] == {"eq": False}


def test_conditions_merge_with_defaults() -> None:
    body = build_search_query("verified=false rentable!=false")
    assert body["verified"] == {"eq": False}
    assert body["rentable"] == {"eq": True, "neq": False}


def test_no_default_drops_defaults() -> None:
    assert build_search_query("num_gpus=1", no_default=True) == {
        "num_gpus": {"eq": "1"},
        "order": [["score", "desc"]],
        "type": "on-demand",
        "allocated_storage": 5.0,
    }


def test_parse_does_not_mutate_the_defaults() -> None:
    build_search_query("verified=false")
    assert DEFAULT_FILTERS["verified"] == {"eq": True}


@pytest.mark.parametrize(
    ("type_", "wire"), [("on-demand", "on-demand"), ("bid", "bid"), ("interruptible", "bid"), ("reserved", "reserved")]
)
def test_types(type_: str, wire: str) -> None:
    assert build_search_query("", type=type_)["type"] == wire


def test_limit_and_storage() -> None:
    body = build_search_query("", limit=10, storage=50)
    assert body["limit"] == 10 and body["allocated_storage"] == 50.0
    assert list(body)[-3:] == ["type", "limit", "allocated_storage"]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("score-", [["score", "desc"]]),
        ("dph_total", [["dph_total", "asc"]]),
        ("dph_total+", [["dph_total", "asc"]]),
        ("num_gpus-,dph+", [["num_gpus", "desc"], ["dph_total", "asc"]]),
        ("num_gpus-, dlperf_usd-", [["num_gpus", "desc"], ["dlperf_per_dphtotal", "desc"]]),
        ("", []),
        (",,", []),
    ],
)
def test_parse_order(order: str, expected: list[list[str]]) -> None:
    assert parse_order(order) == expected


@pytest.mark.parametrize(
    "query",
    [
        "gpu_name",  # no operator
        "num_gpus 2",  # no operator
        "num_gpus>>2",  # unknown operator
        "num_gpus=<2",
        "num_gpus=",  # missing value
        "num_gpus= ",
        'gpu_name=""',  # blank
        "gpu_name=[]",
        "gpu_name in []",
        "gpu_name in [,]",
        '"gpu_name=RTX"',  # not a field
        "=5",
        "gpu_name=RTX_4090 &",
        'gpu_name="RTX 4090',  # unclosed quote
        "gpu_name in [a,b",  # unclosed list
        'gpu_name="a"b',  # glued text
        "gpu_name=[a]b",
        "gpu_ram>=lots",  # multiplier needs a number
        "gpu_ram in [24,big]",
        "gpu_ram>=nan",
        "gpu_ram>=inf",
        "num_gpus>any",  # wildcard needs '='
        "driver_version>=535.86",  # needs three parts
        "num_gpus gte2",
        "num_gpus\t>=2",
    ],
)
def test_errors_are_typed_and_clear(query: str) -> None:
    with pytest.raises(VastQueryError) as info:
        parse_query(query)
    err = info.value
    assert isinstance(err, ValidationError)
    assert err.message and err.recovery_suggestion
    assert err.context["query"] == query.strip()


@pytest.mark.parametrize(
    "kwargs",
    [{"type": "spot"}, {"order": "dph total"}, {"order": "dph;drop"}, {"limit": 0}, {"storage": -1}, {"storage": "x"}],
)
def test_build_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(VastQueryError):
        build_search_query("", **kwargs)


def test_unknown_field_is_sent_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_query("brand_new_field>3") == {"brand_new_field": {"gt": "3"}}
    assert "brand_new_field" in caplog.text


def test_error_points_at_the_position() -> None:
    with pytest.raises(VastQueryError) as info:
        parse_query("num_gpus>=2 gpu_name")
    assert info.value.position == 20 or info.value.position == 12
    assert "gpu_name" in info.value.message


# ------------------------------------------------------------------------------------ properties

_TRICKY = st.text(alphabet=st.sampled_from(list('ab_ 01=<>!"[],.-?*\tnotinqgl')), max_size=40)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), _TRICKY))
def test_parse_never_raises_anything_but_the_typed_error(text: str) -> None:
    try:
        result = parse_query(text)
    except VastQueryError:
        return
    assert isinstance(result, dict)
    json.dumps(result)  # always serialisable


_FIELDS = st.sampled_from(["num_gpus", "gpu_name", "reliability", "geolocation", "dph_total", "cuda_max_good"])
_MULT_FIELDS = st.sampled_from(sorted(OFFER_MULTIPLIERS))
_WORD = st.text(alphabet=st.sampled_from(list("abcXYZ0123456789.-:/")), min_size=1, max_size=8).filter(
    lambda w: w not in ("any",) and w[0] not in "=<>!"
)
_VALUE = st.one_of(
    st.lists(_WORD, min_size=1, max_size=3).map(" ".join),  # spaces travel as '_'
    st.sampled_from([True, False, None]),
)
_SCALAR_OPS = st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"])


@st.composite
def _terms(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    terms: list[tuple[str, str, Any]] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            field = draw(_MULT_FIELDS)
            gb = draw(st.integers(1, 2000)) / draw(st.sampled_from([1, 2, 4, 10]))
            if draw(st.booleans()):
                terms.append((field, draw(st.sampled_from(["in", "notin"])), [gb, gb * 2]))
            else:
                terms.append((field, draw(_SCALAR_OPS), gb))
        else:
            field = draw(_FIELDS)
            if draw(st.booleans()):
                terms.append(
                    (field, draw(st.sampled_from(["in", "notin"])), draw(st.lists(_WORD, min_size=1, max_size=3)))
                )
            else:
                terms.append((field, draw(_SCALAR_OPS), draw(_VALUE)))
    return terms


_SYMBOL = {"eq": "=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _text(field: str, op: str, value: Any, words: bool) -> str:
    def one(v: Any) -> str:
        if v is True:
            return "true"
        if v is False:
            return "false"
        if v is None:
            return "null"
        return str(v).replace(" ", "_")

    if op in ("in", "notin"):
        return f"{field} {op} [{','.join(one(v) for v in value)}]"
    return f"{field} {op} {one(value)}" if words else f"{field}{_SYMBOL[op]}{one(value)}"


def _expected(terms: list[tuple[str, str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, op, value in terms:
        if field in OFFER_MULTIPLIERS:
            mult = OFFER_MULTIPLIERS[field]
            value = [float(v) * mult for v in value] if isinstance(value, list) else float(value) * mult
        out.setdefault(field, {})[op] = value
    return out


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b) and type(a) is type(b)


@settings(max_examples=300)
@given(_terms(), st.booleans())
def test_generated_queries_parse_to_what_they_say(terms: list[tuple[str, str, Any]], words: bool) -> None:
    text = " ".join(_text(f, o, v, words) for f, o, v in terms)
    assert _close(parse_query(text), _expected(terms))


@settings(max_examples=300)
@given(_terms())
def test_render_round_trips(terms: list[tuple[str, str, Any]]) -> None:
    filters = _expected(terms)
    assert _close(parse_query(render_query(filters)), filters)
    text = " ".join(_text(f, o, v, False) for f, o, v in terms)
    assert _close(parse_query(render_query(parse_query(text))), parse_query(text))


@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), st.sampled_from(["", "+", "-"]))))
def test_order_round_trips(parts: list[tuple[str, str]]) -> None:
    text = ",".join(f + d for f, d in parts)
    parsed = parse_order(text)
    aliases = {
        "dph": "dph_total",
        "cuda_vers": "cuda_max_good",
        "dlperf_usd": "dlperf_per_dphtotal",
        "flops_usd": "flops_per_dphtotal",
        "display_active": "gpu_display_active",
    }
    assert parsed == [[aliases.get(f, f), "desc" if d == "-" else "asc"] for f, d in parts]


@pytest.mark.parametrize("value", ["a_b", 'say "hi"', "x]", "any", "true", "=x", " lead", "a,b"])
def test_render_refuses_what_the_language_cannot_say(value: str) -> None:
    with pytest.raises(ValueError):
        render_query({"gpu_name": {"eq": value}})


def test_render_driver_version() -> None:
    assert parse_query(render_query({"driver_version": {"gte": 535086005}})) == {"driver_version": {"gte": 535086005}}
