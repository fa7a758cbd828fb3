"""Moving files to and from a rented Vast.ai instance: the :class:`ArtifactTransport` seam.

Vast.ai has no file API: files travel over the instance's SSH port. :class:`SSHTransport` (the default)
keeps a VibeML key pair in ``<VIBEML_HOME>/ssh/``, registers its public half on the account
(``create_ssh_key``, once) and attaches it to each instance (``attach_ssh``), then runs ``scp``/``ssh``
against the instance's ``ssh_host``/``ssh_port`` as ``root``. Host keys are pinned per machine in a
VibeML-only ``known_hosts`` (accept-new), never the user's own.

The backend uses a transport for three things: uploading local inputs (a model directory, a dataset
file) before the trainer starts, downloading the adapter (and on a stop, the last checkpoint) before the
instance is destroyed, and dropping small marker files the on-instance runner watches (``STOP``,
``.collected``, ``inputs/.complete``). Tests swap in a transport that copies into the fake server's
instance directory: that transfer step is the only part of a Vast launch they replace.

Remote paths are POSIX strings; the SSH transport needs absolute ones (the runner resolves a relative
job directory against the onstart's working directory, which an SSH login does not share).
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from vibeml.exceptions import BackendError, ConfigurationError, retry_with_backoff

if TYPE_CHECKING:
    from vibeml.vast import VastAI

__all__ = ["ArtifactTransport", "SSHTransport"]

logger = logging.getLogger(__name__)

KEY_NAME = "vibeml_vast_ed25519"


class ArtifactTransport(ABC):
    """Copies files between this machine and a running instance (``instance`` = ``show_instance``'s dict)."""

    name: ClassVar[str] = "transport"

    def prepare(self, vast: VastAI, instance: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Make the instance reachable (e.g. attach an SSH key); called once it is running."""

    @abstractmethod
    def upload(self, instance: Mapping[str, Any], local: Path, remote: str) -> None:
        """Copy a local file or directory to ``remote`` (which must not exist yet)."""

    @abstractmethod
    def download(self, instance: Mapping[str, Any], remote: str, local: Path) -> None:
        """Copy a remote file or directory to ``local`` (which must not exist yet).

        Raises:
            BackendError: The remote path is missing or the copy failed.
        """

    @abstractmethod
    def put_text(self, instance: Mapping[str, Any], remote: str, text: str) -> None:
        """Write a small text file on the instance (parents created)."""


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class _Failed(Exception):
    """An ssh/scp command failed; ``output`` is the tail of what it printed."""

    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output


class _NotReady(_Failed):
    """ssh could not connect (exit 255: sshd still coming up) or the command timed out: worth a retry."""


class SSHTransport(ArtifactTransport):
    """``scp``/``ssh`` over the instance's SSH port with VibeML's own key.

    Args:
        key_dir: Where the key pair and the pinned host keys live (``<VIBEML_HOME>/ssh``).
        user: Login user (``root`` on Vast images).
        attempts: Tries per command while the instance's sshd is still coming up (ssh exits 255) or
            a command timed out; any other failure is final.
        retry_delay: Seconds between tries (fixed).
        timeout: Seconds for one copy.
        run: ``subprocess.run`` (a seam for tests of the command lines).
    """

    name: ClassVar[str] = "ssh"

    def __init__(
        self,
        key_dir: Path,
        *,
        user: str = "root",
        attempts: int = 6,
        retry_delay: float = 10.0,
        timeout: float = 3600.0,
        run: Runner = subprocess.run,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.key_dir = Path(key_dir)
        self.user = user
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        self.timeout = timeout
        self._run = run
        self._sleep = sleep
        self._registered = False
        self._lock = threading.Lock()

    @property
    def key_path(self) -> Path:
        return self.key_dir / KEY_NAME

    def public_key(self) -> str:
        """The public key, generating the pair on first use."""
        with self._lock:
            if not self.key_path.exists():
                keygen = shutil.which("ssh-keygen")
                if keygen is None:
                    raise BackendError(
                        "ssh-keygen is not installed; the Vast backend copies files over SSH",
                        recovery_suggestion="Install OpenSSH (e.g. `apt-get install openssh-client`).",
                    )
                from vibeml.safe_paths import make_private_dir

                make_private_dir(self.key_dir)  # 0700, and so is any folder above it VibeML creates
                res = self._run(
                    [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "vibeml-vast", "-f", str(self.key_path)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if res.returncode != 0:
                    raise BackendError(f"ssh-keygen failed: {res.stderr.strip()[:300]}")
            return self.key_path.with_suffix(".pub").read_text(encoding="utf-8").strip()

    def prepare(self, vast: VastAI, instance: Mapping[str, Any]) -> None:
        key = self.public_key()
        if not self._registered:
            known = {
                str(k.get("key") or k.get("public_key") or k.get("ssh_key") or "").strip() for k in vast.show_ssh_keys()
            }
            if key not in known:
                vast.create_ssh_key(key)
            self._registered = True
        vast.attach_ssh(int(instance["id"]), key)

    # ------------------------------------------------------------------------------ commands

    def _target(self, instance: Mapping[str, Any]) -> tuple[str, str]:
        host, port = instance.get("ssh_host"), instance.get("ssh_port")
        if not host or not port:
            raise BackendError(
                f"instance {instance.get('id')} has no SSH address yet",
                {"instance_id": instance.get("id")},
                "Wait until it is running, then retry (`vibeml status JOB`).",
            )
        return f"{self.user}@{host}", str(int(port))

    def _options(self, instance: Mapping[str, Any]) -> list[str]:
        """ssh/scp options. Host keys are pinned per instance and address (``HostKeyAlias``), not per address
        alone: Vast's SSH proxies give a destroyed instance's port to later instances, each with its own sshd
        key, and a key pinned for ``host:port`` would refuse every later instance there as a changed host
        (accept-new accepts only unknown hosts). A changed key at one instance's address is still refused."""
        iid = str(instance.get("id") or "")
        host, port = instance.get("ssh_host"), instance.get("ssh_port")
        name = re.sub(r"[^A-Za-z0-9.-]", "_", f"vast-{iid}-{host}-{port}")  # one known_hosts word
        alias = ["-o", f"HostKeyAlias={name}"] if iid.isdigit() and host and port else []
        return [
            *alias,
            "-i",
            str(self.key_path),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={self.key_dir / 'known_hosts'}",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "ServerAliveInterval=30",
        ]

    @staticmethod
    def _remote(path: str) -> str:
        p = PurePosixPath(path)
        if not p.is_absolute():
            raise ConfigurationError(
                f"the SSH transport needs an absolute remote path, got {path!r}",
                recovery_suggestion="Set VIBEML_VAST_REMOTE_DIR to an absolute path such as /workspace/vibeml.",
            )
        return str(p)

    def _exec(self, argv: list[str], what: str, stdin: str | None = None) -> None:
        for tool in ("ssh", "scp"):
            if argv[0] == tool and shutil.which(tool) is None:
                raise BackendError(
                    f"{tool} is not installed; the Vast backend copies files over SSH",
                    recovery_suggestion="Install OpenSSH (e.g. `apt-get install openssh-client`).",
                )

        def once() -> None:
            try:
                res = self._run(argv, input=stdin, capture_output=True, text=True, timeout=self.timeout, check=False)
            except subprocess.TimeoutExpired:
                raise _NotReady(f"timed out after {self.timeout:g} s") from None
            if res.returncode == 0:
                return
            output = (res.stderr or res.stdout or "").strip()[-400:]
            raise (_NotReady if res.returncode == 255 else _Failed)(output)  # 255: could not connect (yet)

        def note(exc: BaseException, attempt: int, delay: float) -> None:
            logger.info("%s: ssh not ready (attempt %d/%d): %s", what, attempt, self.attempts, exc)

        try:
            retry_with_backoff(
                max_attempts=self.attempts,
                base_delay=self.retry_delay,
                backoff=1.0,
                max_delay=self.retry_delay,
                jitter=0.0,
                retry_on=(_NotReady,),
                sleep=self._sleep,
                on_retry=note,
            )(once)()
        except _Failed as exc:
            raise BackendError(
                f"{what} failed: {exc.output or 'no output'}",
                recovery_suggestion=(
                    "Check that the instance is running and that ssh/scp work from this machine; then retry."
                ),
            ) from None

    def _ssh(self, instance: Mapping[str, Any], command: str, what: str, stdin: str | None = None) -> None:
        target, port = self._target(instance)
        self.public_key()
        self._exec(["ssh", *self._options(instance), "-p", port, target, command], what, stdin)

    def upload(self, instance: Mapping[str, Any], local: Path, remote: str) -> None:
        remote = self._remote(remote)
        target, port = self._target(instance)
        parent = str(PurePosixPath(remote).parent)
        self._ssh(instance, f"mkdir -p {shlex.quote(parent)}", f"creating {parent} on the instance")
        self._exec(
            ["scp", *self._options(instance), "-P", port, "-r", "-q", str(local), f"{target}:{shlex.quote(remote)}"],
            f"uploading {local.name}",
        )

    def download(self, instance: Mapping[str, Any], remote: str, local: Path) -> None:
        remote = self._remote(remote)
        target, port = self._target(instance)
        local.parent.mkdir(parents=True, exist_ok=True)
        self._exec(
            ["scp", *self._options(instance), "-P", port, "-r", "-q", f"{target}:{shlex.quote(remote)}", str(local)],
            f"downloading {PurePosixPath(remote).name}",
        )

    def put_text(self, instance: Mapping[str, Any], remote: str, text: str) -> None:
        remote = self._remote(remote)
        parent = shlex.quote(str(PurePosixPath(remote).parent))
        self._ssh(instance, f"mkdir -p {parent} && cat > {shlex.quote(remote)}", f"writing {remote}", stdin=text)
