"""SkyPilot's end of the remote supervisor (:mod:`vibeml.remote`): boot time, nodes and GPUs, the exit code.

The task's run script (:data:`~vibeml.backends.skypilot.task.RUN_SCRIPT`, fixed text) only ``cd``s home and
execs ``python -m vibeml.remote``; the job is the typed payload in ``$VIBEML_JOB`` (plain JSON, readable in an
exported YAML). What SkyPilot adds to the shared timeline (:class:`SkyPilotSupervisor`):

* the machine's provisioning and setup are billed: on the first start on a machine (its kernel
  ``boot_id``) the machine's uptime is counted once, unless it is longer than the whole budget (a reused
  cluster was not started for this job: counted from now); the state lives under the payload's
  ``state_dir`` (on the bucket for managed jobs), so a recovered job keeps its clock;
* the trainer runs on ``SKYPILOT_NUM_GPUS_PER_NODE`` processes, across ``SKYPILOT_NUM_NODES`` nodes with
  ``SKYPILOT_NODE_RANK`` and the first of ``SKYPILOT_NODE_IPS`` as the rendezvous;
* there is no bill to read on the machine (the client's watchdog and each candidate's
  ``max_hourly_cost`` keep the money), and nothing to destroy here: the supervisor exits with the trainer's
  code and SkyPilot's autodown (or the client's ``sky down``, after it has copied the adapter) ends the
  cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from vibeml.launch import Rendezvous, rendezvous_from_skypilot
from vibeml.remote.supervisor import Supervisor

__all__ = ["SUPERVISOR", "SkyPilotSupervisor"]

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_UPTIME = Path("/proc/uptime")


class SkyPilotSupervisor(Supervisor):
    """The supervisor on a SkyPilot node (see the module docstring)."""

    def __init__(self, *args: Any, boot_id: Path = _BOOT_ID, uptime: Path = _UPTIME, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._boot_id_path, self._uptime_path = boot_id, uptime

    def boot_seconds(self) -> float:
        boot = ""
        with contextlib.suppress(OSError):
            boot = self._boot_id_path.read_text(encoding="ascii").strip()
        counted = [str(b) for b in self.state.get("boots") or ()]
        if boot and boot in counted:
            return 0.0  # this machine's start is already on the clock
        self.state["boots"] = [*counted, boot or "unknown"][-50:]
        try:
            up = float(self._uptime_path.read_text(encoding="ascii").split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        return up if 0.0 <= up < self.budget else 0.0

    def rendezvous(self) -> Rendezvous:
        """SkyPilot's node variables (:func:`vibeml.launch.rendezvous_from_skypilot`), the payload's port."""
        return dataclasses.replace(rendezvous_from_skypilot(self.env), master_port=self.job.master_port)


SUPERVISOR = SkyPilotSupervisor
