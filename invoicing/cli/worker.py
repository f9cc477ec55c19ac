"""The ``worker`` command (S9): drain the work queue of a run dispatched with
``INVOICE_DISPATCH=queue``, as the Functions host's ``invoice_contracts`` (H11) would, with the
retry and poison settings of host.json. Several can run at once, on one machine or many."""

from __future__ import annotations

import sys

from invoicing import services
from invoicing.outcomes import EXIT_ERROR, EXIT_OK
from invoicing.settings import Settings


def worker_command(
    settings: Settings,
    max_messages: int | None,
    idle_seconds: float,
    visibility_seconds: int | None,
    batch: int | None = None,
) -> int:
    store = services.open_store(settings)
    queue = services.open_queue(settings)
    watched = sys.stderr.isatty()

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result = services.drain(
        store,
        queue,
        settings,
        max_messages=max_messages,
        idle_seconds=idle_seconds,
        visibility_seconds=visibility_seconds,
        batch=batch,
        say=say if watched else None,
    )
    print(
        f"worker on {queue.name}: {result.processed} message(s), {result.succeeded} done, "
        f"{result.failed} failed ({result.poisoned} moved to {queue.poison_name}); "
        f"{result.invoices} invoice(s); {result.ledger_written} batch(es) completed in the ledger"
    )
    if result.poisoned:
        print(
            f"{result.poisoned} message(s) moved to {queue.poison_name}: their contracts' dates "
            "stay incomplete (see ledger, health, audit)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_OK
