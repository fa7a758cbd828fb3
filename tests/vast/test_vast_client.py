"""``VastAI`` against the fake Vast.ai over real HTTP: every method, output modes, key lookup."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.vast.vast_helpers import SECRET_KEY, fast_sleep, first_offer
from vibeml.exceptions import CloudProviderError, CredentialError, ValidationError
from vibeml.settings import Settings
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import (
    Instance,
    InstanceStatus,
    Offer,
    VastAI,
    VastAPIError,
    VastAuthError,
    VastNotFoundError,
    VastQueryError,
)

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests user@host"


# ------------------------------------------------------------------------------------ search


def test_search_offers_filters_and_orders(client: VastAI) -> None:
    offers = client.search_offers("gpu_name=RTX_4090 num_gpus>=2 reliability>0.99", order="dph_total", limit=20)
    assert offers
    assert all(o["gpu_name"] == "RTX 4090" and o["num_gpus"] >= 2 and o["reliability"] > 0.99 for o in offers)
    assert [o["dph_total"] for o in offers] == sorted(o["dph_total"] for o in offers)
    typed = [Offer.model_validate(o) for o in offers]
    assert typed[0].gpu_ram_gb > 20 and typed[0].storage_dph(720) == pytest.approx(typed[0].storage_cost)


def test_search_offers_units_aliases_and_types(client: VastAI) -> None:
    big = client.search_offers("gpu_ram>=80 dph<3", order="score-", limit=100)
    assert big and all(o["gpu_ram"] >= 80_000 and o["dph_total"] < 3 for o in big)
    scores = [o["score"] for o in big]
    assert scores == sorted(scores, reverse=True)
    bids = client.search_offers("num_gpus=1", type="interruptible", storage=20, limit=50)
    assert bids and all(o["is_bid"] and o["dph_total"] < o["dph_base"] for o in bids)
    everything = client.search_offers("verified=any rentable=any external=any", limit=1000)
    assert len(everything) == 300
    assert len(client.search_offers("", no_default=True, limit=1000)) == 300


def test_search_offers_bad_query_sends_nothing(client: VastAI, fake: FakeVast) -> None:
    with pytest.raises(VastQueryError):
        client.search_offers("gpu_name")
    assert fake.count("search") == 0


# ------------------------------------------------------------------------------------ instances


def test_instance_lifecycle_through_every_method(client: VastAI, fake: FakeVast) -> None:
    offer = first_offer(client)
    created = client.create_instance(
        offer["id"],
        image="pytorch/pytorch:2.5.1",
        disk=16,
        label="job-1",
        env={"A": "1"},
        onstart_cmd="echo started; sleep 30",
    )
    assert created["success"] is True and created["label"] == "job-1" and "recovered" not in created
    iid = created["new_contract"]
    fake.wait_for_status(iid, "running")

    shown = client.show_instance(iid)
    inst = Instance.model_validate(shown)
    assert inst.status is InstanceStatus.RUNNING and inst.is_running and inst.label == "job-1"
    assert inst.extra_env == [["A", "1"]] and inst.image_uuid == "pytorch/pytorch:2.5.1"
    assert [i["id"] for i in client.show_instances()] == [iid]

    assert client.label_instance(iid, "job-1-renamed") == {"success": True}
    assert client.show_instance(iid)["label"] == "job-1-renamed"
    assert client.stop_instance(iid)["success"]
    assert client.show_instance(iid)["actual_status"] == "stopped"
    assert client.start_instance(iid)["success"]
    fake.wait_for_status(iid, "running")
    assert client.reboot_instance(iid)["success"]
    fake.wait_for_status(iid, "running")
    assert "started" in client.logs(iid)

    assert client.destroy_instance(iid) == {"success": True}
    with pytest.raises(VastNotFoundError) as info:
        client.show_instance(iid)
    assert info.value.status == 404
    with pytest.raises(VastNotFoundError):
        client.destroy_instance(iid)
    assert client.show_instances() == []


def test_create_without_a_label_sends_none_and_parses_env_strings(client: VastAI, fake: FakeVast) -> None:
    """Like the official SDK: no label given, none sent (``"label": null``), none invented (cleanup must
    never mistake a user's own instance for VibeML's)."""
    a = client.create_instance(first_offer(client)["id"], image="img", env="-e HF_HOME=/data -p 8080:8080")
    b = client.create_instance(first_offer(client)["id"], image="img")
    assert "label" not in a and "label" not in b
    assert not client.show_instance(a["new_contract"]).get("label")
    assert not client.show_instance(b["new_contract"]).get("label")
    view = client.show_instance(a["new_contract"])
    assert ["HF_HOME", "/data"] in view["extra_env"] and ["-p 8080:8080", "1"] in view["extra_env"]


def test_create_with_args_runtype(client: VastAI, fake: FakeVast) -> None:
    iid = client.create_instance(first_offer(client)["id"], image="img", runtype="args", args=["echo", "from-args"])[
        "new_contract"
    ]
    fake.wait_for_status(iid, "exited")
    assert "from-args" in client.logs(iid)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"disk": 7},
        {"disk": True},
        {"label": "x" * 257},
        {"image": ""},
        {"image": "i" * 1025},
        {"price": 0.0001},
        {"price": 200.0},
        {"onstart_cmd": "a" * 4000, "args": ["b" * 100]},
    ],
)
def test_create_validates_before_sending(client: VastAI, fake: FakeVast, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"image": "img"}
    args.update(kwargs)
    with pytest.raises(ValidationError):
        client.create_instance(123, **args)
    assert fake.count("create") == 0


@pytest.mark.parametrize("offer", [..., "123", 12.5, True, -1, None])
def test_create_with_the_sdks_optional_image_checks_before_sending(client: VastAI, fake: FakeVast, offer: Any) -> None:
    # The official SDK's signature: create_instance(id, image=None, disk=10, ...). An offer id that is not
    # one, or no image, is a typed error before any request (never a TypeError, never a rented machine).
    with pytest.raises(ValidationError):
        client.create_instance(offer, image="img")
    with pytest.raises(ValidationError, match="an image is needed"):
        client.create_instance(123)
    assert fake.count("create") == 0


def test_create_errors_from_the_server(client: VastAI) -> None:
    with pytest.raises(VastNotFoundError) as info:
        client.create_instance(1, image="img")
    assert (
        info.value.error == "no_such_ask"
        and info.value.status == 404
        and "search again" in str(info.value.recovery_suggestion)
    )
    offer = first_offer(client, type="bid")
    with pytest.raises(VastAPIError) as bad:
        client.create_instance(offer["id"], image="img", price=round(offer["min_bid"] / 2, 4))
    assert bad.value.error == "invalid_price" and bad.value.msg and not bad.value.retryable
    assert isinstance(bad.value, CloudProviderError) and bad.value.exit_code == 8


def test_bid_instance_and_change_bid(client: VastAI, fake: FakeVast) -> None:
    offer = first_offer(client, type="bid")
    iid = client.create_instance(offer["id"], image="img", price=offer["min_bid"])["new_contract"]
    fake.wait_for_status(iid, "running")
    fake.set_min_bid(offer["id"], offer["min_bid"] * 2)
    assert client.show_instance(iid)["actual_status"] == "stopped"
    assert client.change_bid(iid, round(offer["min_bid"] * 2.5, 4))["success"]
    fake.wait_for_status(iid, "running")
    with pytest.raises(ValidationError):
        client.change_bid(iid, 0)


def test_show_instances_follows_pagination(make_fake: Callable[..., FakeVast]) -> None:
    fake = make_fake()
    with VastAI(api_key=SECRET_KEY, server_url=fake.url, sleep=fast_sleep) as client:
        offers = client.search_offers("", limit=130)
        ids = [client.create_instance(o["id"], image="img")["new_contract"] for o in offers[:130]]
        assert [i["id"] for i in client.show_instances()] == ids
        assert fake.count("show_instances") == 6  # pages of 25, as the official SDK asks: 5 × 25 + 5


def test_show_instances_falls_back_to_v0() -> None:
    rows = [{"id": 1, "label": "a"}]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/v1/"):
            return httpx.Response(404, json={"detail": "Not Found"})
        assert request.url.params["owner"] == "me"
        return httpx.Response(200, json={"instances": rows})

    with VastAI(api_key=SECRET_KEY, server_url="https://vast.test", transport=httpx.MockTransport(handler)) as c:
        assert c.show_instances() == rows


def test_logs_polls_until_ready_and_times_out(make_fake: Callable[..., FakeVast]) -> None:
    fake = make_fake(logs_delay=0.1)
    with VastAI(api_key=SECRET_KEY, server_url=fake.url, sleep=fast_sleep) as client:
        iid = client.create_instance(first_offer(client)["id"], image="img", onstart_cmd="seq 1 50")["new_contract"]
        fake.wait_for_status(iid, "exited")
        assert client.logs(iid, tail=3, poll_interval=0.01).splitlines() == ["48", "49", "50"]
        assert all(c.auth == "none" for c in fake.calls("logs_result"))
        assert fake.count("logs_result") >= 2
        fake.state.logs_delay = 60
        with pytest.raises(VastAPIError) as info:
            client.logs(iid, timeout=0.05, poll_interval=0.01)
        assert info.value.error == "timeout"


# ------------------------------------------------------------------------------------ account


def test_user_and_ssh_keys(client: VastAI, fake: FakeVast) -> None:
    user = client.show_user()
    assert user["email"] and "credit" in user
    assert "api_key" not in user and SECRET_KEY not in json.dumps(user)
    assert client.show_ssh_keys() == []
    created = client.create_ssh_key(PUBLIC_KEY + "\n")
    assert created["success"] and created["key"] == PUBLIC_KEY
    assert [k["key"] for k in client.show_ssh_keys()] == [PUBLIC_KEY]
    iid = client.create_instance(first_offer(client)["id"], image="img")["new_contract"]
    assert client.attach_ssh(iid, PUBLIC_KEY)["success"]
    assert client.delete_ssh_key(created["id"])["success"]
    assert client.show_ssh_keys() == []
    with pytest.raises(ValidationError) as info:
        client.create_ssh_key("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END")
    assert "b3BlbnNzaC1rZXk" not in str(info.value)
    with pytest.raises(ValidationError):
        client.attach_ssh(iid, "not a key")


# ------------------------------------------------------------------------------------ output modes


def test_raw_false_prints_tables_and_returns_data(
    make_client: Callable[..., VastAI], capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(raw=False)
    offers = client.search_offers("gpu_name=H100_SXM", limit=3)
    out = capsys.readouterr().out
    assert offers and "H100" in out and "$/h" in out and str(offers[0]["id"]) in out
    client.show_user()
    assert "credit" in capsys.readouterr().out
    quiet = make_client(raw=False, quiet=True)
    assert quiet.search_offers("", limit=2)
    assert capsys.readouterr().out == ""


def test_curl_mode_sends_nothing(
    make_client: Callable[..., VastAI], fake: FakeVast, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(curl=True)
    cmd = client.create_instance(5, image="img", label="x", onstart_cmd="echo 'hi'")
    assert isinstance(cmd, str) and cmd.startswith("curl -sS -X PUT")
    assert '"Authorization: Bearer $VAST_API_KEY"' in cmd and "/api/v0/asks/5/" in cmd
    assert capsys.readouterr().out.strip() == cmd
    body = json.loads(cmd.split(" -d ", 1)[1].strip("'").replace("'\"'\"'", "'"))
    assert body["label"] == "x" and body["onstart"] == "echo 'hi'" and body["client_id"] == "me"
    unlabelled = client.create_instance(5, image="img")
    capsys.readouterr()
    assert isinstance(unlabelled, str) and json.loads(unlabelled.split(" -d ", 1)[1].strip("'"))["label"] is None
    assert client.search_offers("num_gpus=1").startswith("curl -sS -X POST")  # type: ignore[attr-defined]
    assert "owner=me" in client.show_instance(7)  # type: ignore[operator]
    assert "request_logs/7/" in client.logs(7)
    assert fake.calls() == []


def test_curl_mode_needs_no_key(fake: FakeVast) -> None:
    client = VastAI(server_url=fake.url, curl=True, quiet=True)
    assert "$VAST_API_KEY" in client.show_user()  # type: ignore[operator]
    assert not client.has_api_key


def test_library_never_exits(client: VastAI) -> None:
    with pytest.raises(VastNotFoundError):
        client.show_instance(1)  # an error is raised, never SystemExit


# ------------------------------------------------------------------------------------ key lookup


def _client(**kwargs: Any) -> VastAI:
    return VastAI(server_url="https://vast.test", **kwargs)


def _key_of(client: VastAI) -> str:
    assert client._core.key is not None
    return client._core.key.get_secret_value()


def test_key_lookup_order(isolated_home: Path, tmp_path: Path) -> None:
    """As VibeML builds its client (``VastAI.from_settings``): argument, VAST_API_KEY, the store, the files."""
    xdg = tmp_path / "xdg-config"
    (xdg / "vastai").mkdir(parents=True)
    (xdg / "vastai" / "vast_api_key").write_text("from-xdg\n")
    (isolated_home / ".vast_api_key").write_text("from-home\n")
    env = {"VAST_API_KEY": "from-env", "XDG_CONFIG_HOME": str(xdg), "VIBEML_HOME": str(tmp_path / "vh")}

    def client(env: dict[str, str], **kwargs: Any) -> VastAI:
        return VastAI.from_settings(Settings.from_env(env), server_url="https://vast.test", **kwargs)

    hook = lambda: "from-store"  # noqa: E731
    assert _key_of(client(env, api_key="from-arg", credential_lookup=hook)) == "from-arg"
    assert _key_of(client(env, credential_lookup=hook)) == "from-env"
    del env["VAST_API_KEY"]
    assert _key_of(client(env, credential_lookup=hook)) == "from-store"
    assert _key_of(client(env)) == "from-xdg"  # the (empty) credential store has nothing
    (xdg / "vastai" / "vast_api_key").unlink()
    assert _key_of(client(env)) == "from-home"
    del env["XDG_CONFIG_HOME"]
    (isolated_home / ".config" / "vastai").mkdir(parents=True)
    (isolated_home / ".config" / "vastai" / "vast_api_key").write_text("from-default-xdg")
    assert _key_of(client(env)) == "from-default-xdg"
    assert _key_of(_client()) == "from-default-xdg"  # a bare VastAI reads the default files, no environment


def test_no_key_is_a_clear_credential_error() -> None:
    with pytest.raises(CredentialError) as info:
        _client()
    err = info.value
    assert "No Vast.ai API key" in err.message and "VAST_API_KEY" in str(err.recovery_suggestion)
    assert err.exit_code == 7


@pytest.mark.parametrize("bad", ["two words", "line\nbreak", "tab\there"])
def test_malformed_key_is_refused_without_echo(bad: str) -> None:
    with pytest.raises(CredentialError) as info:
        _client(api_key=bad)
    assert bad not in str(info.value) and bad not in repr(info.value)


def test_server_url_from_settings_and_validation(fake: FakeVast) -> None:
    settings = Settings.from_env({"VAST_URL": fake.url + "/"})  # the official client's name
    with VastAI.from_settings(settings, api_key=SECRET_KEY) as client:
        assert client.server_url == fake.url
        assert client.show_user()["id"] == 1
    assert Settings.from_env({"VAST_URL": "http://a", "VIBEML_VAST_URL": "http://b"}).vast.url == "http://b"
    with VastAI(api_key=SECRET_KEY) as bare:
        assert bare.server_url == "https://console.vast.ai"
    with pytest.raises(ValidationError):
        VastAI(api_key=SECRET_KEY, server_url="ftp://vast")


def test_wrong_key_is_an_auth_error(fake: FakeVast) -> None:
    wrong = "vk_live_wrongwrongwrongwrong"
    with VastAI(api_key=wrong, server_url=fake.url, sleep=fast_sleep) as client:
        with pytest.raises(VastAuthError) as info:
            client.show_user()
    err = info.value
    assert isinstance(err, CredentialError) and isinstance(err, CloudProviderError)
    assert err.status == 401 and err.error == "auth_error" and "Invalid user key" in err.message
    assert err.exit_code == 7 and err.recovery_suggestion
    assert wrong not in str(err) and wrong not in repr(err) and wrong not in json.dumps(err.to_dict())
    assert fake.count("user") == 1  # a refused key is not retried


def test_success_false_with_200_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": False, "error": "invalid_args", "msg": "nope"})

    with VastAI(api_key=SECRET_KEY, server_url="https://vast.test", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(VastAPIError) as info:
            c.stop_instance(3)
    assert info.value.status == 200 and info.value.error == "invalid_args" and info.value.msg == "nope"


def test_non_json_answers_are_typed_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/current"):
            return httpx.Response(200, text="<html>maintenance</html>")
        return httpx.Response(418, text="I'm a teapot")

    with VastAI(api_key=SECRET_KEY, server_url="https://vast.test", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(VastAPIError) as info:
            c.show_user()
        assert info.value.error == "bad_response"
        with pytest.raises(VastAPIError) as info:
            c.show_ssh_keys()
        assert info.value.status == 418 and "teapot" in str(info.value.msg)
