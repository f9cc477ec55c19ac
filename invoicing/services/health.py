"""Health (H2): storage reachable, and what needs someone while it is (R19, S5a)."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import AzureError

from invoicing import catchup
from invoicing.storage import rows
from invoicing.storage.store import Store


def health(store: Store) -> bool:
    """Storage reachable (H2)?"""
    try:
        store.counter_row()
        return True
    except AzureError:
        return False


def health_report(store: Store) -> dict[str, Any]:
    """H2's answer. Missed and incomplete run dates and unfinished imports do not make the app
    unhealthy (it still works: 200), but they are listed until someone fixes them."""
    if not health(store):
        return {"status": "unavailable", "storage": False}
    try:
        ledger = store.ledger()
        imports = store.unfinished_imports()
        strays = store.stray_tables()
    except AzureError:
        return {"status": "unavailable", "storage": False}
    states = {d.isoformat(): rows.ledger_state(e) for d, e in ledger.items()}
    missed = sorted(d for d, state in states.items() if state == catchup.MISSED)
    incomplete = sorted(
        d for d, state in states.items() if state not in (catchup.MISSED, catchup.COMPLETED)
    )
    attention = bool(missed or incomplete or imports or strays)
    # the contracts an incomplete date waits for: failed in a run, or poisoned on the work
    # queue (S9), with the reason, until someone fixes them and the next run redoes the date
    failed = {
        d.isoformat(): rows.ledger_failed(e)
        for d, e in sorted(ledger.items())
        if rows.ledger_state(e) == catchup.INCOMPLETE and rows.ledger_failed(e)
    }
    return {
        "status": "attention" if attention else "ok",
        "storage": True,
        "missed_dates": missed,
        "incomplete_dates": incomplete,
        "unfinished_imports": sorted(imports),
        "failed_contracts": failed,
        # rows a version from before table shards wrote where nothing reads them (audit says more)
        "stray_tables": strays,
    }
