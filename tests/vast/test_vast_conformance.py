"""Wire conformance: the official ``vastai`` SDK and ``vibeml.vast.VastAI`` send the same requests.

Both clients are driven method by method, with the same arguments (``tests/vast/vast_cases.py``), against
one recording loopback server (:class:`vibeml.testing.vast_recorder.RecordingVast`); the test compares each
request's verb, path, query and JSON body. The official SDK (1.9.1, pinned by hash) is not in the lock — its
pins conflict with it (see ``tools/fetch_vastai.py``) — so ``python tools/fetch_vastai.py`` unpacks it into
``.cache/vastai-1.9.1`` (or ``VIBEML_VASTAI_SRC`` points at a copy); without it the official-SDK tests skip.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.vast.vast_cases import case
from vibeml.exceptions import VibeMLError
from vibeml.testing.vast_recorder import RecordedRequest, RecordingVast
from vibeml.vast import AsyncVastAI, VastAI
from vibeml.vast.endpoints import ENDPOINTS, KEY_IN_BODY, NOT_APPLICABLE, SPECIAL

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(os.environ.get("VIBEML_VASTAI_SRC") or ROOT / ".cache" / "vastai-1.9.1")
OFFICIAL_METHODS = 153  # public functions on vastai 1.9.1's VastAI (150 + three team aliases)


def _official() -> Any:
    if not (SOURCE / "vastai" / "sdk.py").is_file():
        pytest.skip(f"the official SDK is not unpacked at {SOURCE}: run `python tools/fetch_vastai.py`")
    if str(SOURCE) not in sys.path:
        sys.path.insert(0, str(SOURCE))
    from vastai.sdk import VastAI as Official  # type: ignore[import-not-found,import-untyped,unused-ignore]

    return Official


def _public(cls: type) -> list[str]:
    return sorted(n for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_"))


def _comparable(name: str, requests: list[RecordedRequest]) -> list[tuple[str, str, str, str]]:
    out = []
    for r in requests:
        body = r.body
        if name in KEY_IN_BODY and isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "api_key"}  # ours sends the key only as a header
        out.append(RecordedRequest(r.method, r.path, r.query, body, r.authorized).key())
    return out


async def _no_wait(seconds: float) -> None:
    return None


def test_every_official_method_exists_with_its_parameters() -> None:
    official = _official()
    names = _public(official)
    assert len(names) == OFFICIAL_METHODS
    ours = set(_public(VastAI))
    assert [n for n in names if n not in ours] == []
    assert [n for n in names if not inspect.iscoroutinefunction(getattr(AsyncVastAI, n, None))] == []
    for name in names:
        theirs = list(inspect.signature(getattr(official, name)).parameters.values())[1:]
        mine = inspect.signature(getattr(VastAI, name)).parameters
        for p in theirs:
            if p.kind is p.VAR_KEYWORD:
                continue  # ours names the keyword arguments the official api layer reads
            assert p.name in mine, f"{name}: no parameter {p.name!r}"
            assert mine[p.name].default == p.default, f"{name}({p.name}=...): default differs"
    table, special, na = set(ENDPOINTS), set(SPECIAL), set(NOT_APPLICABLE)
    assert not table & special and not table & na and not special & na
    assert table | special | na == set(names)
    print(
        f"\nofficial VastAI: {len(names)} methods; ours: {len(ours)} ({len(table)} from the endpoint table, "
        f"{len(special)} written out, {len(na)} not applicable as in the official SDK)"
    )


def test_same_requests_as_the_official_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    official = _official()
    monkeypatch.setattr(time, "time", lambda: 1_796_000_000.0)  # default date windows agree
    monkeypatch.setattr(time, "sleep", lambda s: None)  # the official client's result polls
    names = _public(official)
    names.remove("set_api_key")
    names.append("set_api_key")  # it changes the key: last
    matched: list[str] = []
    differ: list[str] = []
    failed: list[str] = []
    silent: list[str] = []
    async_differ: list[str] = []
    wanted: dict[str, list[tuple[str, str, str, str]]] = {}
    with RecordingVast() as srv:
        srv.pending_price_increases = [
            {"pending_price_increase_id": 71, "contract_id": 4356},
            {"pending_price_increase_id": 72, "contract_id": 4357},
        ]
        srv.templates = [{"id": 81, "hash_id": "hash1", "creator_id": 1}]
        theirs = official(api_key="k-wire", server_url=srv.url, retry=1, raw=True, quiet=True)
        ours = VastAI(api_key="k-wire", server_url=srv.url, retry=1, raw=True, quiet=True, sleep=lambda s: None)
        for name in names:
            if name in NOT_APPLICABLE:
                continue
            args, kwargs = case(name, getattr(official, name))
            try:
                getattr(theirs, name)(*args, **kwargs)
            except Exception:
                pass
            want = _comparable(name, srv.take())
            try:
                getattr(ours, name)(*args, **kwargs)
            except VibeMLError:
                pass
            except Exception as exc:
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
            got = _comparable(name, srv.take())
            wanted[name] = want
            if not want and name != "set_api_key":
                silent.append(name)
            (matched if got == want else differ).append(name)
            if got != want:
                print(f"\n{name}\n  official: {want}\n  ours:     {got}")
        ours.close()

        async def async_pass() -> None:
            async with AsyncVastAI(api_key="k-wire", server_url=srv.url, retry=1, sleep=_no_wait) as aio:
                for name, want in wanted.items():
                    args, kwargs = case(name, getattr(official, name))
                    try:
                        await getattr(aio, name)(*args, **kwargs)
                    except VibeMLError:
                        pass
                    except Exception as exc:
                        failed.append(f"async {name}: {type(exc).__name__}: {exc}")
                    got = _comparable(name, srv.take())
                    if got != want:
                        async_differ.append(name)
                        print(f"\nasync {name}\n  official: {want}\n  ours:     {got}")

        asyncio.run(async_pass())
    print(
        f"\nwire conformance: {len(matched)}/{len(names) - len(NOT_APPLICABLE)} methods send the official SDK's "
        f"requests ({len(NOT_APPLICABLE)} not applicable: {', '.join(sorted(NOT_APPLICABLE))})"
    )
    print(f"async: {len(wanted) - len(async_differ)}/{len(wanted)} methods send the same requests")
    assert failed == []
    assert differ == []
    assert async_differ == []
    assert silent == []  # every case reaches the wire (a match of two empty lists proves nothing)
