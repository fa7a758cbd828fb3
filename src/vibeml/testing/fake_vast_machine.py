"""Faithful rented machines for the fake Vast.ai: a clean image, a container-like filesystem, real SSH.

By default the fake runs an instance's onstart as ``bash -c`` in the test's own environment (where VibeML is
importable) and has no SSH. ``FakeVast(machine=FakeMachineImage.build(folder))`` makes every instance
behave like a container rented from Vast instead:

* **Clean image.** Onstart and SSH commands run with the Python of a fresh virtual environment holding only
  what a CUDA PyTorch image has: ``torch`` and ``numpy`` (the locked versions, installed ``--offline`` from
  uv's cache or ``UV_FIND_LINKS``/``PIP_FIND_LINKS``), ``pip`` and ``uv``. NONE of VibeML: whatever the
  machine needs of it must be shipped over SSH, as on Vast. ``uv`` (the locked binary) is on ``PATH`` too:
  a single static executable that carries no Python packages, so it cannot hide a missing VibeML, and it lets
  a machine-side install use it (the onstart installs with uv where the machine has it, else with ``pip``,
  which is there as in every PyTorch image). ``build(..., with_uv=False)`` leaves it out.
  The environment is scrubbed (no ``PYTHONPATH``, no ``VIRTUAL_ENV``, none of the test's variables): ``PATH``
  is the image's ``bin`` then the system directories, ``HOME=/root``, plus the create request's ``env`` and
  the variables Vast sets in a container (:func:`vast_environment`).
* **Filesystem.** The instance directory (``fake.workdir(iid)``) acts as the container's filesystem root:
  remote ``/workspace/vibeml/x`` is ``<workdir>/workspace/vibeml/x`` for the onstart, for SSH commands
  and for ``scp``, so the client's absolute remote paths (``VIBEML_VAST_REMOTE_DIR``, default
  ``/workspace/vibeml``) work unchanged. Processes run ``chroot``-ed into it inside a private mount namespace
  (``unshare``; unprivileged user namespaces where the tests do not run as root) with the host's system
  directories (``/usr``, ``/etc``, ``/lib*``, ``/bin``, ``/sbin``) and the base interpreter bound read-only at
  their own paths, ``/dev``, ``/proc`` and ``/sys`` bound, and their own ``/tmp``, ``/root`` (HOME, the working
  directory of the onstart and of SSH sessions) and ``/workspace``. The image's venv (and any ``seed``
  folders) are *in* the container's filesystem, writable, as a Docker image's files are: hard-linked into
  the instance directory when it first runs (a container layer; files are replaced, never written in place,
  by pip and uv), so an onstart can ``pip install`` into the image's Python as on Vast. The test process
  (and the fake's SFTP server) see none of those mounts: they exist only inside the namespace and vanish
  with its last process.
  ``onstart.log`` lies at ``<workdir>/onstart.log`` (``/onstart.log`` inside).
* **SSH.** While the instance is ``running``, an `asyncssh <https://asyncssh.readthedocs.io>`_ server listens
  on ``127.0.0.1:<port>`` for it, and the API's ``ssh_host``/``ssh_port`` (and ``public_ipaddr``) say so.
  Public-key authentication only, user ``root``, accepting exactly the keys attached to that instance
  (``POST /instances/{id}/ssh/``) at the time of login. Exec requests run the command with ``bash -c`` in
  the container (as above); SFTP and legacy scp are served by asyncssh, rooted at the instance directory,
  so OpenSSH's ``scp`` (SFTP mode since 9.0, or ``-O``) works. Each instance has its own host key (its
  sshd's, generated when the container first boots and kept on its disk across restarts), as on Vast. The
  endpoint closes, its sessions and their processes killed, when the instance stops, exits, reboots, is
  preempted or destroyed, and comes back on a new port when it runs again. Like the ports of Vast's SSH
  proxies, a destroyed instance's port is handed to the next instance that starts: the same
  ``host:port`` then presents another host key.

Usage (the ``faithful_vast`` fixture in ``tests/conftest.py`` does this once per test)::

    def test_launch(faithful_vast):              # a started FakeVast with the clean image
        client = VastAI(api_key=faithful_vast.api_key, server_url=faithful_vast.url)
        ...                                      # create an instance; wait for "running"
        transport = SSHTransport(tmp_path / "ssh", retry_delay=0.2)
        transport.prepare(client, client.show_instance(iid))   # registers + attaches the key
        transport.upload(client.show_instance(iid), local_dir, "/workspace/vibeml/inputs/model")
        assert (faithful_vast.workdir(iid) / "workspace/vibeml/inputs/model").is_dir()

Requires ``unshare`` (util-linux) and either root or unprivileged user namespaces; :meth:`FakeMachineImage.
sandbox_problem` says why not, and the fixture skips with that reason.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vibeml.testing.fake_vast_state import FakeInstance

__all__ = ["FakeMachineImage", "FakeSSHHub", "vast_environment"]

#: Host directories every container sees (read-only), as a CUDA image's base system would provide them.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs as (namespaced) root inside a fresh private mount namespace: binds the host's system directories and
# the image into the instance directory, then chroots into it and runs "$cmd" with bash in $HOME. The command
# arrives as an argument (data), never spliced into this text.
_SANDBOX = r"""
set -eu
root=$1; shift
bind() {  # bind $1 at $root$1, read-only unless $2 = rw
  if [ -L "$1" ]; then  # merged /usr: /bin -> usr/bin; a concurrent session may have made it already
    [ -L "$root$1" ] || ln -s "$(readlink "$1")" "$root$1" 2>/dev/null || [ -L "$root$1" ]; return
  fi
  [ -d "$1" ] || return 0
  mkdir -p "$root$1"
  mount --rbind "$1" "$root$1"
  [ "${2:-ro}" = rw ] || mount -o remount,bind,ro "$root$1" 2>/dev/null || true
}
for d in /usr /bin /sbin /lib /lib32 /lib64 /libx32 /etc; do bind "$d"; done
for d in /dev /proc /sys; do bind "$d" rw; done
while [ "$1" != -- ]; do bind "$1"; shift; done
shift
mkdir -p "$root/tmp" "$root/root" "$root/workspace"
chmod 1777 "$root/tmp"
exec chroot "$root" /bin/bash -c 'cd "$HOME" || exit 1; exec /bin/bash -c "$1"' bash "$1"
"""


def vast_environment(inst: FakeInstance, ssh_port: int | None) -> dict[str, str]:
    """The variables Vast sets in every container (docs.vast.ai, "Docker Execution Environment" and
    "Networking & Ports"; their use in public onstart scripts confirms the names).

    ``CONTAINER_ID`` (the instance id), ``CONTAINER_API_KEY`` (a key scoped to this instance that the API
    accepts), ``VAST_CONTAINERLABEL`` (``C.<id>``), ``PUBLIC_IPADDR`` (the machine's address; here the
    loopback the SSH endpoint listens on) and ``VAST_TCP_PORT_22`` (the external port mapped to the
    container's port 22, here the endpoint's).
    """
    env = {
        "CONTAINER_ID": str(inst.id),
        "CONTAINER_API_KEY": inst.api_key,
        "VAST_CONTAINERLABEL": f"C.{inst.id}",
        "PUBLIC_IPADDR": "127.0.0.1",
    }
    if ssh_port is not None:
        env["VAST_TCP_PORT_22"] = str(ssh_port)
    return env


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class FakeMachineImage:
    """A clean "CUDA PyTorch image" for fake instances: a venv with torch, numpy, pip (and uv), nothing else.

    Args:
        venv: The image's Python environment; its ``bin`` goes first on ``PATH``.
        mounts: Host directories the container sees at their own paths (read-only), e.g. the base
            interpreter the venv links to, or a wheel folder to install from offline.
        extra_env: Variables every container gets (after the scrubbed defaults, before the request's env).
        seed: Host folders copied (hard links) into every container's writable filesystem at a container path
            (e.g. ``{"/root/.cache/uv": uv's cache}``: a warm, writable package cache, as uv needs one).
    """

    venv: Path
    mounts: tuple[Path, ...] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    seed: Mapping[str, Path] = field(default_factory=dict)

    @classmethod
    def build(
        cls, folder: Path, *, uv: str | None = None, packages: Sequence[str] | None = None, with_uv: bool = True
    ) -> FakeMachineImage:
        """Create the image's venv in ``folder`` (offline: uv's cache and configured wheel folders only).

        Args:
            folder: Where the venv goes (must not exist yet, or be a previous build).
            uv: The uv executable (default: the one beside this Python, else on ``PATH``).
            packages: What to install, each at its version in VibeML's lock (default: ``torch`` and ``numpy``,
                as the official PyTorch images ship them).
            with_uv: Put the ``uv`` binary in the image's ``bin`` as well.

        Raises:
            RuntimeError: uv is missing or an install failed (e.g. torch is not in the cache).
        """
        uv = uv or shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
        if uv is None:
            raise RuntimeError("uv is needed to build the fake machine image")
        from importlib import resources

        lock = resources.files("vibeml.locks").joinpath("main.txt")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PYTHON")}
        env["UV_PYTHON_DOWNLOADS"] = "never"
        if not env.get("UV_FIND_LINKS") and env.get("PIP_FIND_LINKS"):
            env["UV_FIND_LINKS"] = env["PIP_FIND_LINKS"]  # as tools/venv.sh hands pip's wheel folder to uv
        base = Path(sys.base_prefix).resolve()
        python = base / "bin" / Path(sys.executable).name
        if not python.exists():
            python = Path(shutil.which("python3", path=str(base / "bin")) or sys.executable)
        folder = Path(folder)
        wanted = packages or ("torch", "numpy")
        py = str(folder / "bin" / "python")
        cmds = [
            [uv, "venv", "--quiet", "--seed", "--offline", "--allow-existing", "--python", str(python), str(folder)],
            [uv, "pip", "install", "--quiet", "--offline", "--python", py, "--constraint", str(lock), *wanted],
        ]
        for cmd in cmds:
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise RuntimeError(f"building the fake machine image failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
        target = folder / "bin" / "uv"
        if with_uv and not target.exists():
            try:
                os.link(uv, target)
            except OSError:
                shutil.copy2(uv, target)
        return cls(venv=folder.resolve(), mounts=(base,))

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def sandbox_problem() -> str | None:
        """Why instances cannot be sandboxed on this host (``None`` when they can)."""
        if sys.platform != "linux":
            return "the faithful fake machine needs Linux (mount namespaces and chroot)"
        if shutil.which("unshare") is None or shutil.which("chroot") is None:
            return "the faithful fake machine needs `unshare` and `chroot` (util-linux, coreutils)"
        import tempfile

        with tempfile.TemporaryDirectory(prefix="fake-vast-probe-") as root:
            argv = [*_unshare(), "/bin/bash", "-c", _SANDBOX, "sandbox", root, "--", "true"]
            env = {"PATH": SYSTEM_PATH, "HOME": "/root"}
            try:
                res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"the fake machine's sandbox could not start: {exc}"
        if res.returncode != 0:
            return f"this host does not allow the fake machine's sandbox (mount namespace + chroot): {res.stderr[:200]}"
        return None

    def environment(self, inst: FakeInstance, ssh_port: int | None) -> dict[str, str]:
        """The container's whole environment (nothing of the test process's)."""
        env = {
            "PATH": f"{self.venv / 'bin'}:{SYSTEM_PATH}",
            "HOME": "/root",
            "USER": "root",
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            "TERM": "dumb",
        }
        env.update(self.extra_env)
        env.update(inst.env_vars())
        env.update(vast_environment(inst, ssh_port))
        return env

    def materialize(self, workdir: Path) -> None:
        """Put the image's venv (at its own path) and the ``seed`` folders into the instance's filesystem,
        once per disk (a stopped and restarted instance keeps what its onstart installed)."""
        done = workdir / ".fake-image"
        if done.exists():
            return
        copies = {str(self.venv): Path(self.venv), **{k: Path(v) for k, v in self.seed.items()}}
        for inside, host in copies.items():
            target = workdir / inside.lstrip("/")
            if target.exists():
                shutil.rmtree(target)  # a copy cut short earlier
            target.parent.mkdir(parents=True, exist_ok=True)
            res = subprocess.run(["cp", "-al", str(host), str(target)], capture_output=True, text=True, check=False)
            if res.returncode != 0:  # another filesystem: copy the bytes
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(host, target, symlinks=True)
        done.write_text("ok\n")

    def argv(self, workdir: Path, command: str) -> list[str]:
        """The host command that runs ``command`` with bash inside the instance's container."""
        mounts = [str(m) for m in self.mounts]
        return [*_unshare(), "/bin/bash", "-c", _SANDBOX, "sandbox", str(workdir), *mounts, "--", command]


