"""An invoiced item's details (R11, R13): its split between the line's customers, or the shares
fixed by its first invoicing, and the named-tuple records the engine builds by the thousand.

Private to the engine (``engine._Planner`` calls ``share_items``); kept apart so that the engine
module stays readable. Pure: no I/O, no clock, no state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from invoicing.model import (
    BillingMethod,
    ContractLine,
    Customer,
    Detail,
    Invoice,
    InvoiceLine,
    ItemKey,
    LogEntry,
    Milestone,
    Share,
    SourceType,
    Transaction,
)
from invoicing.money import HUNDRED, ZERO, minor_quantum, split_amount

TRANSACTION, MILESTONE = SourceType.TRANSACTION, SourceType.MILESTONE

Split = tuple[tuple[Customer, ...], list[Decimal], int]  # customers, percents, rounding index
# customer id -> (line, cutoff, details, amount) per due line with a share, in line order
PerCustomer = dict[str, list[tuple[ContractLine, date | None, list[Detail], Decimal]]]

# ---- records ------------------------------------------------------------------------------------

# The records are named tuples; the engine builds the many it makes with ``tuple.__new__`` over
# all their fields (the ones it sets, then the defaults of the rest, read from the class), which
# skips the generated ``__new__`` and its keyword handling: the same tuple, at half the cost (P2).
new_record = tuple.__new__


def _defaults_after(cls: Any, given: int) -> tuple[Any, ...]:
    return tuple(cls._field_defaults[name] for name in cls._fields[given:])


DETAIL_TAIL = _defaults_after(Detail, 9)
LINE_TAIL = _defaults_after(InvoiceLine, 9)
INVOICE_TAIL = _defaults_after(Invoice, 10)
LOG_TAIL = _defaults_after(LogEntry, 8)


def _detail(item: Milestone | Transaction, percent: Decimal, share: Decimal) -> Detail:
    if isinstance(item, Milestone):
        fields = (MILESTONE, item.milestone_id, None, item.date, item.name, None, None)
    else:
        fields = (
            TRANSACTION,
            item.transaction_id,
            item.txn_class,
            item.date,
            item.description,
            item.quantity,
            item.unit_price,
        )
    return new_record(Detail, fields + (percent, share) + DETAIL_TAIL)  # noqa: RUF005


# ---- sharing ------------------------------------------------------------------------------------


def share_items(
    line: ContractLine,
    cutoff: date | None,
    taken: Sequence[Any],
    total: Decimal,
    split: Split,
    places: int,
    per_customer: PerCustomer,
    fixed: Mapping[ItemKey, tuple[Share, ...]],
) -> None:
    """R11: each taken item split between the line's customers, one detail per nonzero share;
    an item whose shares are ``fixed`` (R13) gets exactly those shares instead."""
    customers, percents, r_index = split
    if fixed:
        _share_with_fixed(line, cutoff, taken, split, places, per_customer, fixed)
        return
    if len(customers) == 1:
        # One customer takes every item whole: no split arithmetic needed.
        pct = percents[0]
        if line.billing_method is BillingMethod.FIXED_PRICE:
            details = [_detail(item, pct, item.amount) for item in taken]
        else:  # inlined: the hot path of a large T&M run (P2)
            details = [
                new_record(
                    Detail,
                    (  # noqa: RUF005
                        TRANSACTION,
                        t.transaction_id,
                        t.txn_class,
                        t.date,
                        t.description,
                        t.quantity,
                        t.unit_price,
                        pct,
                        t.amount,
                    )
                    + DETAIL_TAIL,
                )
                for t in taken
            ]
        per_customer.setdefault(customers[0].customer_id, []).append((line, cutoff, details, total))
        return
    if len(customers) == 2 and line.billing_method is not BillingMethod.FIXED_PRICE:
        _share_two(line, cutoff, taken, split, places, per_customer)
        return
    by_customer: list[list[Detail]] = [[] for _ in customers]
    sums = [ZERO] * len(customers)
    for item in taken:
        shares = split_amount(item.amount, percents, r_index, places)
        for i, share in enumerate(shares):
            if share:
                by_customer[i].append(_detail(item, percents[i], share))
                sums[i] += share
    for i, customer in enumerate(customers):
        if by_customer[i]:
            per_customer.setdefault(customer.customer_id, []).append(
                (line, cutoff, by_customer[i], sums[i])
            )


def _share_two(
    line: ContractLine,
    cutoff: date | None,
    taken: Sequence[Transaction],
    split: Split,
    places: int,
    per_customer: PerCustomer,
) -> None:
    """``_share`` of T&M transactions between two customers, with ``money.split_amount``'s two-way
    rule inlined: the other customer's share rounded half-up, the rounding one's the remainder."""
    customers, (first_percent, second_percent), r_index = split
    unit = minor_quantum(places)
    other_percent = second_percent if r_index == 0 else first_percent
    first: list[Detail] = []
    second: list[Detail] = []
    first_sum = second_sum = ZERO
    for t in taken:
        amount = t.amount
        share = (amount * other_percent / HUNDRED).quantize(unit, ROUND_HALF_UP)
        if r_index == 0:
            first_part, second_part = amount - share, share
        else:
            first_part, second_part = share, amount - share
        head = (
            TRANSACTION,
            t.transaction_id,
            t.txn_class,
            t.date,
            t.description,
            t.quantity,
            t.unit_price,
        )
        if first_part:
            first.append(new_record(Detail, head + (first_percent, first_part) + DETAIL_TAIL))  # noqa: RUF005
            first_sum += first_part
        if second_part:
            second.append(new_record(Detail, head + (second_percent, second_part) + DETAIL_TAIL))  # noqa: RUF005
            second_sum += second_part
    for customer, details, total in (
        (customers[0], first, first_sum),
        (customers[1], second, second_sum),
    ):
        if details:
            per_customer.setdefault(customer.customer_id, []).append((line, cutoff, details, total))


def _share_with_fixed(
    line: ContractLine,
    cutoff: date | None,
    taken: Sequence[Any],
    split: Split,
    places: int,
    per_customer: PerCustomer,
    fixed: Mapping[ItemKey, tuple[Share, ...]],
) -> None:
    """The general (slower) path of ``_share``: some items carry fixed shares, whose customers
    may no longer be among the line's (the splits changed after they were first invoiced)."""
    customers, percents, r_index = split
    details: dict[str, list[Detail]] = {}
    sums: dict[str, Decimal] = {}
    for item in taken:
        shares = fixed.get(_key_of(item))
        if shares is None:
            amounts = split_amount(item.amount, percents, r_index, places)
            parts = [
                (c.customer_id, pct, a)
                for c, pct, a in zip(customers, percents, amounts, strict=True)
            ]
        else:
            parts = [(s.customer_id, s.split_percent, s.amount) for s in shares]
        for customer_id, pct, amount in parts:
            if amount:
                detail = _detail(item, pct, amount)
                if shares is not None:
                    detail = detail._replace(rebilled=True)
                details.setdefault(customer_id, []).append(detail)
                sums[customer_id] = sums.get(customer_id, ZERO) + amount
    for customer_id, rows in details.items():
        per_customer.setdefault(customer_id, []).append((line, cutoff, rows, sums[customer_id]))


def _key_of(item: Milestone | Transaction) -> ItemKey:
    if isinstance(item, Milestone):
        return (SourceType.MILESTONE, item.milestone_id)
    return (SourceType.TRANSACTION, item.transaction_id)
