"""The one-at-a-time blob lease (R18).

Every writing operation of the store (import, run) holds the lease on the blob
``<prefix>-locks/daily-run`` for its whole duration:

* acquired with a finite duration (``Settings.lease_seconds``, 15-60 s; the SDK default is
  infinite); a lease held by someone else raises ``LeaseHeld`` and nothing is done;
* renewed by a daemon thread every third of the duration (``renew_every``), counted in
  ``renewals`` (round trips sent, successful or not);
* ``check()``, which the store calls before EVERY write, fences the write locally and costs no
  round trip while the lease is fresh. It renews synchronously only when the lease *needs*
  renewing, i.e. its last successful renewal is older than a third of the duration (the thread is
  starved by a CPU-bound stretch, or its last renewal failed transiently). It then refuses to write
  (``LeaseLost``) when the lease is known lost (a renewal was refused: broken or taken by another
  holder) or when the last successful renewal is older than two thirds of the duration.

Why these numbers. A renewal's time is taken *before* its request is sent, so the service's
own timer restarted no earlier than that: the lease cannot expire before ``renewed_at +
seconds``. A write is cleared only while ``age <= 2/3 * seconds``, which leaves at least a third
of the duration (5 s at the 15 s minimum) for the cleared request to reach the service before
the lease could expire. A successful renewal, even of a lease that had expired meanwhile, proves
that nobody else leased the blob since our last renewal (the service refuses to renew a lease id
once the blob was leased again), so a synchronous renewal re-establishes the fence whatever the
previous age.

What it cannot see. A lease broken or taken from outside is invisible without a round trip: it is
noticed at the next renewal, i.e. within a third of the duration (plus that renewal's latency),
not before the very next write, and no write is cleared after that renewal. Renewing before every
write would cost one lease PUT per batch (1,029 PUTs for 1,022 batches in one measured run) to
shorten that window; R17 makes the writes of that window harmless anyway (a second run that took
the lease meanwhile writes the same deterministic rows, and the commit protocol tolerates a
concurrent run), so the run keeps one renewal per third of the duration whatever its write rate.

The lease is released in ``finally`` (not when lost).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient

from invoicing.storage.errors import LeaseHeld, LeaseLost

LOCK_BLOB = "daily-run"
RETRY_SECONDS = 1.0  # pause before the thread retries a renewal that failed transiently

log = logging.getLogger(__name__)


def lock_blob(service: BlobServiceClient, container: str) -> BlobClient:
    """The lock blob, created (with its container) if missing: leasing a missing blob is a 404."""
    container_client = service.get_container_client(container)
    with contextlib.suppress(ResourceExistsError):
        container_client.create_container()
    blob = container_client.get_blob_client(LOCK_BLOB)
    with contextlib.suppress(ResourceExistsError):
        blob.upload_blob(b"", overwrite=False)
    return blob


class Lease:
    """Context manager holding the lease; ``check()`` before every write."""

    def __init__(self, blob: BlobClient, seconds: int, what: str = "run"):
        if not 15 <= seconds <= 60:
            raise ValueError("a blob lease lasts 15 to 60 seconds")
        self.blob = blob
        self.seconds = seconds
        self.what = what
        self.client: BlobLeaseClient | None = None
        self.renewals = 0  # renewal round trips sent (thread and check together)
        self.lost_at: float | None = None  # monotonic time the loss was noticed
        self._renewed_at = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def renew_every(self) -> float:
        """A lease older than this needs renewing (the thread's period, check's trigger)."""
        return self.seconds / 3

    @property
    def max_age(self) -> float:
        """No write is cleared once the last successful renewal is older than this."""
        return self.seconds * 2 / 3

    @property
    def age(self) -> float:
        """Seconds since the last successful renewal (or the acquisition) was sent."""
        return time.monotonic() - self._renewed_at

    def acquire(self) -> Lease:
        try:
            self.client = self.blob.acquire_lease(lease_duration=self.seconds)
        except ResourceExistsError:
            raise LeaseHeld(self.what) from None
        self._renewed_at = time.monotonic()
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        """Renew unless lost, released, or renewed recently enough by another thread."""
        with self._lock:
            if self._lost or self.client is None or self.age < self.renew_every:
                return
            started = time.monotonic()
            self.renewals += 1
            try:
                self.client.renew()
            except ResourceExistsError as exc:  # broken, or taken by another holder
                self._lost = getattr(exc, "error_code", None) or "renew refused"
                self.lost_at = time.monotonic()
                log.info("lease lost: %s", self._lost)
            except AzureError as exc:  # transient: keep trying until the lease is too old
                log.warning("lease renew failed: %s", exc)
            else:
                self._renewed_at = started

    def _renew_loop(self) -> None:
        while True:
            due_in = self.renew_every - self.age
            if self._stop.wait(due_in if due_in > 0 else RETRY_SECONDS):
                return
            if self._lost is not None:
                return
            self._renew()

    def check(self) -> None:
        """Raise ``LeaseLost`` unless it is safe to write now; a round trip only when stale."""
        if self._lost is None and self.age >= self.renew_every:
            self._renew()  # the thread is late (starved, or its last renewal failed)
        if self._lost is not None:
            raise LeaseLost(str(self._lost))
        age = self.age
        if age > self.max_age:
            raise LeaseLost(f"not renewed for {age:.0f} s")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        client, self.client = self.client, None
        if client is not None and self._lost is None:
            try:
                client.release()
            except (AzureError, ValueError) as exc:  # expired or taken meanwhile: nothing to undo
                log.warning("lease release failed: %s", exc)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
