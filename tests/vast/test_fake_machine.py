"""The fake Vast.ai's faithful machines: a real SSH endpoint per instance, a clean image, Vast's variables.

Drives the real :class:`~vibeml.backends.vast.transport.SSHTransport` (OpenSSH ``ssh``/``scp``) against it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from vibeml.backends.vast.transport import SSHTransport
from vibeml.exceptions import BackendError
from vibeml.locks import load_lock
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI

pytestmark = pytest.mark.skipif(
    shutil.which("ssh") is None or shutil.which("scp") is None, reason="needs the OpenSSH client"
)


def _client(fake: FakeVast) -> VastAI:
    return VastAI(api_key=fake.api_key, server_url=fake.url)


def _running(fake: FakeVast, onstart: str = "sleep 120") -> tuple[VastAI, int, dict[str, Any]]:
    client = _client(fake)
    offer = client.search_offers("gpu_name=RTX_4090", limit=1)[0]
    iid = int(client.create_instance(offer["id"], image="pytorch/pytorch", onstart_cmd=onstart)["new_contract"])
    fake.wait_for_status(iid, "running")
    inst = client.show_instance(iid)
    assert inst is not None
    return client, iid, inst


def _transport(folder: Path) -> SSHTransport:
    return SSHTransport(folder, attempts=1, retry_delay=0.1, timeout=60)


def _wait_for(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)
    time.sleep(0.1)
    return path.read_text()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_api_points_at_the_endpoint_and_only_attached_keys_log_in(faithful_vast: FakeVast, tmp_path: Path) -> None:
    client, iid, inst = _running(faithful_vast)
    port = faithful_vast.ssh_port(iid)
    assert port is not None
    assert (inst["ssh_host"], inst["ssh_port"], inst["public_ipaddr"]) == ("127.0.0.1", port, "127.0.0.1")

    stranger = _transport(tmp_path / "stranger")
    stranger.public_key()  # a key of its own, registered on the account but never attached to this instance
    client.create_ssh_key(stranger.public_key())
    with pytest.raises(BackendError, match="Permission denied"):
        stranger.put_text(inst, "/root/hello.txt", "no")

    owner = _transport(tmp_path / "owner")
    owner.prepare(client, inst)
    owner.put_text(inst, "/root/hello.txt", "hi\n")
    assert (faithful_vast.workdir(iid) / "root" / "hello.txt").read_text() == "hi\n"
    # the host key was pinned (accept-new) in VibeML's own known_hosts and is the fake's
    known = (tmp_path / "owner" / "known_hosts").read_text()
    host_key = faithful_vast.ssh_host_key(iid)
    assert host_key is not None and host_key.split()[1] in known
    owner.put_text(inst, "/root/again.txt", "pinned key still matches")  # a second login checks the pin

    with pytest.raises(BackendError, match="Permission denied"):
        stranger.put_text(inst, "/root/hello.txt", "still no")


def test_transport_uploads_execs_and_downloads_through_the_endpoint(faithful_vast: FakeVast, tmp_path: Path) -> None:
    client, iid, inst = _running(faithful_vast)
    transport = _transport(tmp_path / "ssh")
    transport.prepare(client, inst)
    local = tmp_path / "model"
    (local / "sub").mkdir(parents=True)
    (local / "config.json").write_text('{"a": 1}')
    (local / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 1000)

    transport.upload(inst, local, "/workspace/vibeml/inputs/model")  # mkdir -p over ssh, then scp -r
    landed = faithful_vast.workdir(iid) / "workspace" / "vibeml" / "inputs" / "model"
    assert (landed / "sub" / "weights.bin").read_bytes() == (local / "sub" / "weights.bin").read_bytes()

    # a command on the machine sees the same filesystem scp wrote to
    transport.put_text(inst, "/workspace/vibeml/inputs/.complete", "ok")
    transport._ssh(inst, "test -f /workspace/vibeml/inputs/model/sub/weights.bin", "checking the upload")

    back = tmp_path / "back" / "model"
    transport.download(inst, "/workspace/vibeml/inputs/model", back)
    assert (back / "config.json").read_text() == '{"a": 1}'
    assert (back / "sub" / "weights.bin").read_bytes() == (local / "sub" / "weights.bin").read_bytes()
    with pytest.raises(BackendError):
        transport.download(inst, "/workspace/vibeml/missing", tmp_path / "missing")
    with pytest.raises(BackendError):  # a failing command's exit status reaches the client
        transport._ssh(inst, "exit 3", "failing on purpose")


@pytest.mark.slow
def test_the_machine_has_torch_but_no_vibeml_and_vasts_variables(faithful_vast: FakeVast, tmp_path: Path) -> None:
    onstart = (
        "env > /root/env.txt; "
        "python -c 'import vibeml' 2>/root/vibeml.err; echo $? > /root/vibeml.rc; "
        "python -c 'import torch, pip; print(torch.__version__)' > /root/torch.txt 2>&1; echo $? > /root/torch.rc; "
        "sleep 120"
    )
    client, iid, inst = _running(faithful_vast, onstart)
    root = faithful_vast.workdir(iid) / "root"
    assert _wait_for(root / "vibeml.rc").strip() != "0"
    assert "No module named 'vibeml'" in (root / "vibeml.err").read_text()
    assert _wait_for(root / "torch.rc", timeout=60).strip() == "0", (root / "torch.txt").read_text()
    locked = next(p.version for p in load_lock("main") if p.name == "torch")
    assert (root / "torch.txt").read_text().strip().split("+")[0] == locked

    env = dict(line.split("=", 1) for line in (root / "env.txt").read_text().splitlines() if "=" in line)
    assert env["CONTAINER_ID"] == str(iid)
    assert env["VAST_CONTAINERLABEL"] == f"C.{iid}"
    assert env["PUBLIC_IPADDR"] == "127.0.0.1"
    assert env["VAST_TCP_PORT_22"] == str(faithful_vast.ssh_port(iid))
    assert faithful_vast.state.valid_key(env["CONTAINER_API_KEY"])
    assert env["HOME"] == "/root"
    for leaked in ("PYTHONPATH", "VIRTUAL_ENV", "VIBEML_HOME", "HF_HOME", "XDG_CONFIG_HOME"):
        assert leaked not in env

    # an SSH command gets the same clean machine
    transport = _transport(tmp_path / "ssh")
    transport.prepare(client, inst)
    with pytest.raises(BackendError, match="No module named 'vibeml'"):
        transport._ssh(inst, "python -c 'import vibeml'", "importing vibeml")
    transport._ssh(inst, 'test "$CONTAINER_ID" = ' + str(iid) + " && command -v uv pip", "checking the image")


def test_endpoint_closes_when_the_instance_stops_or_is_destroyed(faithful_vast: FakeVast, tmp_path: Path) -> None:
    client, iid, _ = _running(faithful_vast)
    port = faithful_vast.ssh_port(iid)
    assert port is not None and not _refused(port)
    faithful_vast.preempt(iid)
    assert faithful_vast.ssh_port(iid) is None and _refused(port)
    client_inst = client.show_instance(iid)
    assert client_inst is not None and client_inst["ssh_host"] != "127.0.0.1"

    client2, iid2, inst2 = _running(faithful_vast)
    port2 = faithful_vast.ssh_port(iid2)
    assert port2 is not None
    transport = _transport(tmp_path / "ssh")
    transport.prepare(client2, inst2)
    transport.put_text(inst2, "/root/x", "up")
    client2.destroy_instance(iid2)
    assert _refused(port2)
    with pytest.raises(BackendError):
        transport.put_text(inst2, "/root/x", "gone")


def test_plain_fake_keeps_its_old_behaviour(tmp_path: Path) -> None:
    with FakeVast(created_delay=0.01, loading_delay=0.01, tick_interval=0.01, workdir_root=tmp_path / "v") as fake:
        _, iid, inst = _running(fake, "sleep 5")
        assert inst["ssh_host"].endswith(".vast.ai") and fake.ssh_port(iid) is None and fake.ssh_host_key(iid) is None


def test_a_stopped_instance_comes_back_on_a_new_port_with_its_files(faithful_vast: FakeVast, tmp_path: Path) -> None:
    client, iid, inst = _running(faithful_vast)
    transport = _transport(tmp_path / "ssh")
    transport.prepare(client, inst)
    transport.put_text(inst, "/workspace/kept.txt", "disk survives a stop")
    first = faithful_vast.ssh_port(iid)
    client.stop_instance(iid)
    assert faithful_vast.ssh_port(iid) is None
    client.start_instance(iid)
    faithful_vast.wait_for_status(iid, "running")
    again = client.show_instance(iid)
    assert again["ssh_port"] == faithful_vast.ssh_port(iid) and again["ssh_port"] != first
    transport._ssh(again, "grep -q survives /workspace/kept.txt", "reading the kept file")  # same key, new port


def test_legacy_scp_protocol_works_too(faithful_vast: FakeVast, tmp_path: Path) -> None:
    client, _, inst = _running(faithful_vast)
    transport = _transport(tmp_path / "ssh")
    transport.prepare(client, inst)
    transport.put_text(inst, "/workspace/legacy/a.txt", "old scp")
    out = tmp_path / "legacy"
    source = "root@127.0.0.1:/workspace/legacy"
    res = subprocess.run(
        ["scp", "-O", *transport._options(inst), "-P", str(inst["ssh_port"]), "-r", "-q", source, str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert (out / "a.txt").read_text() == "old scp"


def test_a_new_instance_on_a_reused_port_with_its_own_host_key_still_logs_in(
    faithful_vast: FakeVast, tmp_path: Path
) -> None:
    """Vast's SSH proxies hand a destroyed instance's port to later instances, each with its own sshd key.
    VibeML pins host keys per instance and address, so the next job's instance at that host:port is not refused
    as a changed host (before: "Host key verification failed" after a minute of retries)."""
    transport = _transport(tmp_path / "ssh")
    client, first, inst = _running(faithful_vast)
    transport.prepare(client, inst)
    transport.put_text(inst, "/root/a.txt", "first job")
    port, key = faithful_vast.ssh_port(first), faithful_vast.ssh_host_key(first)
    client.destroy_instance(first)

    client, second, inst2 = _running(faithful_vast)
    assert (inst2["ssh_host"], faithful_vast.ssh_port(second)) == (inst["ssh_host"], port)  # the same address
    assert faithful_vast.ssh_host_key(second) != key  # another machine's sshd
    transport.prepare(client, inst2)
    transport.put_text(inst2, "/root/b.txt", "second job")
    assert (faithful_vast.workdir(second) / "root" / "b.txt").read_text() == "second job"
