"""State behind the fake Vast.ai server: instances on a clock, billing, onstart processes, SSH keys.

Every endpoint handler returns ``(status, payload)``; the HTTP layer (:mod:`vibeml.testing.fake_vast`)
only routes, authenticates, injects faults and serialises. All state sits behind one lock.

Lifecycle: ``created`` → (``created_delay``) → ``loading`` → (``loading_delay``) → ``running``; the
onstart script then runs as a real local process (``bash -c``) in the instance's own directory, and
the instance becomes ``exited`` when it ends. With a ``machine`` (:class:`~vibeml.testing.fake_vast_machine.
FakeMachineImage`) the onstart runs in a clean container instead and a running instance has an SSH endpoint
(see :mod:`vibeml.testing.fake_vast_machine`). Billing: storage (``storage_cost × disk / 720`` $/h)
from creation until destroy, GPU (``dph_base`` or the bid) only while ``running``; an instance created
while ``bill_multiplier`` ≠ 1 bills that many times its offer's quote (both parts), and its ``dph_base`` and
``dph_total`` show the rate it really bills, as Vast's do.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vibeml.testing.fake_vast_market import QueryRejected, generate_offers, search

if TYPE_CHECKING:
    from vibeml.testing.fake_vast_machine import FakeMachineImage, FakeSSHHub

__all__ = ["FakeInstance", "FakeVastState", "Reply"]

Reply = tuple[int, Any]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _error(status: int, code: str, msg: str) -> Reply:
    return status, {"success": False, "error": code, "msg": msg}


@dataclass
class FakeInstance:
    """One rented machine in the fake."""

    id: int
    offer: dict[str, Any]
    image: str
    disk: float
    label: str | None
    onstart: str | None
    args: list[str]
    env: dict[str, str]
    runtype: str
    price: float | None
    api_key: str
    workdir: Path
    created_at: float
    start_wall: float
    status: str = "created"
    intended: str = "running"
    status_msg: str = ""
    phase_since: float = 0.0
    never_start: bool = False
    destroyed_at: float | None = None
    gpu_cost: float = 0.0
    gpu_since: float | None = None
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    ssh_keys: list[str] = field(default_factory=list)
    bill_factor: float = 1.0  # real rate / quoted rate (FakeVast(bill_multiplier=…), faults.fast_billing)

    def env_vars(self) -> dict[str, str]:
        """The create request's ``env`` entries that are variables (Vast drops ``-p 8080:8080``-style keys)."""
        return {k: v for k, v in self.env.items() if _ENV_NAME.match(k)}

    @property
    def is_bid(self) -> bool:
        return self.price is not None

    @property
    def gpu_rate(self) -> float:
        quoted = float(self.price) if self.price is not None else float(self.offer["dph_base"])
        return quoted * self.bill_factor

    @property
    def storage_rate(self) -> float:
        return float(self.offer.get("storage_cost") or 0.0) * self.disk / 720.0 * self.bill_factor

    def accrued(self, now: float) -> float:
        end = self.destroyed_at if self.destroyed_at is not None else now
        cost = self.storage_rate * max(0.0, end - self.created_at) / 3600.0 + self.gpu_cost
        if self.gpu_since is not None:
            cost += self.gpu_rate * max(0.0, end - self.gpu_since) / 3600.0
        return cost


