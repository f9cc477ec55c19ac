"""The share rule (R13, R15): what a contract's invoices say it has already invoiced.

The unit of invoicing is an item's share for one customer. The store keeps no share table: a
contract's state (items with a live share, not-to-exceed use, shares waiting to go out again) is
derived from its invoices, cancelled ones included, by ``state_from_invoices``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from invoicing.model import (
    Contract,
    DetailStatus,
    Invoice,
    ItemKey,
    Share,
    SourceType,
    Status,
)
from invoicing.money import ZERO


@dataclass(frozen=True, slots=True)
class ContractState:
    """What a contract has already invoiced on live (Draft or Confirmed) invoices.

    ``invoiced`` holds the items with at least one share on a live invoice. ``open_shares`` holds,
    per item whose shares are fixed by an earlier invoicing (R13), the shares that are on no live
    invoice (their draft was cancelled, R15): they are invoiced again, to the same customers for
    the same amounts, at the line's next due run. An item whose every share was cancelled is not in
    ``invoiced`` but is in ``open_shares`` (its shares stay fixed while its amount is unchanged).
    """

    invoiced: frozenset[ItemKey] = frozenset()
    nte_used: Mapping[str, Decimal] = field(default_factory=dict)
    open_shares: Mapping[ItemKey, tuple[Share, ...]] = field(default_factory=dict)


LIVE, CLOSED, HISTORY, CREDIT, CREDIT_CLOSED = range(5)  # what a detail says of its share


def state_from_invoices(contract: Contract, invoices: Iterable[Invoice]) -> ContractState:
    """The state implied by a contract's invoices and credit notes: how the store resumes
    (R13-R15, R21, R22).

    ``invoices`` are every committed invoice and credit note of the contract, cancelled ones
    included (they hold the shares that must go out again). Per item and customer, its details
    say what became of the share: on a live invoice (*live*), written off (*closed*), cancelled
    or removed from a draft (*history*), credited back to the backlog or credited and written
    off. A share whose live details outnumber its credits is live; else one that was ever
    written off is closed; else it is *open*: it goes out again, to the same customer for the
    same amount. An item's shares belong to its latest *generation*: the details from the latest
    run date that split it afresh on (``Detail.rebilled`` marks the shares that went out again as
    fixed), so an item changed after every share of it was cancelled is split afresh.
    """
    docs = list(invoices)
    nte_lines = {line.line_id for line in contract.lines if line.not_to_exceed is not None}
    used: dict[str, Decimal] = {}
    for inv in docs:
        if inv.status is Status.CANCELLED:
            continue
        for line in inv.lines:
            if line.contract_line_id in nte_lines:
                # credit notes carry negative lines: credited amounts free room (R21)
                used[line.contract_line_id] = used.get(line.contract_line_id, ZERO) + line.amount
    history = item_entries(docs)
    invoiced: set[ItemKey] = set()
    open_shares: dict[ItemKey, tuple[Share, ...]] = {}
    for key, entries in history.items():
        taken, pending = _shares_of(entries)
        if taken:
            invoiced.add(key)
        if pending:
            open_shares[key] = pending
    return ContractState(frozenset(invoiced), used, open_shares)


def _kind(status: DetailStatus, cancelled: bool, credit: bool) -> int:
    if credit:
        return CREDIT_CLOSED if status is DetailStatus.WRITTEN_OFF else CREDIT
    if status is DetailStatus.WRITTEN_OFF:
        return CLOSED  # written off stays written off, even on a draft cancelled later
    if cancelled or status is DetailStatus.REMOVED:
        return HISTORY
    return LIVE


def item_amounts(contract: Contract, keys: Iterable[ItemKey]) -> dict[ItemKey, Decimal]:
    wanted = set(keys)
    amounts: dict[ItemKey, Decimal] = {}
    if not wanted:
        return amounts
    for m in contract.milestones:
        key = (SourceType.MILESTONE, m.milestone_id)
        if key in wanted:
            amounts[key] = m.amount
    for t in contract.transactions:
        key = (SourceType.TRANSACTION, t.transaction_id)
        if key in wanted:
            amounts[key] = t.amount
    return amounts


class ShareRecord(NamedTuple):
    """What became of one customer's share of one item (its latest generation)."""

    share: Share
    live: int  # live invoice details of it, less the credit notes that credited it
    closed: bool  # written off (on its draft, or with its credit)

    @property
    def state(self) -> str:
        if self.live > 0:
            return "live"
        return "closed" if self.closed else "open"


def _shares_of(entries: list[tuple[date, int, Share, bool]]) -> tuple[bool, tuple[Share, ...]]:
    """(is any share of the item live or closed, the shares of its latest generation to invoice
    again)."""
    records = share_records(entries)
    taken = any(r.state != "open" for r in records.values())
    return taken, tuple(r.share for _, r in sorted(records.items()) if r.state == "open")


def share_records(entries: list[tuple[date, int, Share, bool]]) -> dict[str, ShareRecord]:
    """Per customer, the record of its share of one item, from the item's document entries
    (run date, kind, share, a fresh split?). The latest generation starts at the latest run
    date that split the item afresh (every share at once); shares that went out again as fixed
    earlier (``Detail.rebilled``) belong to the generation they came from."""
    fresh = [day for day, kind, _, is_fresh in entries if kind < CREDIT and is_fresh]
    start = max(fresh, default=date.min)
    live: dict[str, int] = {}
    closed: set[str] = set()
    latest: dict[str, tuple[date, Share]] = {}
    for day, kind, share, _ in entries:
        if day < start:
            continue
        customer = share.customer_id
        if kind == LIVE:
            live[customer] = live.get(customer, 0) + 1
        elif kind in (CREDIT, CREDIT_CLOSED):
            live[customer] = live.get(customer, 0) - 1
        if kind in (CLOSED, CREDIT_CLOSED):
            closed.add(customer)
        if kind < CREDIT and (customer not in latest or day >= latest[customer][0]):
            latest[customer] = (day, share)
    return {
        customer: ShareRecord(share, live.get(customer, 0), customer in closed)
        for customer, (_, share) in latest.items()
    }


def item_entries(
    docs: Iterable[Invoice],
) -> dict[ItemKey, list[tuple[date, int, Share, bool]]]:
    """Every document's details, per item: what ``share_records`` reads (for audit)."""
    docs = list(docs)
    dates = {inv.invoice_id: inv.invoice_date for inv in docs}
    history: dict[ItemKey, list[tuple[date, int, Share, bool]]] = {}
    for inv in docs:
        cancelled = inv.status is Status.CANCELLED
        credit = inv.is_credit_note
        day = dates.get(inv.credited_invoice_id or "", inv.invoice_date) if credit else None
        for line in inv.lines:
            for d in line.details:
                kind = _kind(d.status, cancelled, credit)
                share = Share(inv.customer_id, inv.customer_name, d.split_percent, abs(d.amount))
                history.setdefault((d.source_type, d.source_id), []).append(
                    (day or inv.invoice_date, kind, share, not d.rebilled)
                )
    return history
