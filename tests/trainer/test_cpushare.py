"""Concurrent CPU fine-tunes split the cores: registration, peers, stale entries, rebalancing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vibeml.trainer.cpushare import CpuShare, _start_time


def _share(tmp_path: Path, calls: list[int], cores: int = 8) -> CpuShare:
    return CpuShare(registry=tmp_path / "reg", cores=cores, set_threads=calls.append, every_seconds=3600)


def test_alone_it_takes_every_core_and_leaves_no_trace(tmp_path: Path) -> None:
    calls: list[int] = []
    with _share(tmp_path, calls) as share:
        assert calls == [8] and share.threads == 8
        assert (tmp_path / "reg" / str(os.getpid())).exists()
        assert "8 of 8 cores" in share.describe()
    assert not (tmp_path / "reg" / str(os.getpid())).exists()


def test_live_peers_split_the_cores_and_the_share_grows_back(tmp_path: Path) -> None:
    peers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:
        reg = tmp_path / "reg"
        reg.mkdir()
        for p in peers:
            (reg / str(p.pid)).write_text(_start_time(p.pid) or "")
        calls: list[int] = []
        with _share(tmp_path, calls) as share:
            assert share.threads == 2  # 8 cores, 3 runs
            assert "shared with 2 other CPU fine-tunes" in share.describe()
            assert share.rebalance(force=False) == 2 and calls == [2]  # not re-checked before its time
            peers[0].kill()
            peers[0].wait()
            assert share.rebalance() == 4 and calls == [2, 4]
            assert not (reg / str(peers[0].pid)).exists()  # a finished run's entry is removed
    finally:
        for p in peers:
            p.kill()
            p.wait()


def test_a_reused_pid_is_not_a_peer(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / str(os.getppid())).write_text("1")  # a live pid whose start time differs: some other process
    (reg / "999999999").write_text("")  # gone
    (reg / "notes.txt").write_text("ignored")
    calls: list[int] = []
    with _share(tmp_path, calls, cores=2) as share:
        assert share.threads == 2 and share.peers() == 1
    assert sorted(p.name for p in reg.iterdir()) == ["notes.txt"]


def test_an_unwritable_registry_only_costs_the_sharing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    calls: list[int] = []
    with CpuShare(registry=blocker / "reg", cores=4, set_threads=calls.append) as share:
        assert share.threads is None and calls == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_registry_owned_by_someone_else_is_not_trusted(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    os.chown(reg, 12345, 12345)  # planted in a shared /tmp by another user
    calls: list[int] = []
    with CpuShare(registry=reg, cores=4, set_threads=calls.append) as share:
        assert share.threads is None and calls == []
    assert list(reg.iterdir()) == []
