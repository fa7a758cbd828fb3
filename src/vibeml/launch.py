"""One launcher for the trainer on every backend: ``python -m vibeml.trainer``, or torchrun around it.

:func:`trainer_command` builds the command line from a :class:`Rendezvous` (processes per node, nodes,
this node's rank, the master's address and port): one process runs the trainer directly; several run it
under ``python -m torch.distributed.run`` (torchrun), ``--standalone`` on one node (a free port is chosen),
with a static rendezvous at the master (node rank 0) across nodes. Every backend uses it:

- local: ``--gpu-count N`` → N processes on this machine (:meth:`TrainingProgram.argv`);
- Vast: the on-instance runner, with one process per GPU of the rented offer;
- SkyPilot: the run script calls ``python -m vibeml.launch --skypilot --config …``, which reads
  ``SKYPILOT_NUM_GPUS_PER_NODE``, ``SKYPILOT_NUM_NODES``, ``SKYPILOT_NODE_RANK`` and ``SKYPILOT_NODE_IPS``
  (the first address is the master) and execs the command (:func:`rendezvous_from_skypilot`).

CPU processes: on a machine with no GPU the processes train on the CPU and talk over gloo (the trainer
picks the backend from the device). Local runs allow that only up to ``VIBEML_CPU_PROCESSES`` processes
(``Settings.cpu_processes``; default 0: ``--gpu-count 2`` on a CPU-only machine is refused, as a user asking
for GPUs most likely expects GPUs); tests and CPU experiments set it.

No torch import here: this module runs in the CLI and in the launch script before torch is needed.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vibeml.exceptions import ConfigurationError

__all__ = [
    "CPU_PROCESSES_ENV",
    "DEFAULT_MASTER_PORT",
    "Rendezvous",
    "main",
    "rendezvous_from_skypilot",
    "trainer_command",
]

CPU_PROCESSES_ENV = "VIBEML_CPU_PROCESSES"
MASTER_PORT_ENV = "VIBEML_MASTER_PORT"
DEFAULT_MASTER_PORT = 29500
TRAINER_MODULE = "vibeml.trainer"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class Rendezvous:
    """Where the trainer's processes are and how they find each other."""

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None  # required with several nodes
    master_port: int = DEFAULT_MASTER_PORT

    def __post_init__(self) -> None:
        ctx = {
            "nproc_per_node": self.nproc_per_node,
            "nnodes": self.nnodes,
            "node_rank": self.node_rank,
            "master_port": self.master_port,
        }
        if not 1 <= self.nproc_per_node <= 512 or not 1 <= self.nnodes <= 1024:
            raise ConfigurationError(
                "processes per node must be 1-512 and nodes 1-1024", ctx, "Ask for fewer GPUs or nodes."
            )
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigurationError(
                f"node rank {self.node_rank} is outside 0..{self.nnodes - 1}", ctx, "Check the cluster's node rank."
            )
        if not 1 <= self.master_port <= 65535:
            raise ConfigurationError(
                f"master port {self.master_port} is not a TCP port", ctx, f"Set {MASTER_PORT_ENV} to 1-65535."
            )
        if self.nnodes > 1 and not _valid_host(self.master_addr):
            raise ConfigurationError(
                f"a {self.nnodes}-node run needs the master's address, got {self.master_addr!r}",
                ctx,
                "Give the first node's IP address or host name.",
            )

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def _valid_host(addr: str | None) -> bool:
    if not addr:
        return False
    try:
        ipaddress.ip_address(addr)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(addr))


def trainer_command(
    python: str, config_path: str | Path, rdzv: Rendezvous | None = None, module: str = TRAINER_MODULE
) -> list[str]:
    """The argv that runs the trainer ``module`` on ``config_path`` as ``rdzv`` says (one process: no torchrun)."""
    if not _MODULE.match(module):
        raise ConfigurationError(f"{module!r} is not a dotted module name", {"module": module})
    rdzv = rdzv or Rendezvous()
    tail = ["-m", module, "--config", str(config_path)]
    if rdzv.world_size == 1:
        return [python, *tail]
    run = [python, "-m", "torch.distributed.run"]
    per_node = f"--nproc_per_node={rdzv.nproc_per_node}"
    if rdzv.nnodes == 1:
        return [*run, "--standalone", per_node, *tail]
    return [
        *run,
        f"--nnodes={rdzv.nnodes}",
        per_node,
        f"--node_rank={rdzv.node_rank}",
        f"--master_addr={rdzv.master_addr}",
        f"--master_port={rdzv.master_port}",
        *tail,
    ]


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number", {name: raw}) from None


def rendezvous_from_skypilot(env: Mapping[str, str]) -> Rendezvous:
    """The rendezvous of this SkyPilot node, from the variables SkyPilot sets on every node."""
    nnodes = _int_env(env, "SKYPILOT_NUM_NODES", 1)
    ips = [line.strip() for line in (env.get("SKYPILOT_NODE_IPS") or "").splitlines() if line.strip()]
    return Rendezvous(
        nproc_per_node=max(1, _int_env(env, "SKYPILOT_NUM_GPUS_PER_NODE", 1)),
        nnodes=nnodes,
        node_rank=_int_env(env, "SKYPILOT_NODE_RANK", 0),
        master_addr=ips[0] if ips else None,
        master_port=_int_env(env, MASTER_PORT_ENV, DEFAULT_MASTER_PORT),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vibeml.launch --config PATH [--skypilot | --nproc-per-node N]``: exec the trainer command."""
    parser = argparse.ArgumentParser(prog="python -m vibeml.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the trainer's JSON config")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--skypilot", action="store_true", help="rendezvous from SkyPilot's environment")
    where.add_argument("--nproc-per-node", type=int, default=1, help="processes on this (only) node")
    parser.add_argument("--print", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(argv)
    try:
        rdzv = rendezvous_from_skypilot(os.environ) if args.skypilot else Rendezvous(nproc_per_node=args.nproc_per_node)
        cmd = trainer_command(sys.executable, args.config, rdzv)
    except ConfigurationError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.recovery_suggestion:
            print(f"hint: {exc.recovery_suggestion}", file=sys.stderr)
        return 2
    if args.print:
        print(" ".join(cmd))
        return 0
    print(f"[vibeml] {rdzv.world_size} process(es): {' '.join(cmd[2:])}", flush=True)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # same pid: a budget timeout's SIGTERM reaches torchrun, which passes it on
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
