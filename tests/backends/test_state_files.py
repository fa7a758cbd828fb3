"""The backends' state files are replaced atomically (:func:`vibeml.safe_paths.atomic_write_bytes`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from vibeml.backends.vast.progress import STATE_FILE, JobState


def test_job_state_saved_from_many_threads_is_always_whole(tmp_path: Path) -> None:
    """Concurrent writers in one process: last one wins; a reader never sees a torn or empty file."""
    job_dir = tmp_path / "job"
    JobState(job_dir).save()
    stop = threading.Event()
    torn: list[str] = []

    def write(n: int) -> None:
        state = JobState(job_dir)
        for i in range(30):
            state.data = {"writer": n, "i": i, "pad": "x" * 4096}
            state.save()

    def read() -> None:
        while not stop.is_set():
            text = (job_dir / STATE_FILE).read_text(encoding="utf-8")
            try:
                json.loads(text)
            except ValueError:
                torn.append(text[:80])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert torn == []
    assert JobState(job_dir).data["i"] == 29
    assert sorted(p.name for p in job_dir.iterdir()) == [STATE_FILE]  # no temp file left behind
    assert (job_dir / STATE_FILE).stat().st_mode & 0o777 == 0o600  # job state is private
