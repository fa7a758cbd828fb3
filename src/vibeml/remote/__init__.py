"""The supervisor that runs on every rented machine: ``python -m vibeml.remote``.

One program for every paid backend (Vast.ai instances, SkyPilot clusters and managed jobs), driven by one
typed payload (:class:`~vibeml.remote.payload.RemoteJob`, in ``$VIBEML_JOB``). It keeps the budget clock
(run time and, where the provider bills the machine itself, money), runs the trainer (one process, or
``torch.distributed.run`` across GPUs and nodes), stops it gracefully before the budget ends, and hands over
to the provider's own end of the run (:mod:`vibeml.backends.vast.remote`,
:mod:`vibeml.backends.skypilot.remote`). This package imports nothing heavy: no torch, no SkyPilot.
"""
