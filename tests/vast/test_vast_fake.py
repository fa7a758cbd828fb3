"""The fake Vast.ai server itself, spoken to over raw HTTP: protocol, lifecycle, billing, processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.vast.vast_helpers import SECRET_KEY, wait_until
from vibeml.testing.fake_vast import FakeVast, ManualClock
from vibeml.testing.fake_vast_market import generate_offers, price_offer

AUTH = {"Authorization": f"Bearer {SECRET_KEY}"}
HTTP = httpx.Client(timeout=5)  # one pool for the module: building a client costs ~30 ms


def api(fake: FakeVast, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", AUTH)
    return HTTP.request(method, fake.url + path, json=body, headers=headers, **kwargs)


def search(fake: FakeVast, **body: Any) -> list[dict[str, Any]]:
    resp = api(fake, "POST", "/api/v0/bundles/", body)
    assert resp.status_code == 200, resp.text
    return resp.json()["offers"]


def create(fake: FakeVast, offer_id: int, **body: Any) -> httpx.Response:
    payload = {"client_id": "me", "image": "pytorch/pytorch", "disk": 10, "env": {}, "price": None}
    payload.update(body)
    return api(fake, "PUT", f"/api/v0/asks/{offer_id}/", payload)


def rentable_offer(fake: FakeVast, **filters: Any) -> dict[str, Any]:
    return search(fake, rentable={"eq": True}, order=[["dph_total", "asc"]], limit=1, **filters)[0]


# ------------------------------------------------------------------------------------ market


def test_market_is_seeded_realistic_and_consistent() -> None:
    offers = generate_offers(300, seed=7)
    assert offers == generate_offers(300, seed=7)
    assert offers != generate_offers(300, seed=8)
    assert len({o["id"] for o in offers}) == 300
    names = {o["gpu_name"] for o in offers}
    assert {"RTX 4090", "H100 SXM", "A100 SXM4", "L40S", "RTX 3090"} <= names
    for o in offers:
        assert 0 < o["min_bid"] < o["dph_base"]
        assert o["gpu_total_ram"] == o["gpu_ram"] * o["num_gpus"]
        assert 0.85 < o["reliability"] < 1.0
        priced = price_offer(o, 20.0)
        assert priced["dph_total"] == pytest.approx(o["dph_base"] + o["storage_cost"] * 20 / 720, abs=1e-6)
        assert price_offer(o, 20.0, "bid")["dph_total"] == pytest.approx(
            o["min_bid"] + o["storage_cost"] * 20 / 720, abs=1e-6
        )
    h100 = [o["dph_base"] / o["num_gpus"] for o in offers if o["gpu_name"] == "H100 SXM"]
    assert 1.7 < min(h100) and max(h100) < 2.7
    r4090 = [o["dph_base"] / o["num_gpus"] for o in offers if o["gpu_name"] == "RTX 4090"]
    assert 0.25 < min(r4090) and max(r4090) < 0.7


def test_search_filters_orders_limits(fake: FakeVast) -> None:
    rows = search(
        fake,
        verified={"eq": True},
        external={"eq": False},
        rentable={"eq": True},
        gpu_name={"eq": "RTX 4090"},
        num_gpus={"gte": "2"},
        reliability={"gt": "0.99"},
        order=[["dph_total", "asc"]],
        type="on-demand",
        allocated_storage=5.0,
        limit=500,
    )
    assert rows
    for r in rows:
        assert r["gpu_name"] == "RTX 4090" and r["num_gpus"] >= 2 and r["reliability"] > 0.99
        assert r["verified"] and not r["external"] and r["rentable"]
    prices = [r["dph_total"] for r in rows]
    assert prices == sorted(prices)
    assert len(search(fake, limit=3)) == 3
    assert len(search(fake)) == 64  # default page


def test_search_in_notin_geolocation_and_multi_key_order(fake: FakeVast) -> None:
    rows = search(
        fake,
        gpu_name={"in": ["H100 SXM", "H200"]},
        geolocation={"notin": ["US"]},
        limit=500,
        order=[["num_gpus", "desc"], ["dph_total", "asc"]],
    )
    assert rows and all(r["gpu_name"] in ("H100 SXM", "H200") for r in rows)
    assert not any(r["geolocation"].endswith(", US") for r in rows)
    keys = [(-r["num_gpus"], r["dph_total"]) for r in rows]
    assert keys == sorted(keys)


def test_search_bid_prices_at_min_bid(fake: FakeVast) -> None:
    on_demand = {r["id"]: r for r in search(fake, type="on-demand", limit=500, allocated_storage=10)}
    for r in search(fake, type="bid", limit=500, allocated_storage=10):
        assert r["dph_total"] < on_demand[r["id"]]["dph_total"]
        assert r["dph_total"] == pytest.approx(r["min_bid"] + r["storage_cost"] * 10 / 720, abs=1e-6)


def test_search_get_with_q_and_bad_queries(fake: FakeVast) -> None:
    q = json.dumps({"num_gpus": {"eq": "8"}, "limit": 5})
    resp = api(fake, "GET", "/api/v0/bundles/", params={"q": q})
    assert resp.status_code == 200 and all(r["num_gpus"] == 8 for r in resp.json()["offers"])
    for bad in (
        {"num_gpus": {"gte": "many"}},
        {"num_gpus": {"like": "2"}},
        {"num_gpus": 2},
        {"type": "spot"},
        {"order": "dph"},
        {"limit": "x"},
    ):
        resp = api(fake, "POST", "/api/v0/bundles/", bad)
        assert resp.status_code == 400
        assert resp.json()["success"] is False and resp.json()["error"] == "invalid_args"


# ------------------------------------------------------------------------------------ auth


def test_auth_bearer_query_and_refusal(fake: FakeVast) -> None:
    assert api(fake, "GET", "/api/v0/users/current").status_code == 200
    assert api(fake, "GET", "/api/v0/users/current", headers={}, params={"api_key": SECRET_KEY}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET_KEY}):
        resp = api(fake, "GET", "/api/v0/users/current", headers=headers)
        assert resp.status_code == 401
        assert resp.json() == {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    assert [c.auth for c in fake.calls("user")][:2] == ["bearer", "query"]
    assert api(fake, "GET", "/api/v0/nowhere").status_code == 404


# ------------------------------------------------------------------------------------ create


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"disk": 7}, 400, "invalid_args"),
        ({"disk": "ten"}, 400, "invalid_args"),
        ({"price": 0.0001}, 400, "invalid_price"),
        ({"price": 129}, 400, "invalid_price"),
        ({"label": "x" * 257}, 400, "invalid_args"),
        ({"image": "i" * 1025}, 400, "invalid_args"),
        ({"image": ""}, 400, "invalid_args"),
        ({"onstart": "a" * 4000, "args": ["b" * 97]}, 400, "invalid_args"),
        ({"args": "not-a-list"}, 400, "invalid_args"),
        ({"env": ["A=1"]}, 400, "invalid_args"),
        ({"disk": 100000}, 400, "invalid_args"),
    ],
)
def test_create_validates_body(fake: FakeVast, body: dict[str, Any], status: int, code: str) -> None:
    offer = rentable_offer(fake)
    resp = create(fake, offer["id"], **body)
    assert resp.status_code == status
    assert resp.json()["success"] is False and resp.json()["error"] == code and resp.json()["msg"]
    assert fake.instance_ids() == []


def test_create_limits_are_inclusive(fake: FakeVast) -> None:
    offer = rentable_offer(fake, disk_space={"gte": 8})
    resp = create(fake, offer["id"], disk=8, label="x" * 256, image="i" * 1024, onstart="a" * 4000, args=["b" * 95])
    assert resp.status_code == 200, resp.text


def test_create_unknown_rented_and_bid_below_min(fake: FakeVast) -> None:
    resp = create(fake, 1)
    assert resp.status_code == 404 and resp.json()["error"] == "no_such_ask"
    offer = rentable_offer(fake)
    assert create(fake, offer["id"]).status_code == 200
    again = create(fake, offer["id"])
    assert again.status_code == 404 and again.json()["error"] == "no_such_ask"
    assert create(fake, offer["id"], cancel_unavail=True).status_code == 410
    assert offer["id"] not in {r["id"] for r in search(fake, rentable={"eq": True}, limit=1000)}
    other = rentable_offer(fake)
    low = create(fake, other["id"], price=round(other["min_bid"] * 0.5, 4))
    assert low.status_code == 400 and low.json()["error"] == "invalid_price"


# ------------------------------------------------------------------------------------ lifecycle and billing


def test_lifecycle_and_billing_on_a_manual_clock(make_fake: Callable[..., FakeVast]) -> None:
    clock = ManualClock()
    fake = make_fake(clock=clock, created_delay=10, loading_delay=50, tick_interval=60)
    offer = rentable_offer(fake)
    resp = create(fake, offer["id"], disk=72)
    iid = resp.json()["new_contract"]
    storage_h = offer["storage_cost"] * 72 / 720
    gpu_h = offer["dph_base"]

    assert fake.status(iid) == "created" and fake.accrued_cost(iid) == 0
    clock.advance(10)
    assert fake.status(iid) == "loading"
    clock.advance(3590)  # one hour since creation, not running yet: storage only
    assert fake.status(iid) == "running"
    running_since = 60
    assert fake.accrued_cost(iid) == pytest.approx(storage_h * 1 + gpu_h * (3600 - running_since) / 3600)
    view = api(fake, "GET", f"/api/v0/instances/{iid}/").json()["instances"]
    assert view["dph_total"] == pytest.approx(gpu_h + storage_h, abs=1e-6)
    assert view["start_date"] == pytest.approx(time.time(), abs=5)  # wall time when the fake started

    cost_at_stop = fake.accrued_cost(iid)
    assert api(fake, "PUT", f"/api/v0/instances/{iid}/", {"state": "stopped"}).json()["success"]
    clock.advance(7200)  # stopped: storage keeps billing
    assert fake.status(iid) == "stopped"
    assert fake.accrued_cost(iid) == pytest.approx(cost_at_stop + storage_h * 2)

    assert api(fake, "PUT", f"/api/v0/instances/{iid}/", {"state": "running"}).json()["success"]
    clock.advance(50)
    assert fake.status(iid) == "running"
    clock.advance(1800)
    expected = cost_at_stop + storage_h * (7200 + 50 + 1800) / 3600 + gpu_h * 0.5
    assert fake.accrued_cost(iid) == pytest.approx(expected)

    assert api(fake, "DELETE", f"/api/v0/instances/{iid}/").json() == {"success": True}
    clock.advance(36000)  # destroyed: nothing more
    assert fake.accrued_cost(iid) == pytest.approx(expected)
    assert fake.status(iid) == "destroyed"
    assert api(fake, "GET", f"/api/v0/instances/{iid}/").json() == {"instances": None}
    credit = api(fake, "GET", "/api/v0/users/current").json()["credit"]
    assert credit == pytest.approx(100 - expected, abs=1e-5)


def test_bid_billing_preemption_and_rebid(make_fake: Callable[..., FakeVast]) -> None:
    clock = ManualClock()
    fake = make_fake(clock=clock, created_delay=0, loading_delay=0, tick_interval=60)
    offer = rentable_offer(fake)
    bid = round(offer["min_bid"] * 1.1, 4)
    iid = create(fake, offer["id"], price=bid, disk=8).json()["new_contract"]
    assert fake.status(iid) == "running"
    assert fake.instance(iid)["is_bid"] is True
    clock.advance(3600)
    storage_h = offer["storage_cost"] * 8 / 720
    assert fake.accrued_cost(iid) == pytest.approx(bid + storage_h)

    assert fake.set_min_bid(offer["id"], bid * 2) == [iid]  # outbid
    view = api(fake, "GET", f"/api/v0/instances/{iid}/").json()["instances"]
    assert view["actual_status"] == "stopped" and view["status_msg"] == "outbid"
    assert view["intended_status"] == "running"
    clock.advance(3600)
    assert fake.accrued_cost(iid) == pytest.approx(bid + storage_h * 2)

    resp = api(fake, "PUT", f"/api/v0/instances/bid_price/{iid}/", {"client_id": "me", "price": bid * 2})
    assert resp.json()["success"]
    fake.tick()
    assert fake.status(iid) == "running"
    clock.advance(3600)
    assert fake.accrued_cost(iid) == pytest.approx(bid + bid * 2 + storage_h * 3)


def test_change_bid_on_demand_is_refused(fake: FakeVast) -> None:
    iid = create(fake, rentable_offer(fake)["id"]).json()["new_contract"]
    resp = api(fake, "PUT", f"/api/v0/instances/bid_price/{iid}/", {"client_id": "me", "price": 1.0})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_args"
    resp = api(fake, "PUT", f"/api/v0/instances/bid_price/{iid}/", {"client_id": "me", "price": 500})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_price"


def test_never_start_and_preempt_knobs(fake: FakeVast) -> None:
    fake.faults.never_start(1)
    stuck = create(fake, rentable_offer(fake)["id"]).json()["new_contract"]
    fine = create(fake, rentable_offer(fake)["id"]).json()["new_contract"]
    fake.wait_for_status(fine, "running")
    time.sleep(0.1)
    assert fake.status(stuck) == "loading"
    fake.preempt(fine, "host maintenance")
    assert fake.instance(fine)["status_msg"] == "host maintenance"


# ------------------------------------------------------------------------------------ processes


def test_onstart_runs_as_a_real_process_with_the_container_env(fake: FakeVast) -> None:
    script = 'echo "id=$CONTAINER_ID key=${#CONTAINER_API_KEY} token=$MY_TOKEN"; pwd; echo oops >&2; exit 3'
    iid = create(fake, rentable_offer(fake)["id"], onstart=script, env={"MY_TOKEN": "t0k", "-p 8080:8080": "1"}).json()[
        "new_contract"
    ]
    fake.wait_for_status(iid, "exited")
    view = fake.instance(iid)
    assert view["exit_code"] == 3 and "code 3" in view["status_msg"]
    log = (fake.workdir(iid) / "onstart.log").read_text()
    assert f"id={iid} key=48 token=t0k" in log
    assert str(fake.workdir(iid)) in log and "oops" in log
    url = api(fake, "PUT", f"/api/v0/instances/request_logs/{iid}/", {"tail": "2"}).json()["result_url"]
    wait_until(lambda: HTTP.get(url).status_code == 200)
    assert HTTP.get(url).text.splitlines() == [str(fake.workdir(iid)), "oops"]  # unauthenticated, tail 2


def test_log_url_is_not_ready_at_once(make_fake: Callable[..., FakeVast]) -> None:
    fake = make_fake(logs_delay=0.3)
    iid = create(fake, rentable_offer(fake)["id"], onstart="echo hi").json()["new_contract"]
    url = api(fake, "PUT", f"/api/v0/instances/request_logs/{iid}/", {"tail": "10"}).json()["result_url"]
    assert HTTP.get(url).status_code == 404
    assert HTTP.get(fake.url + "/logs/nope.log").status_code == 404


def test_destroy_kills_the_process_group(fake: FakeVast) -> None:
    iid = create(fake, rentable_offer(fake)["id"], onstart="sleep 60 & echo $! > child.pid; wait").json()[
        "new_contract"
    ]
    fake.wait_for_status(iid, "running")
    pidfile = fake.workdir(iid) / "child.pid"
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    child = int(pidfile.read_text())
    proc = fake.process(iid)
    assert proc.poll() is None
    assert api(fake, "DELETE", f"/api/v0/instances/{iid}/").json()["success"]
    wait_until(lambda: proc.poll() is not None)
    wait_until(lambda: not _alive(child))
    assert api(fake, "DELETE", f"/api/v0/instances/{iid}/").status_code == 404


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped by its (dead) parent's reaper counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_stop_kills_and_start_reruns_onstart(fake: FakeVast) -> None:
    iid = create(fake, rentable_offer(fake)["id"], onstart="echo run >> runs.txt; sleep 60").json()["new_contract"]
    marks = fake.workdir(iid) / "runs.txt"

    def runs() -> int:
        return marks.read_text().count("run") if marks.exists() else 0

    wait_until(lambda: runs() == 1)
    proc = fake.process(iid)
    api(fake, "PUT", f"/api/v0/instances/{iid}/", {"state": "stopped"})
    wait_until(lambda: proc.poll() is not None)
    api(fake, "PUT", f"/api/v0/instances/{iid}/", {"state": "running"})
    wait_until(lambda: runs() == 2)
    api(fake, "PUT", f"/api/v0/instances/reboot/{iid}/", {})
    wait_until(lambda: runs() == 3)
    assert fake.status(iid) == "running"


def test_instance_can_destroy_itself_with_its_container_key(fake: FakeVast) -> None:
    code = (
        "import os, urllib.request; "
        "r = urllib.request.Request(os.environ['FAKE_URL'] + '/api/v0/instances/' + os.environ['CONTAINER_ID'] + '/', "
        "method='DELETE', headers={'Authorization': 'Bearer ' + os.environ['CONTAINER_API_KEY']}); "
        "print(urllib.request.urlopen(r).read().decode())"
    )
    script = f'echo training; "{sys.executable}" -c "{code}"; sleep 30'
    iid = create(fake, rentable_offer(fake)["id"], onstart=script, env={"FAKE_URL": fake.url}).json()["new_contract"]
    wait_until(lambda: fake.status(iid) == "destroyed", timeout=10)
    assert "training" in (fake.workdir(iid) / "onstart.log").read_text()


# ------------------------------------------------------------------------------------ listing, keys, user


def test_v1_pagination_and_v0_listing(make_fake: Callable[..., FakeVast]) -> None:
    fake = make_fake(page_size=4)
    offers = search(fake, rentable={"eq": True}, limit=10)
    ids = [create(fake, o["id"], label=f"n{i}").json()["new_contract"] for i, o in enumerate(offers)]
    seen: list[int] = []
    token = None
    pages = 0
    while True:
        params = {"after_token": token} if token else {}
        data = api(fake, "GET", "/api/v1/instances/", params=params).json()
        seen += [r["id"] for r in data["instances"]]
        pages += 1
        token = data["next_token"]
        if token is None:
            break
    assert seen == ids and pages == 3
    assert [r["id"] for r in api(fake, "GET", "/api/v0/instances", params={"owner": "me"}).json()["instances"]] == ids
    assert api(fake, "GET", "/api/v1/instances/", params={"after_token": "garbage!"}).status_code == 400


def test_ssh_keys_attach_and_user(fake: FakeVast) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKey user@host"
    created = api(fake, "POST", "/api/v0/ssh/", {"ssh_key": key}).json()
    assert created["success"] and created["key"] == key
    assert api(fake, "POST", "/api/v0/ssh/", {"ssh_key": "-----BEGIN PRIVATE KEY-----"}).status_code == 400
    assert [k["key"] for k in api(fake, "GET", "/api/v0/ssh/").json()] == [key]
    iid = create(fake, rentable_offer(fake)["id"]).json()["new_contract"]
    assert api(fake, "POST", f"/api/v0/instances/{iid}/ssh/", {"ssh_key": key}).json()["success"]
    assert api(fake, "POST", "/api/v0/instances/1/ssh/", {"ssh_key": key}).status_code == 404
    assert api(fake, "DELETE", f"/api/v0/ssh/{created['id']}/").json()["success"]
    assert api(fake, "DELETE", f"/api/v0/ssh/{created['id']}/").status_code == 404
    user = api(fake, "GET", "/api/v0/users/current").json()
    assert {"id", "email", "balance", "credit"} <= set(user)


def test_manage_rejects_bad_bodies(fake: FakeVast) -> None:
    iid = create(fake, rentable_offer(fake)["id"]).json()["new_contract"]
    assert api(fake, "PUT", f"/api/v0/instances/{iid}/", {"state": "paused"}).status_code == 400
    assert api(fake, "PUT", f"/api/v0/instances/{iid}/", {}).status_code == 400
    assert api(fake, "PUT", f"/api/v0/instances/{iid}/", {"label": "y" * 300}).status_code == 400
    assert api(fake, "PUT", "/api/v0/instances/1/", {"label": "x"}).status_code == 404
    bad = HTTP.put(fake.url + f"/api/v0/instances/{iid}/", content=b"{nope", headers=AUTH)
    assert bad.status_code == 400


def test_command_line_server() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vibeml.testing.fake_vast", "--port", "0", "--offers", "20", "--api-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        resp = HTTP.post(url + "/api/v0/bundles/", json={"limit": 100}, headers={"Authorization": "Bearer k"})
        assert len(resp.json()["offers"]) == 20
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
