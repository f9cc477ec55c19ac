"""R18 at the level of the lease itself (issue 11): ``check()`` costs no round trip while the
lease is fresh, renews on the write path when the renewer is late, keeps trying while renewals
fail, and refuses every write once the last successful renewal is too old to be sure the lease
is still held."""

from __future__ import annotations

import time
import uuid

import pytest
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from invoicing.storage.azurite import Azurite
from invoicing.storage.errors import LeaseLost
from invoicing.storage.lease import Lease, lock_blob


def test_check_renews_only_when_stale_and_refuses_once_the_service_is_gone_too_long():
    with Azurite() as emulator:  # a private one: this test stops it
        blobs = BlobServiceClient.from_connection_string(
            emulator.connection_string,
            retry_policy=ExponentialRetry(initial_backoff=0.1, increment_base=1.1, retry_total=1),
            connection_timeout=2,
        )
        lease = Lease(lock_blob(blobs, "l" + uuid.uuid4().hex[:12]), 15).acquire()
        try:
            # the renewer is starved (a CPU-bound stretch): only check() can keep the lease
            lease._stop.set()
            assert lease._thread is not None
            lease._thread.join(timeout=10)
            for _ in range(500):
                lease.check()
            assert lease.renewals == 0  # fresh: writes are fenced locally, no round trip
            time.sleep(lease.renew_every - lease.age + 0.2)
            lease.check()
            assert lease.renewals == 1 and lease.age < 1  # stale: renewed on the write path
            emulator.stop()  # the service goes away: every renewal now fails transiently
            time.sleep(lease.renew_every - lease.age + 0.2)
            cleared: list[float] = []
            deadline = time.monotonic() + 60
            with pytest.raises(LeaseLost, match=r"not renewed for \d+ s"):
                while time.monotonic() < deadline:
                    lease.check()
                    cleared.append(lease.age)
                    time.sleep(0.5)
            assert lease.age > lease.max_age
            # writes went on while the lease was certainly still held, each check trying a
            # renewal, and stopped past two thirds of the lease
            assert cleared and all(lease.renew_every < a <= lease.max_age + 0.1 for a in cleared)
            assert lease.renewals >= 1 + len(cleared)
            assert lease.lost_at is None  # failed renewals, not a refusal: nothing known lost
        finally:
            lease.release()
