"""Draining the work queue outside the Functions host (the ``worker`` command, S9), the way the
host's queue trigger does it with the settings of host.json (``extensions.queues``):

* a message is received hidden for ``visibility`` seconds and kept hidden, by an update every
  third of that, while its contract is invoiced (the host holds its messages the same way); a
  worker killed while it works simply stops renewing, and the message is delivered again;
* done: the message is deleted;
* failed: it is made visible again after ``visibility`` seconds (host.json's ``visibilityTimeout``,
  the host's delay before a retry), unless this was delivery ``maxDequeueCount``: then it is
  moved to the poison queue, as the host does (``dispatch.process_message`` has recorded the
  contract as poisoned first).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from invoicing.services import dispatch
from invoicing.settings import QueueHost, Settings, queue_host
from invoicing.storage.queue import Delivery, WorkQueue
from invoicing.storage.store import Store

log = logging.getLogger("invoicing.services")
POLL_SECONDS = 0.5


@dataclass
class DrainResult:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0  # deliveries that failed (retried later, or poisoned)
    poisoned: int = 0  # messages moved to the poison queue
    ledger_written: int = 0  # batches this worker found done and wrote the ledger of
    invoices: int = 0


class _Holding:
    """Keeps a received message hidden while it is worked on (a thread renewing its visibility
    every third of ``seconds``); stopped before the message is deleted or released."""

    def __init__(self, queue: WorkQueue, delivery: Delivery, seconds: int):
        self.queue, self.delivery, self.seconds = queue, delivery, seconds
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._renew, daemon=True)

    def _renew(self) -> None:
        while not self.stop.wait(self.seconds / 3):
            try:
                self.queue.hide(self.delivery, self.seconds)
            except Exception:  # the next renewal tries again; the worst case is a redelivery
                log.warning("could not extend the visibility of message %s", self.delivery.id)

    def __enter__(self) -> _Holding:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def drain(
    store: Store,
    queue: WorkQueue,
    settings: Settings,
    *,
    max_messages: int | None = None,
    idle_seconds: float = 10.0,
    visibility_seconds: int | None = None,
    host: QueueHost | None = None,
    say: Callable[[str], None] | None = None,
) -> DrainResult:
    """Work messages one at a time until ``max_messages`` were handled or the queue stayed empty
    for ``idle_seconds``. ``visibility_seconds`` (default host.json's ``visibilityTimeout``) is
    both how long a held message stays hidden between renewals and the delay before a failed one
    is retried."""
    host = host or queue_host()
    hold = max(1, round(visibility_seconds or host.visibility_seconds))
    result = DrainResult()
    idle_since = time.monotonic()
    while max_messages is None or result.processed < max_messages:
        received = queue.receive(hold)
        if not received:
            if time.monotonic() - idle_since >= idle_seconds:
                break
            time.sleep(POLL_SECONDS)
            continue
        delivery = received[0]
        error: Exception | None = None
        with _Holding(queue, delivery, hold):
            try:
                done = dispatch.process_message(
                    store,
                    settings,
                    delivery.body,
                    delivery.dequeue_count,
                    max_dequeue_count=host.max_dequeue_count,
                )
            except Exception as exc:  # the message's failure, not the worker's
                error = exc
        result.processed += 1
        if error is None:
            queue.delete(delivery)
            result.succeeded += 1
            result.invoices += done.invoices
            result.ledger_written += int(done.ledger_written)
        else:
            result.failed += 1
            if delivery.dequeue_count >= host.max_dequeue_count:
                queue.to_poison(delivery)
                result.poisoned += 1
                text = f"moved to {queue.poison_name}: {error}"
            else:
                queue.hide(delivery, hold)
                text = f"delivery {delivery.dequeue_count} failed, retried in {hold} s: {error}"
            log.warning("message %s %s", delivery.id, text)
            if say is not None:
                say(f"message {delivery.id}: {text}")
        idle_since = time.monotonic()
    return result