def _unshare() -> list[str]:
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return ["unshare", *user, "--mount", "--propagation", "private", "--fork"]


# ---------------------------------------------------------------------------------------------- SSH


class _Endpoint:
    """One instance's SSH server (lives on the hub's event loop)."""

    def __init__(self, hub: FakeSSHHub, inst: FakeInstance, env: Callable[[int], dict[str, str]]) -> None:
        self.hub = hub
        self.iid = inst.id
        self.keys = inst.ssh_keys  # the instance's live list: keys attached later count at the next login
        self.workdir = inst.workdir
        self.env = env
        self.port = 0
        self.server: Any = None
        self.conns: set[Any] = set()
        self.procs: set[subprocess.Popen[bytes]] = set()

    def authorized(self, key: Any) -> bool:
        import asyncssh

        offered = key.export_public_key("openssh").decode().split()[:2]
        for line in list(self.keys):
            try:
                attached = asyncssh.import_public_key(line).export_public_key("openssh").decode().split()[:2]
            except (asyncssh.KeyImportError, ValueError):
                continue
            if attached == offered:
                return True
        return False

    async def run(self, process: Any) -> None:
        command = process.command if process.command is not None else "exec /bin/bash"
        argv = self.hub.machine.argv(self.workdir, command)
        try:
            proc = subprocess.Popen(
                argv,
                env=self.env(self.port),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            process.stderr.write(f"fake sshd: {exc}\n")
            process.exit(255)
            return
        self.procs.add(proc)
        try:
            await process.redirect(stdin=proc.stdin, stdout=proc.stdout, stderr=proc.stderr)
            rc = await asyncio.get_running_loop().run_in_executor(None, proc.wait)
            await process.stdout.drain()
            await process.stderr.drain()
            process.exit(rc if rc >= 0 else 128 - rc)
            await process.wait_closed()  # also awaits asyncssh's own pipe clean-ups
        finally:
            self.procs.discard(proc)

    async def start(self, port: int = 0) -> int:
        import asyncssh

        endpoint = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                self.conn = conn
                endpoint.conns.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                endpoint.conns.discard(self.conn)

            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return False

            def kbdint_auth_supported(self) -> bool:
                return False

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: Any) -> bool:
                return username == "root" and endpoint.authorized(key)

        class SFTP(asyncssh.SFTPServer):
            def exit(self) -> None:
                # OpenSSH's sftp-server ends with exit status 0 and scp's SFTP mode insists on one; asyncssh
                # just closes the channel.
                try:
                    self.channel.exit(0)
                except Exception:  # the channel may already be gone
                    pass

        chroot = os.fsencode(str(self.workdir))
        self.server = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            port,
            server_host_keys=[self.hub.host_key(self.iid)],
            process_factory=self.run,
            sftp_factory=lambda chan: SFTP(chan, chroot=chroot),
            allow_scp=True,
            encoding=None,
            login_timeout=30,
        )
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in list(self.conns):
            conn.abort()
        procs = list(self.procs)
        if procs:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(None, _kill_group, p, 1.0) for p in procs))
        if self.server is not None:
            await self.server.wait_closed()


