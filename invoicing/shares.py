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

from invoicing.model import Contract, Invoice, ItemKey, Share, SourceType, Status
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


def state_from_invoices(contract: Contract, invoices: Iterable[Invoice]) -> ContractState:
    """The state implied by a contract's invoices: how the store resumes (R13-R15).

    ``invoices`` are every invoice of the contract, cancelled ones included (they hold the shares
    that must go out again). An item's shares belong to its latest *generation*: the details from
    the latest run date on which its details add up to its current amount (a full invoicing) on.
    A share of that generation on no live invoice is open: it goes out again unchanged.
    """
    invoiced: set[ItemKey] = set()
    nte_lines = {line.line_id for line in contract.lines if line.not_to_exceed is not None}
    used: dict[str, Decimal] = {}
    # item -> [(run date, live?, share)] over every invoice, cancelled ones included
    history: dict[ItemKey, list[tuple[date, bool, Share]]] = {}
    for invoice in invoices:
        live = invoice.status is not Status.CANCELLED
        for line in invoice.lines:
            for detail in line.details:
                key = (detail.source_type, detail.source_id)
                share = Share(
                    invoice.customer_id,
                    invoice.customer_name,
                    detail.split_percent,
                    detail.amount,
                )
                history.setdefault(key, []).append((invoice.invoice_date, live, share))
                if live:
                    invoiced.add(key)
            if live and line.contract_line_id in nte_lines:
                used[line.contract_line_id] = used.get(line.contract_line_id, ZERO) + line.amount
    amounts = _item_amounts(contract, history.keys())
    open_shares: dict[ItemKey, tuple[Share, ...]] = {}
    for key, entries in history.items():
        pending = _open_shares(entries, amounts.get(key))
        if pending:
            open_shares[key] = pending
    return ContractState(frozenset(invoiced), used, open_shares)


def _item_amounts(contract: Contract, keys: Iterable[ItemKey]) -> dict[ItemKey, Decimal]:
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


def _open_shares(
    entries: list[tuple[date, bool, Share]], amount: Decimal | None
) -> tuple[Share, ...]:
    """An item's shares of its latest generation that are on no live invoice."""
    by_date: dict[date, Decimal] = {}
    for day, _, share in entries:
        by_date[day] = by_date.get(day, ZERO) + share.amount
    full = [day for day, total in by_date.items() if total == amount]
    start = max(full) if full else min(by_date)
    latest: dict[str, tuple[date, bool, Share]] = {}
    live_customers: set[str] = set()
    for entry in entries:
        day, live, share = entry
        if day < start:
            continue
        if live:
            live_customers.add(share.customer_id)
        current = latest.get(share.customer_id)
        if current is None or (day, live) > (current[0], current[1]):
            latest[share.customer_id] = entry
    return tuple(
        share
        for customer_id, (_, _, share) in sorted(latest.items())
        if customer_id not in live_customers
    )


