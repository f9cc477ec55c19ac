"""The one-at-a-time blob lease (R18).

Every writing operation of the store (import, run) holds the lease on the blob
``<prefix>-locks/daily-run`` for its whole duration:

* acquired with a finite duration (``Settings.lease_seconds``, 15-60 s; the SDK default is
  infinite); a lease held by someone else raises ``LeaseHeld`` and nothing is done;
* renewed by a daemon thread every third of the duration, and also synchronously by
  ``check()``, which the store calls before EVERY write (renewals at most every
  ``sync_renew_seconds``, default 0: every write; a renewal costs ~2 ms on Azurite, ~10% of a
  run's write time): a lease broken or taken from outside stops the run before its next write;
* ``check()`` refuses to write (``LeaseLost``) once the lease is known lost or the last
  successful renewal is older than two thirds of the duration (a CPU-bound stretch can starve the
  renew thread; past that age another run may soon legitimately take the lease);
* released in ``finally`` (not when lost).
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
SYNC_RENEW_SECONDS = 0.0

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
        self._renewed_at = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.sync_renew_seconds = SYNC_RENEW_SECONDS

    @property
    def max_age(self) -> float:
        return self.seconds * 2 / 3

    def acquire(self) -> Lease:
        try:
            self.client = self.blob.acquire_lease(lease_duration=self.seconds)
        except ResourceExistsError:
            raise LeaseHeld(self.what) from None
        self._renewed_at = time.monotonic()
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._thread.start()
        return self

    def _renew(self, if_older_than: float = 0.0) -> None:
        with self._lock:
            if self._lost or self.client is None:
                return
            if time.monotonic() - self._renewed_at < if_older_than:
                return  # another thread renewed it meanwhile
            started = time.monotonic()
            try:
                self.client.renew()
            except ResourceExistsError as exc:  # broken, or taken by another holder
                self._lost = getattr(exc, "error_code", None) or "renew refused"
                log.info("lease lost: %s", self._lost)
            except AzureError as exc:  # transient: keep trying until the lease is too old
                log.warning("lease renew failed: %s", exc)
            else:
                self._renewed_at = started

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            self._renew()

    def check(self) -> None:
        """Raise ``LeaseLost`` unless it is safe to write now."""
        if self._lost is None and time.monotonic() - self._renewed_at >= self.sync_renew_seconds:
            self._renew(self.sync_renew_seconds)
        if self._lost is not None:
            raise LeaseLost(str(self._lost))
        age = time.monotonic() - self._renewed_at
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
