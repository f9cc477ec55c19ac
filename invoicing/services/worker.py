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

from azure.core.exceptions import AzureError

from invoicing.services import dispatch
from invoicing.services.common import DEFAULT_WORKERS
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
    """Keeps received messages hidden while they are worked on (a thread renewing their
    visibility every third of ``seconds``); stopped before they are deleted or released."""

    def __init__(self, queue: WorkQueue, deliveries: list[Delivery], seconds: int):
        self.queue, self.deliveries, self.seconds = queue, deliveries, seconds
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._renew, daemon=True)

    def _renew(self) -> None:
        while not self.stop.wait(self.seconds / 3):
            for delivery in self.deliveries:
                try:
                    self.queue.hide(delivery, self.seconds)
                except Exception:  # the next renewal tries again; at worst a redelivery
                    log.warning("could not extend the visibility of message %s", delivery.id)

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
    batch: int | None = None,
    host: QueueHost | None = None,
    say: Callable[[str], None] | None = None,
) -> DrainResult:
    """Work messages, up to host.json's ``batchSize`` at a time (their contracts invoiced
    together: ``dispatch.process_messages``), until ``max_messages`` were handled or the queue
    stayed empty for ``idle_seconds``. ``visibility_seconds`` (default host.json's
    ``visibilityTimeout``) is both how long a held message stays hidden between renewals and the
    delay before a failed one is retried; ``batch`` (default ``batchSize``) how many messages
    are received and invoiced together."""
    host = host or queue_host()
    hold = max(1, round(visibility_seconds or host.visibility_seconds))
    result = DrainResult()
    idle_since = time.monotonic()
    while max_messages is None or result.processed < max_messages:
        wanted = max(1, min(batch or host.batch_size, 32))
        if max_messages is not None:
            wanted = min(wanted, max_messages - result.processed)
        try:
            received = queue.receive(hold, max_messages=wanted)
        except AzureError as exc:  # the queue did not answer: try again shortly
            log.warning("could not receive from %s: %s", queue.name, exc)
            time.sleep(POLL_SECONDS)
            continue
        if not received:
            if time.monotonic() - idle_since >= idle_seconds:
                break
            time.sleep(POLL_SECONDS)
            continue
        with _Holding(queue, received, hold):
            outcomes = dispatch.process_messages(
                store,
                settings,
                [(d.body, d.dequeue_count) for d in received],
                max_dequeue_count=host.max_dequeue_count,
                workers=DEFAULT_WORKERS,
            )
        for delivery, outcome in zip(received, outcomes, strict=True):
            result.processed += 1
            try:
                text = _settle(queue, delivery, outcome, hold, host, result)
            except AzureError as exc:  # it reappears once its visibility runs out
                text = f"could not be deleted or released ({exc}); it will reappear"
            if text:
                log.warning("message %s %s", delivery.id, text)
                if say is not None:
                    say(f"message {delivery.id}: {text}")
        idle_since = time.monotonic()
    return result


def _settle(
    queue: WorkQueue,
    delivery: Delivery,
    outcome: dispatch.WorkDone | Exception,
    hold: int,
    host: QueueHost,
    result: DrainResult,
) -> str:
    """Delete a message done with, release a failed one for its retry, or move it to the
    poison queue after its last allowed delivery; what happened to a failed one, as text."""
    if not isinstance(outcome, Exception):
        queue.delete(delivery)
        result.succeeded += 1
        result.invoices += outcome.invoices
        result.ledger_written += int(outcome.ledger_written)
        return ""
    result.failed += 1
    if delivery.dequeue_count >= host.max_dequeue_count:
        queue.to_poison(delivery)
        result.poisoned += 1
        return f"moved to {queue.poison_name}: {outcome}"
    queue.hide(delivery, hold)
    return f"delivery {delivery.dequeue_count} failed, retried in {hold} s: {outcome}"
