"""One ``VastAI`` shared by 64 threads: every call answered, no cross-talk."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.vast.vast_helpers import SECRET_KEY, fast_sleep
from vibeml.testing.fake_vast import FakeVast
from vibeml.vast import VastAI

THREADS = 64


def test_64_threads_share_one_client(make_fake: Callable[..., FakeVast]) -> None:
    fake = make_fake(n_offers=300)
    # 25 faults in all (20 × 429, 5 drops): with more attempts than faults, every call must get through,
    # however the threads happen to be scheduled.
    with VastAI(api_key=SECRET_KEY, server_url=fake.url, sleep=fast_sleep, retry=26) as client:
        offers = client.search_offers("", limit=THREADS)
        assert len(offers) == THREADS
        fake.faults.rate_limit(20, retry_after=0.001)  # contention plus throttling
        fake.faults.drop(5, endpoint="show_instance")
        barrier = threading.Barrier(THREADS)

        def work(i: int) -> tuple[int, int, str, str, str]:
            barrier.wait()
            label = f"thread-{i}"
            created = client.create_instance(
                offers[i]["id"], image=f"image-{i}", label=label, onstart_cmd=f"echo worker-{i}"
            )
            iid = created["new_contract"]
            client.label_instance(iid, f"{label}-renamed")
            shown = client.show_instance(iid)
            fake.wait_for_status(iid, "exited")
            log = client.logs(iid, poll_interval=0.005)
            client.destroy_instance(iid)
            return i, iid, shown["label"], shown["image_uuid"], log

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            results = list(pool.map(work, range(THREADS)))

    assert len(results) == THREADS
    assert len({iid for _, iid, _, _, _ in results}) == THREADS
    for i, _, label, image, log in results:
        assert label == f"thread-{i}-renamed"
        assert image == f"image-{i}"
        assert log.strip() == f"worker-{i}"
    assert fake.instance_ids() == []  # every instance destroyed
    assert len(fake.instance_ids(include_destroyed=True)) == THREADS  # exactly one machine per thread
