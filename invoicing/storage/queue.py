"""The work queue of the fan-out (S9) on Azure Storage Queues (``azure-storage-queue``).

One message per contract of a dispatched run: ``{"contract": id, "dates": ["YYYY-MM-DD", ...],
"batch": id}`` as JSON, base64-encoded, which is what the Functions host's queue trigger decodes by
default (``extensions.queues.messageEncoding``); a message sent without the encoding would fail
to decode in the host and go straight to the poison queue. The poison queue is
``<name>-poison``, the host's convention: the ``worker`` command moves a message there after
``maxDequeueCount`` failed deliveries, as the host does.

The connection is the tables' (``Settings.storage_connection``, S2): Azurite serves queues on
its queue port (the connection string's ``QueueEndpoint``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import (
    ExponentialRetry,
    QueueClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from invoicing.settings import POISON_SUFFIX

MAX_MESSAGES = 32  # the service's cap per receive


@dataclass(frozen=True, slots=True)
class Work:
    """What one message asks: invoice ``contract`` over ``dates`` (in order), for ``batch``."""

    contract: str
    dates: tuple[date, ...]
    batch: str


def work_body(work: Work) -> str:
    return json.dumps(
        {
            "contract": work.contract,
            "dates": [d.isoformat() for d in work.dates],
            "batch": work.batch,
        },
        ensure_ascii=False,
    )


def read_body(text: str | bytes) -> Work:
    """The work a message body names; ``ValueError`` for anything else (such a message can never
    succeed: it is retried, then lands on the poison queue)."""
    try:
        raw: Any = json.loads(text)
        contract, dates, batch = raw["contract"], raw["dates"], raw.get("batch", "")
        if not isinstance(contract, str) or not contract or not isinstance(batch, str):
            raise TypeError("contract and batch must be text")
        days = tuple(date.fromisoformat(d) for d in dates)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a work message ({type(exc).__name__}: {exc})") from None
    if list(days) != sorted(set(days)):
        raise ValueError("not a work message: its dates are not in order")
    return Work(contract, days, batch)


@dataclass(slots=True)
class Delivery:
    """A received message: its text, how often it was delivered, and the receipt that lets its
    holder delete it or change its visibility (renewed by each update)."""

    id: str
    pop_receipt: str
    dequeue_count: int
    body: str


class WorkQueue:
    """The work queue and its poison queue."""

    def __init__(self, connection: str, name: str):
        self.name = name
        self.poison_name = name + POISON_SUFFIX

        def client(queue: str) -> QueueClient:
            return QueueClient.from_connection_string(
                connection,
                queue,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
                # the SDK's default waits 15 s, then 18 s, ...: a few short retries instead
                retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3),
                connection_timeout=10,
            )

        self.queue = client(name)
        self.poison = client(self.poison_name)

    def ensure(self) -> None:
        """Create the queue and its poison queue if missing."""
        for client in (self.queue, self.poison):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()

    def send(self, works: Sequence[Work], workers: int = 1) -> int:
        bodies = [work_body(w) for w in works]
        if workers <= 1 or len(bodies) <= 1:
            for body in bodies:
                self.queue.send_message(body)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self.queue.send_message, bodies))
        return len(bodies)

    def receive(self, visibility_seconds: int, max_messages: int = 1) -> list[Delivery]:
        """Up to ``max_messages`` visible messages, hidden from others for ``visibility_seconds``
        (the holder extends that while it works)."""
        found = self.queue.receive_messages(
            messages_per_page=max_messages,
            max_messages=max_messages,
            visibility_timeout=visibility_seconds,
        )
        return [
            Delivery(m.id, m.pop_receipt or "", int(m.dequeue_count or 1), str(m.content))
            for m in found
        ]

    def hide(self, delivery: Delivery, seconds: int) -> None:
        """Keep a held message hidden ``seconds`` from now (0: visible again now); the delivery
        takes the new receipt."""
        updated = self.queue.update_message(
            delivery.id, delivery.pop_receipt, visibility_timeout=seconds
        )
        delivery.pop_receipt = updated.pop_receipt or delivery.pop_receipt

    def delete(self, delivery: Delivery) -> None:
        """Done with it (a message already gone is fine)."""
        with contextlib.suppress(ResourceNotFoundError):
            self.queue.delete_message(delivery.id, delivery.pop_receipt)

    def to_poison(self, delivery: Delivery) -> None:
        """What the host does after ``maxDequeueCount`` failures: a copy on the poison queue,
        then the message deleted (copied first: a crash in between leaves a duplicate, never
        a loss)."""
        self.poison.send_message(delivery.body)
        self.delete(delivery)

    def peek_poison(self, max_messages: int = MAX_MESSAGES) -> list[str]:
        """The texts at the head of the poison queue, without taking them."""
        return [str(m.content) for m in self.poison.peek_messages(max_messages=max_messages)]

    def waiting(self) -> int:
        """About how many messages the work queue holds (visible or not)."""
        return int(self.queue.get_queue_properties().approximate_message_count or 0)
