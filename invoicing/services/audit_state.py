"""Audit (S7, S8) of what a run reads instead of a contract's history (``storage.snapshot``): a
valid ``N:state`` must be the state the contract's invoices give, and the work table must hold
its configuration and every open item as stored. A wrong state would bill a share twice or never;
a missing work row would leave an item unbilled, silently. So each difference is named."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from invoicing.model import Contract, Invoice
from invoicing.shares import state_from_invoices
from invoicing.storage import snapshot
from invoicing.storage.ops import clean
from invoicing.storage.store import Partition, Store

SHOWN = 5  # items named per finding; the count says how many more


def open_work_agrees(
    store: Store, contract_id: str, part: Partition, contract: Contract, invoices: Iterable[Invoice]
) -> list[str]:
    """S8: the contract's ``N:state`` (when valid) and its work partition against its history."""
    row = part.state_row
    whole = snapshot.kept_from(row)
    if whole is None:
        if row is not None and row.get("Valid") is True and row.get("Version") == snapshot.VERSION:
            return [
                f"contract {contract_id}: its N:state row cannot be read; a run reads the "
                "contract in full while it is so (delete the row: the next run rebuilds it)"
            ]
        return []  # missing or stale: the next run loads the contract in full, which is right
    kept = whole.state
    found: list[str] = []
    truth = state_from_invoices(contract, invoices)
    lines = {line.line_id for line in contract.lines if line.not_to_exceed is not None}
    twice = sorted(f"{k.value} {i}" for k, i in truth.invoiced - kept.invoiced)
    never = sorted(f"{k.value} {i}" for k, i in kept.invoiced - truth.invoiced)
    if twice:
        found.append(
            f"contract {contract_id}: its run state misses items its invoices hold "
            f"({_some(twice)}): a run would invoice them again"
        )
    if never:
        found.append(
            f"contract {contract_id}: its run state holds items no live invoice has "
            f"({_some(never)}): a run would never invoice them"
        )
    if {k: v for k, v in kept.nte_used.items() if k in lines} != {
        k: v for k, v in truth.nte_used.items() if k in lines
    }:
        found.append(
            f"contract {contract_id}: its run state's not-to-exceed use differs from its "
            "invoices: a run would bill against the wrong limit"
        )
    if kept.open_shares != truth.open_shares:
        found.append(
            f"contract {contract_id}: its run state's shares to invoice again differ from its "
            "invoices: a run would bill them wrongly"
        )
    ran, markers = whole.ran, set(part.markers)
    if ran != markers:
        odd = sorted(d.isoformat() for d in ran ^ markers)
        found.append(
            f"contract {contract_id}: its run state's committed dates differ from its commit "
            f"markers ({_some(odd)}): a run would plan a committed date again, or skip one"
        )
    pending = part.pending_dates()
    if not pending <= whole.pending:
        found.append(
            f"contract {contract_id}: Pending rows of {_some(sorted(map(str, pending)))} that "
            "its run state does not name: a run of that date would not clean them"
        )
    work = {e["RowKey"]: clean(e) for e in store.work_rows(contract_id)}
    missing = [e for e in part.config_entities() if work.get(e["RowKey"]) != clean(e)]
    if missing:
        found.append(
            f"contract {contract_id}: the work table's copy of its configuration differs from "
            "the stored one: a run would plan with the wrong configuration"
        )
    open_rows: list[dict[str, Any]] = [
        e
        for e in (*part.transactions.values(), *part.milestones.values())
        if snapshot.is_open(snapshot.item_key(e), truth)
    ]
    absent = sorted(e["Id"] for e in open_rows if work.get(e["RowKey"]) != clean(e))
    if absent:
        found.append(
            f"contract {contract_id}: open items missing from the work table or different "
            f"there ({_some(absent)}): a run would not invoice them as stored"
        )
    if found:
        found.append(
            f"contract {contract_id}: to repair, delete its N:state row (RowKey 'N:state' in its "
            "partition): the next run rebuilds the state and the work table from its invoices"
        )
    return found


def _some(names: list[str]) -> str:
    more = len(names) - SHOWN
    return ", ".join(names[:SHOWN]) + (f" and {more} more" if more > 0 else "")