class FakeVastState:
    """The fake provider's data and rules (thread-safe)."""

    def __init__(
        self,
        *,
        api_key: str,
        seed: int = 0,
        n_offers: int = 300,
        clock: Callable[[], float] = time.monotonic,
        created_delay: float = 0.5,
        loading_delay: float = 1.5,
        logs_delay: float = 0.3,
        kill_grace: float = 2.0,
        page_size: int = 25,
        default_limit: int = 64,
        credit: float = 100.0,
        base_env: Mapping[str, str] | None = None,
        workdir_root: Path | None = None,
        machine: FakeMachineImage | None = None,
        bill_multiplier: float = 1.0,
    ) -> None:
        self.lock = threading.RLock()
        self.api_key = api_key
        self.clock = clock
        self.created_delay = created_delay
        self.loading_delay = loading_delay
        self.logs_delay = logs_delay
        self.kill_grace = kill_grace
        self.page_size = page_size
        self.default_limit = default_limit
        self.credit = credit
        self.base_url = ""
        self.offers: dict[int, dict[str, Any]] = {o["id"]: o for o in generate_offers(n_offers, seed)}
        self.instances: dict[int, FakeInstance] = {}
        self.ssh_keys: dict[int, dict[str, Any]] = {}
        self.log_results: dict[str, tuple[float, str]] = {}
        self.never_start_next = 0
        self.bill_multiplier = bill_multiplier
        self.closed = False
        self._next_instance = 30_000_000 + seed % 1000 * 1000
        self._next_key = 1
        self._clock0 = clock()
        self._wall0 = time.time()
        if base_env is None:
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("VAST_")}
        self.base_env = dict(base_env)
        self._own_root = workdir_root is None
        self.root = Path(workdir_root) if workdir_root else Path(tempfile.mkdtemp(prefix="fake-vast-"))
        self._shell = shutil.which("bash") or "/bin/sh"
        self.machine = machine
        self.ssh: FakeSSHHub | None = None
        if machine is not None:
            from vibeml.testing.fake_vast_machine import FakeSSHHub

            self.ssh = FakeSSHHub(machine)

    # ------------------------------------------------------------------------ clock and processes

    def wall(self, t: float) -> float:
        """Unix time for clock time ``t``."""
        return self._wall0 + (t - self._clock0)

    def advance(self) -> None:
        """Move every instance along its lifecycle up to now."""
        with self.lock:
            if self.closed:
                return
            now = self.clock()
            for inst in self.instances.values():
                self._advance(inst, now)

    def _advance(self, inst: FakeInstance, now: float) -> None:
        if inst.destroyed_at is not None:
            return
        if inst.status == "created" and now >= inst.phase_since + self.created_delay:
            inst.status, inst.phase_since = "loading", inst.phase_since + self.created_delay
        if inst.status in ("loading", "rebooting") and not inst.never_start:
            if now >= inst.phase_since + self.loading_delay:
                at = inst.phase_since + self.loading_delay
                inst.status, inst.phase_since, inst.status_msg = "running", at, "success, running"
                if inst.gpu_since is None:
                    inst.gpu_since = at
                self._spawn(inst)
        if inst.status == "running" and inst.proc is not None and inst.proc.poll() is not None:
            inst.exit_code = inst.proc.returncode
            inst.status = "exited"
            inst.status_msg = f"onstart exited with code {inst.exit_code}"
            self._bill_gpu_until(inst, now)
            self._kill(inst)  # stray background children die with the container

    def _bill_gpu_until(self, inst: FakeInstance, t: float) -> None:
        if inst.gpu_since is not None:
            inst.gpu_cost += inst.gpu_rate * max(0.0, t - inst.gpu_since) / 3600.0
            inst.gpu_since = None

    def _spawn(self, inst: FakeInstance) -> None:
        """The instance starts running: its SSH endpoint opens (faithful machines) and its onstart starts."""
        if self.closed:
            return
        inst.workdir.mkdir(parents=True, exist_ok=True)
        machine = self.machine
        port = None
        if machine is not None:
            machine.materialize(inst.workdir)  # the image's files, in the container's writable filesystem
        if machine is not None and self.ssh is not None:  # sshd comes up with the container, onstart or not
            port = self.ssh.open(inst, lambda p: machine.environment(inst, p))
        script = inst.onstart or (" ".join(inst.args) if inst.args else "")
        if not script:
            return
        if machine is not None:
            argv, env = machine.argv(inst.workdir, script), machine.environment(inst, port)
        else:
            argv, env = [self._shell, "-c", script], dict(self.base_env)
            env.update(inst.env_vars())
            env.update(
                {
                    "CONTAINER_ID": str(inst.id),
                    "CONTAINER_API_KEY": inst.api_key,
                    "VAST_CONTAINERLABEL": f"C.{inst.id}",
                }
            )
        with open(inst.workdir / "onstart.log", "ab") as log:
            inst.proc = subprocess.Popen(
                argv,
                cwd=inst.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        inst.exit_code = None

    def _kill(self, inst: FakeInstance) -> None:
        """Terminate the instance's process group (SIGTERM, SIGKILL after the grace), off the lock.

        The instance's SSH endpoint (if any) closes at once: the container is going away.
        """
        if self.ssh is not None:
            self.ssh.close(inst.id, release=inst.destroyed_at is not None)
        proc = inst.proc
        if proc is None:
            return
        grace = self.kill_grace

        def reap() -> None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()

        if proc.poll() is not None:  # the shell is gone; stray children of its group are not
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            return
        threading.Thread(target=reap, name=f"fake-vast-kill-{inst.id}", daemon=True).start()

    def shutdown(self) -> None:
        """Kill every process and remove the instance directories this state created."""
        with self.lock:
            self.closed = True  # no process starts and no directory appears after this
            procs = [i.proc for i in self.instances.values() if i.proc is not None]
            if self.ssh is not None:
                self.ssh.shutdown()
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------------ helpers

    def valid_key(self, key: str | None) -> bool:
        if not key:
            return False
        if secrets.compare_digest(key, self.api_key):
            return True
        with self.lock:
            return any(
                i.destroyed_at is None and secrets.compare_digest(key, i.api_key) for i in self.instances.values()
            )

    def _live(self, iid: int) -> FakeInstance | None:
        inst = self.instances.get(iid)
        return inst if inst is not None and inst.destroyed_at is None else None

    def view(self, inst: FakeInstance, now: float) -> dict[str, Any]:
        """The instance as the API shows it."""
        o = inst.offer
        running = inst.status == "running"
        port = self.ssh.port(inst.id) if self.ssh is not None else None
        if port is not None:
            ssh_host, ssh_port, public_ip = "127.0.0.1", port, "127.0.0.1"
        else:
            ssh_host, ssh_port = f"ssh{inst.id % 9 + 1}.vast.ai", 20000 + inst.id % 40000
            public_ip = f"198.51.100.{inst.id % 250 + 1}"
        return {
            "id": inst.id,
            "machine_id": o["machine_id"],
            "host_id": o["host_id"],
            "actual_status": None if inst.destroyed_at is not None else inst.status,
            "intended_status": inst.intended,
            "cur_state": "running" if running else "stopped",
            "next_state": inst.intended,
            "status_msg": inst.status_msg,
            "label": inst.label,
            "image_uuid": inst.image,
            "image_runtype": inst.runtype,
            "image_args": inst.args,
            "onstart": inst.onstart,
            "extra_env": [[k, v] for k, v in inst.env.items()],
            "ssh_host": ssh_host,
            "ssh_port": ssh_port,
            "ssh_idx": str(inst.id % 9 + 1),
            "public_ipaddr": public_ip,
            "start_date": round(self.wall(inst.created_at), 3),
            "end_date": round(self.wall(inst.created_at) + float(o.get("duration") or 0.0), 3),
            "duration": o.get("duration"),
            "dph_base": inst.gpu_rate,
            "dph_total": round(inst.gpu_rate + inst.storage_rate, 6),
            "storage_cost": o.get("storage_cost"),
            "storage_total_cost": round(inst.storage_rate, 6),
            "disk_space": inst.disk,
            "disk_usage": 0.42 if running else 0.0,
            "is_bid": inst.is_bid,
            "min_bid": o.get("min_bid"),
            "gpu_name": o["gpu_name"],
            "num_gpus": o["num_gpus"],
            "gpu_ram": o["gpu_ram"],
            "gpu_totalram": o["gpu_total_ram"],
            "gpu_util": 87.5 if running else 0.0,
            "cpu_ram": o["cpu_ram"],
            "cpu_cores_effective": o["cpu_cores_effective"],
            "cuda_max_good": o["cuda_max_good"],
            "driver_version": o["driver_version"],
            "geolocation": o["geolocation"],
            "reliability2": o["reliability"],
            "inet_up": o["inet_up"],
            "inet_down": o["inet_down"],
        }

    # ------------------------------------------------------------------------ endpoints

    def search(self, body: Any) -> Reply:
        if not isinstance(body, Mapping):
            return _error(400, "invalid_args", "The search body must be a JSON object.")
        query = body.get("q", body) if isinstance(body.get("q"), Mapping) else body
        with self.lock:
            offers = list(self.offers.values())
        try:
            return 200, {"offers": search(offers, query, self.default_limit)}
        except QueryRejected as exc:
            return _error(400, "invalid_args", f"Invalid search query: {exc}")

    def create(self, offer_id: int, body: Any) -> Reply:
        if not isinstance(body, Mapping):
            return _error(400, "invalid_args", "The request body must be a JSON object.")
        image, disk, label = body.get("image"), body.get("disk", 10), body.get("label")
        price, onstart, args = body.get("price"), body.get("onstart"), body.get("args") or []
        env = body.get("env") or {}
        if not isinstance(image, str) or not image or len(image) > 1024:
            return _error(400, "invalid_args", "image is required and must be at most 1024 characters.")
        if not isinstance(disk, (int, float)) or isinstance(disk, bool) or disk < 8:
            return _error(400, "invalid_args", "disk must be a number of GB, at least 8.")
        if label is not None and (not isinstance(label, str) or len(label) > 256):
            return _error(400, "invalid_args", "label must be a string of at most 256 characters.")
        if price is not None and (
            not isinstance(price, (int, float)) or isinstance(price, bool) or not 0.001 <= price <= 128
        ):
            return _error(400, "invalid_price", "price must be between 0.001 and 128 $/hour.")
        if onstart is not None and not isinstance(onstart, str):
            return _error(400, "invalid_args", "onstart must be a string.")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return _error(400, "invalid_args", "args must be a list of strings.")
        if len(onstart or "") + len(" ".join(args)) > 4096:
            return _error(400, "invalid_args", "onstart + args must be at most 4096 characters.")
        if not isinstance(env, Mapping):
            return _error(400, "invalid_args", "env must be an object.")
        with self.lock:
            if self.closed:
                return _error(503, "server_error", "The server is shutting down.")
            offer = self.offers.get(offer_id)
            if offer is None:
                return _error(404, "no_such_ask", f"No offer with id {offer_id}.")
            if offer["rented"]:
                if body.get("cancel_unavail"):
                    return _error(410, "no_such_ask", f"Offer {offer_id} is no longer available.")
                return _error(404, "no_such_ask", f"Offer {offer_id} is no longer available.")
            if disk > float(offer["disk_space"]):
                return _error(400, "invalid_args", f"disk {disk} GB exceeds the offer's {offer['disk_space']} GB.")
            if price is not None and price < float(offer["min_bid"]):
                return _error(400, "invalid_price", f"Bid {price} is below the minimum bid {offer['min_bid']}.")
            now = self.clock()
            iid = self._next_instance
            self._next_instance += 1
            inst = FakeInstance(
                id=iid,
                offer=offer,
                image=image,
                disk=float(disk),
                label=label,
                onstart=onstart,
                args=list(args),
                env={str(k): str(v) for k, v in env.items()},
                runtype=str(body.get("runtype") or "ssh"),
                price=float(price) if price is not None else None,
                api_key=secrets.token_hex(24),
                workdir=self.root / f"instance-{iid}",
                created_at=now,
                start_wall=self.wall(now),
                phase_since=now,
                bill_factor=self.bill_multiplier,
            )
            inst.workdir.mkdir(parents=True, exist_ok=True)
            if self.never_start_next > 0:
                self.never_start_next -= 1
                inst.never_start = True
            offer["rented"], offer["rentable"] = True, False
            self.instances[iid] = inst
            self._advance(inst, now)
        return 200, {"success": True, "new_contract": iid}

    def show_instance(self, iid: int) -> Reply:
        with self.lock:
            now = self.clock()
            inst = self._live(iid)
            if inst is None:
                return 200, {"instances": None}
            self._advance(inst, now)
            return 200, {"instances": self.view(inst, now)}

    def list_instances(self) -> list[dict[str, Any]]:
        with self.lock:
            now = self.clock()
            self.advance()
            return [self.view(i, now) for _, i in sorted(self.instances.items()) if i.destroyed_at is None]

    def show_instances_v1(self, params: Mapping[str, str]) -> Reply:
        try:
            limit = int(params.get("limit", self.page_size))
            after = 0
            if params.get("after_token"):
                decoded = base64.urlsafe_b64decode(params["after_token"].encode()).decode()
                if not decoded.startswith("after:"):
                    raise ValueError(decoded)
                after = int(decoded[6:])
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_args", "Bad limit or after_token.")
        rows = [r for r in self.list_instances() if r["id"] > after]
        page = rows[: max(1, min(limit, 1000))]
        token = None
        if len(rows) > len(page):
            token = base64.urlsafe_b64encode(f"after:{page[-1]['id']}".encode()).decode()
        return 200, {"instances": page, "next_token": token}

    def destroy(self, iid: int) -> Reply:
        with self.lock:
            inst = self._live(iid)
            if inst is None:
                return _error(404, "not_found", f"Instance {iid} not found.")
            now = self.clock()
            self._advance(inst, now)
            self._bill_gpu_until(inst, now)
            inst.destroyed_at = now
            inst.status = "destroyed"
            inst.offer["rented"], inst.offer["rentable"] = False, True
            self._kill(inst)
        return 200, {"success": True}

    def manage(self, iid: int, body: Any) -> Reply:
        if not isinstance(body, Mapping) or not ({"state", "label"} & set(body)):
            return _error(400, "invalid_args", "Give 'state' (running|stopped) or 'label'.")
        with self.lock:
            inst = self._live(iid)
            if inst is None:
                return _error(404, "not_found", f"Instance {iid} not found.")
            now = self.clock()
            self._advance(inst, now)
            if "label" in body:
                label = body["label"]
                if label is not None and (not isinstance(label, str) or len(label) > 256):
                    return _error(400, "invalid_args", "label must be at most 256 characters.")
                inst.label = label
            state = body.get("state")
            if state == "stopped":
                inst.intended = "stopped"
                if inst.status != "stopped":
                    self._bill_gpu_until(inst, now)
                    inst.status, inst.phase_since, inst.status_msg = "stopped", now, "stopped by user"
                    self._kill(inst)
            elif state == "running":
                inst.intended = "running"
                if inst.status in ("stopped", "exited") and inst.status_msg != "outbid":
                    inst.status, inst.phase_since, inst.status_msg = "loading", now, "starting"
            elif "state" in body:
                return _error(400, "invalid_args", "state must be 'running' or 'stopped'.")
        return 200, {"success": True}

    def reboot(self, iid: int) -> Reply:
        with self.lock:
            inst = self._live(iid)
            if inst is None:
                return _error(404, "not_found", f"Instance {iid} not found.")
            self._advance(inst, self.clock())
            if inst.status == "running":
                self._kill(inst)
                inst.status, inst.phase_since, inst.status_msg = "rebooting", self.clock(), "rebooting"
        return 200, {"success": True}

    def change_bid(self, iid: int, body: Any) -> Reply:
        price = body.get("price") if isinstance(body, Mapping) else None
        if not isinstance(price, (int, float)) or isinstance(price, bool) or not 0.001 <= price <= 128:
            return _error(400, "invalid_price", "price must be between 0.001 and 128 $/hour.")
        with self.lock:
            inst = self._live(iid)
            if inst is None:
                return _error(404, "not_found", f"Instance {iid} not found.")
            if not inst.is_bid:
                return _error(400, "invalid_args", f"Instance {iid} is not an interruptible (bid) instance.")
            now = self.clock()
            self._advance(inst, now)
            if inst.gpu_since is not None:  # close the bill at the old rate
                self._bill_gpu_until(inst, now)
                inst.gpu_since = now
            inst.price = float(price)
            if inst.status_msg == "outbid" and inst.price >= float(inst.offer["min_bid"]):
                inst.status, inst.phase_since, inst.status_msg = "loading", now, "bid accepted, starting"
        return 200, {"success": True}

    def preempt(self, iid: int, message: str = "outbid") -> None:
        """Stop a running instance as Vast does when an interruptible bid is outbid."""
        with self.lock:
            inst = self._live(iid)
            if inst is None:
                raise KeyError(iid)
            now = self.clock()
            self._advance(inst, now)
            self._bill_gpu_until(inst, now)
            inst.status, inst.phase_since, inst.status_msg = "stopped", now, message
            self._kill(inst)

    def set_min_bid(self, offer_id: int, price: float) -> list[int]:
        """Raise (or lower) an offer's ``min_bid``; bid instances below it are preempted."""
        with self.lock:
            offer = self.offers[offer_id]
            offer["min_bid"] = float(price)
            hit = [
                i.id
                for i in self.instances.values()
                if i.offer is offer and i.destroyed_at is None and i.is_bid and (i.price or 0) < price
            ]
            for iid in hit:
                if self.instances[iid].status != "stopped":
                    self.preempt(iid)
            return hit

    def request_logs(self, iid: int, body: Any) -> Reply:
        tail_raw = body.get("tail", "1000") if isinstance(body, Mapping) else "1000"
        try:
            tail = max(0, int(str(tail_raw)))
        except ValueError:
            return _error(400, "invalid_args", "tail must be a number of lines.")
        with self.lock:
            inst = self._live(iid)
            if inst is None:
                return _error(404, "not_found", f"Instance {iid} not found.")
            self._advance(inst, self.clock())
            path = inst.workdir / "onstart.log"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        lines = text.splitlines(keepends=True)
        snapshot = "".join(lines[-tail:]) if tail else ""
        token = secrets.token_urlsafe(16)
        with self.lock:
            self.log_results[token] = (time.monotonic() + self.logs_delay, snapshot)
        return 200, {"success": True, "result_url": f"{self.base_url}/logs/{token}.log", "msg": "Logs requested."}

    def log_result(self, token: str) -> tuple[int, str]:
        with self.lock:
            entry = self.log_results.get(token)
        if entry is None or time.monotonic() < entry[0]:
            return 404, "<Error><Code>NoSuchKey</Code></Error>"
        return 200, entry[1]

    def show_ssh_keys(self) -> Reply:
        with self.lock:
            return 200, [dict(k) for _, k in sorted(self.ssh_keys.items())]

    def create_ssh_key(self, body: Any) -> Reply:
        key = body.get("ssh_key") if isinstance(body, Mapping) else None
        if not isinstance(key, str) or not key.strip().startswith(("ssh-", "ecdsa-", "sk-")):
            return _error(400, "invalid_args", "ssh_key must be an SSH public key.")
        with self.lock:
            kid = self._next_key
            self._next_key += 1
            row = {"id": kid, "user_id": 1, "key": key.strip(), "created_at": round(time.time(), 3)}
            self.ssh_keys[kid] = row
        return 200, {"success": True, **row}

    def delete_ssh_key(self, kid: int) -> Reply:
        with self.lock:
            if self.ssh_keys.pop(kid, None) is None:
                return _error(404, "not_found", f"SSH key {kid} not found.")
        return 200, {"success": True}

    def attach_ssh(self, iid: int, body: Any) -> Reply:
        key = body.get("ssh_key") if isinstance(body, Mapping) else None
        if not isinstance(key, str) or not key.strip().startswith(("ssh-", "ecdsa-", "sk-")):
            return _error(400, "invalid_args", "ssh_key must be an SSH public key.")
        with self.lock:
            inst = self._live(iid)
            if inst is None:
                return _error(404, "not_found", f"Instance {iid} not found.")
            inst.ssh_keys.append(key.strip())
        return 200, {"success": True, "msg": f"SSH key attached to instance {iid}."}

    def user(self) -> Reply:
        with self.lock:
            now = self.clock()
            spent = sum(i.accrued(now) for i in self.instances.values())
        return 200, {
            "id": 1,
            "username": "fake-user",
            "email": "fake-user@example.com",
            "fullname": "Fake User",
            "balance": 0.0,
            "credit": round(self.credit - spent, 6),
            "has_billing": True,
            "can_pay": True,
            "api_key": self.api_key,  # the real endpoint echoes it; clients must not
            "ssh_key": None,
        }