class FakeSSHHub:
    """The SSH endpoints of one fake server: one asyncio loop thread, a host key and a port per instance.

    Called with the state's lock held; the loop never takes that lock (authentication reads the instance's
    key list directly), so waiting on it here cannot deadlock.
    """

    def __init__(self, machine: FakeMachineImage) -> None:
        import asyncssh

        self.machine = machine
        self._asyncssh = asyncssh
        self._host_keys: dict[int, Any] = {}
        self._released: list[int] = []  # ports of destroyed instances, reused first-freed first
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-vast-ssh", daemon=True)
        self._thread.start()
        self._endpoints: dict[int, _Endpoint] = {}

    def host_key(self, iid: int) -> Any:
        """Instance ``iid``'s host key (made on first use, kept across restarts)."""
        if iid not in self._host_keys:
            self._host_keys[iid] = self._asyncssh.generate_private_key("ssh-ed25519")
        return self._host_keys[iid]

    def host_public_key(self, iid: int) -> str:
        """``iid``'s host key's public half, as a ``known_hosts`` line carries it (``ssh-ed25519 AAAA…``)."""
        return str(self.host_key(iid).export_public_key("openssh").decode().strip())

    def port(self, iid: int) -> int | None:
        ep = self._endpoints.get(iid)
        return ep.port if ep is not None else None

    def open(self, inst: FakeInstance, env: Callable[[int], dict[str, str]]) -> int:
        """Start ``inst``'s endpoint (if it has none) and return its port."""
        ep = self._endpoints.get(inst.id)
        if ep is None:
            ep = _Endpoint(self, inst, env)
            port = self._released.pop(0) if self._released else 0
            try:
                asyncio.run_coroutine_threadsafe(ep.start(port), self.loop).result(timeout=30)
            except OSError:  # the old port is taken meanwhile: any port
                asyncio.run_coroutine_threadsafe(ep.start(0), self.loop).result(timeout=30)
            self._endpoints[inst.id] = ep
        return ep.port

    def close(self, iid: int, release: bool = False) -> None:
        """Stop ``iid``'s endpoint: no new connections, open sessions cut, their processes killed.
        ``release`` (the instance is destroyed): its port goes to the next instance that starts."""
        ep = self._endpoints.pop(iid, None)
        if ep is not None:
            asyncio.run_coroutine_threadsafe(ep.stop(), self.loop).result(timeout=30)
            if release:
                self._released.append(ep.port)

    def shutdown(self) -> None:
        for iid in list(self._endpoints):
            self.close(iid)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
