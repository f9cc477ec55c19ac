"""The invoice engine (R7-R14, R16): pure functions from contracts and state to planned invoices.

No I/O, no clock, no globals. The state a contract carries from one run date to the next is the
set of items already on a live invoice and the amount already invoiced per not-to-exceed line;
the store derives the same state from its live invoices, which is why a preview over a range and a
stored run over the same range agree (R20).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from invoicing.gcpause import cyclic_gc_paused
from invoicing.model import (
    BillingMethod,
    Contract,
    ContractLine,
    Customer,
    Detail,
    Invoice,
    InvoiceLine,
    ItemKey,
    LogEntry,
    Milestone,
    Outcome,
    Portfolio,
    Share,
    SourceType,
    Status,
    Transaction,
    rounding_index,
)
from invoicing.money import ZERO, minor_unit, split_amount

UNIT_SEPARATOR = "\u001f"
TRANSACTION = SourceType.TRANSACTION
INVOICED, SKIPPED, HELD = Outcome.INVOICED, Outcome.SKIPPED, Outcome.HELD


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
    # Per line, how many of the index's candidates are known to be invoiced already: a pure
    # optimisation (planning skips them), so it takes no part in equality.
    progress: Mapping[str, int] = field(default_factory=dict, compare=False)
    progress_of: ContractIndex | None = field(default=None, compare=False)


class ContractPlan(NamedTuple):
    contract_id: str
    run_date: date
    invoices: tuple[Invoice, ...]
    log: tuple[LogEntry, ...]
    state: ContractState  # the state after this run date


@dataclass(frozen=True, slots=True)
class RangePlan:
    invoices: tuple[Invoice, ...]
    log: tuple[LogEntry, ...]
    states: Mapping[str, ContractState]


def invoice_id(contract_id: str, customer_id: str, run_date: date) -> str:
    """R16: INV-YYYYMMDD-<first 10 hex digits of SHA-256(contract, customer, date)>."""
    iso = run_date.isoformat()
    text = UNIT_SEPARATOR.join((contract_id, customer_id, iso))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"INV-{iso[:4]}{iso[5:7]}{iso[8:10]}-{digest}"  # strftime is several times slower


@dataclass(frozen=True, slots=True)
class ContractIndex:
    """A contract's invoicable items per line, filtered and sorted once (an optimisation).

    Only items that can ever be invoiced on the line are kept (ready, nonzero, a class the line
    bills), in (date, id) order, so planning a date reads each line's candidates up to its cut-off.
    """

    candidates: Mapping[str, list[tuple[date, ItemKey, Milestone | Transaction]]]
    milestone_dates: Mapping[str, frozenset[date]]
    # Per line: its customers (R2 override or the contract's), their percents, the rounding index.
    splits: Mapping[str, tuple[tuple[Customer, ...], list[Decimal], int]]
    customer_names: Mapping[str, str]
    places: int
    # When the index was built for known run dates: the due lines of each of those dates.
    window: frozenset[date] = frozenset()
    due: Mapping[date, tuple[tuple[ContractLine, date | None], ...]] = field(default_factory=dict)


ScheduleCache = dict[object, dict[date, date]]


def index_contract(
    contract: Contract,
    run_dates: Sequence[date] = (),
    schedule_cache: ScheduleCache | None = None,
) -> ContractIndex:
    """Index ``contract``; with ``run_dates``, also precompute which lines are due on each.

    ``schedule_cache`` shares the run dates of equal schedules between contracts (most lines of a
    portfolio use a handful of schedules), so the date arithmetic runs once per distinct schedule.
    """
    lines = {line.line_id: line for line in contract.lines}
    candidates: dict[str, list[tuple[date, ItemKey, Milestone | Transaction]]] = {
        line_id: [] for line_id in lines
    }
    milestone_dates: dict[str, set[date]] = {}
    # A stored contract can hold items of an earlier upload that no longer fit its line (the line
    # changed billing method or classes): such items stay in the backlog, never invoiced.
    fixed = BillingMethod.FIXED_PRICE
    for m in contract.milestones:
        line = lines.get(m.line_id)
        if line is None or line.billing_method is not fixed:
            continue
        milestone_dates.setdefault(m.line_id, set()).add(m.date)
        if m.ready and m.amount != 0:
            candidates[m.line_id].append((m.date, (SourceType.MILESTONE, m.milestone_id), m))
    for t in contract.transactions:
        line = lines.get(t.line_id)
        if (
            t.ready
            and t.amount != 0
            and line is not None
            and line.billing_method is not fixed
            and t.txn_class in line.classes
        ):
            candidates[t.line_id].append((t.date, (SourceType.TRANSACTION, t.transaction_id), t))
    for items in candidates.values():
        # (date, (kind, id)) is unique per line, so the item itself is never compared.
        items.sort(key=_date_and_key)
    frozen_dates = {k: frozenset(v) for k, v in milestone_dates.items()}
    window = frozenset(run_dates)
    due: dict[date, list[tuple[ContractLine, date | None]]] = {}
    if window:
        cache = {} if schedule_cache is None else schedule_cache
        for line in contract.lines:
            if line.billing_method is BillingMethod.FIXED_PRICE:
                for day in frozen_dates.get(line.line_id, ()):
                    if day in window:
                        due.setdefault(day, []).append((line, None))
            elif line.schedule is not None:
                cutoffs = cache.get(line.schedule)
                if cutoffs is None:
                    cutoffs = {}
                    for day in window:
                        cutoff = line.schedule.cutoff_on(day)
                        if cutoff is not None:
                            cutoffs[day] = cutoff
                    cache[line.schedule] = cutoffs
                for day, cutoff in cutoffs.items():
                    due.setdefault(day, []).append((line, cutoff))
        order = {line.line_id: i for i, line in enumerate(contract.lines)}
        for entries in due.values():
            entries.sort(key=lambda entry: order[entry[0].line_id])
    splits = {}
    names = {c.customer_id: c.name for c in contract.customers}
    for line in contract.lines:
        customers = contract.customers_for(line)
        splits[line.line_id] = (
            customers,
            [c.split_percent for c in customers],
            rounding_index(customers),
        )
        for c in customers:
            names.setdefault(c.customer_id, c.name)
    return ContractIndex(
        candidates,
        frozen_dates,
        splits,
        names,
        minor_unit(contract.currency),
        window,
        {day: tuple(entries) for day, entries in due.items()},
    )


def plan_contract(
    contract: Contract,
    run_date: date,
    state: ContractState,
    index: ContractIndex | None = None,
) -> ContractPlan:
    """Plan one contract's invoices for run date ``run_date`` (R8-R12, R14).

    ``index`` (from ``index_contract``) is an optimisation for planning many dates of one contract.
    """
    if index is None:
        index = index_contract(contract)
    due_lines = _due_lines(contract, run_date, index)
    if not due_lines:
        return ContractPlan(contract.contract_id, run_date, (), (), state)
    work = _Work.start(state, index)
    invoices: list[Invoice] = []
    log: list[LogEntry] = []
    _plan_day(contract, run_date, due_lines, index, work, invoices, log)
    return ContractPlan(contract.contract_id, run_date, tuple(invoices), tuple(log), work.state())


@dataclass(slots=True)
class _Work:
    """A contract's state while it is being planned: mutable, private to one planning call, frozen
    into a ``ContractState`` at the end (so a range does not copy the state on every date)."""

    invoiced: set[ItemKey]
    nte_used: dict[str, Decimal]
    open_shares: dict[ItemKey, tuple[Share, ...]]
    progress: dict[str, int]  # per line, candidates before this position are all invoiced
    index: ContractIndex

    @classmethod
    def start(cls, state: ContractState, index: ContractIndex) -> _Work:
        # Progress counts positions in one index: it means nothing for another contract version.
        progress = dict(state.progress) if state.progress_of is index else {}
        return cls(
            set(state.invoiced), dict(state.nte_used), dict(state.open_shares), progress, index
        )

    def state(self) -> ContractState:
        return ContractState(
            frozenset(self.invoiced), self.nte_used, self.open_shares, self.progress, self.index
        )


def _due_lines(
    contract: Contract, run_date: date, index: ContractIndex
) -> Sequence[tuple[ContractLine, date | None]]:
    if run_date in index.window:
        return index.due.get(run_date, ())
    due_lines = []
    for line in contract.lines:
        due, cutoff = _due(line, run_date, index.milestone_dates.get(line.line_id, frozenset()))
        if due:
            due_lines.append((line, cutoff))
    return due_lines


def _plan_day(
    contract: Contract,
    run_date: date,
    due_lines: Sequence[tuple[ContractLine, date | None]],
    index: ContractIndex,
    work: _Work,
    invoices: list[Invoice],
    log: list[LogEntry],
) -> None:
    """Plan the due lines of one contract on one date: append its invoices and RunLog rows and
    record what they took in ``work``."""
    contract_id, currency, places = contract.contract_id, contract.currency, index.places
    invoiced, nte_used, progress = work.invoiced, work.nte_used, work.progress
    open_shares = work.open_shares
    extra_names: dict[str, str] = {}
    # customer id -> (line, cutoff, details, amount) per due line with a share, in line order
    per_customer: dict[str, list[tuple[ContractLine, date | None, list[Detail], Decimal]]] = {}

    for line, cutoff in due_lines:
        line_id = line.line_id
        # R9: a due FP line takes milestones dated up to D; a due T&M line items up to its cut-off.
        limit_date = run_date if cutoff is None else cutoff
        candidates = index.candidates[line_id]
        position = progress.get(line_id, 0)
        count = len(candidates)
        first_open = -1
        taken: list[Any] = []
        held: list[Any] = []
        # items taken whose shares are fixed (R13): their key -> the shares to invoice now
        fixed: dict[ItemKey, tuple[Share, ...]] = {}
        total = ZERO
        limit = line.not_to_exceed
        used = nte_used.get(line_id, ZERO) if limit is not None else ZERO
        while position < count:
            item_date, key, item = candidates[position]
            if item_date > limit_date:
                break
            shares = None
            if open_shares:
                shares = open_shares.get(key)
                # every share was cancelled: they stay fixed unless the item changed since
                if (
                    shares is not None
                    and key not in invoiced
                    and sum([s.amount for s in shares], ZERO) != item.amount
                ):
                    shares = None
                    del open_shares[key]
            if shares is not None or key not in invoiced:
                amount = item.amount if shares is None else sum([s.amount for s in shares], ZERO)
                # R14: an item that would cross the not-to-exceed is held whole; later ones may fit.
                if limit is not None and used + amount > limit:
                    held.append(item)
                    if first_open < 0:
                        first_open = position
                else:
                    used += amount
                    total += amount
                    taken.append(item)
                    invoiced.add(key)
                    if shares is not None:
                        fixed[key] = shares
                        del open_shares[key]
                        for s in shares:  # a customer the splits no longer list keeps its name
                            extra_names.setdefault(s.customer_id, s.customer_name)
            position += 1
        progress[line_id] = position if first_open < 0 else first_open
        if limit is not None:
            nte_used[line_id] = used

        if taken:
            _share(line, cutoff, taken, total, index.splits[line_id], places, per_customer, fixed)
            note = _invoiced_note(cutoff, len(held))
            log.append(
                LogEntry(
                    run_date, contract_id, line_id, INVOICED, len(taken), total, note, currency
                )
            )
        else:
            note = _skipped_note(cutoff, len(held))
            log.append(LogEntry(run_date, contract_id, line_id, SKIPPED, 0, ZERO, note, currency))
        for item in held:
            note = _held_note(item, limit, used)
            log.append(
                LogEntry(run_date, contract_id, line_id, HELD, 1, item.amount, note, currency)
            )

    names = index.customer_names
    for customer_id in sorted(per_customer):
        invoices.append(
            _invoice(
                contract,
                customer_id,
                names.get(customer_id) or extra_names.get(customer_id, ""),
                run_date,
                per_customer[customer_id],
            )
        )


def _share(
    line: ContractLine,
    cutoff: date | None,
    taken: list[Any],
    total: Decimal,
    split: tuple[tuple[Customer, ...], list[Decimal], int],
    places: int,
    per_customer: dict[str, list[tuple[ContractLine, date | None, list[Detail], Decimal]]],
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
                Detail(
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
                for t in taken
            ]
        per_customer.setdefault(customers[0].customer_id, []).append((line, cutoff, details, total))
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


def _share_with_fixed(
    line: ContractLine,
    cutoff: date | None,
    taken: list[Any],
    split: tuple[tuple[Customer, ...], list[Decimal], int],
    places: int,
    per_customer: dict[str, list[tuple[ContractLine, date | None, list[Detail], Decimal]]],
    fixed: Mapping[ItemKey, tuple[Share, ...]],
) -> None:
    """The general (slower) path of ``_share``: some items carry fixed shares, whose customers
    may no longer be among the line's (the splits changed after they were first invoiced)."""
    customers, percents, r_index = split
    details: dict[str, list[Detail]] = {}
    sums: dict[str, Decimal] = {}
    for item in taken:
        key = _key_of(item)
        shares = fixed.get(key)
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
                details.setdefault(customer_id, []).append(_detail(item, pct, amount))
                sums[customer_id] = sums.get(customer_id, ZERO) + amount
    for customer_id, rows in details.items():
        per_customer.setdefault(customer_id, []).append((line, cutoff, rows, sums[customer_id]))


def _key_of(item: Milestone | Transaction) -> ItemKey:
    if isinstance(item, Milestone):
        return (SourceType.MILESTONE, item.milestone_id)
    return (SourceType.TRANSACTION, item.transaction_id)


def plan_range(
    portfolio: Portfolio,
    run_dates: Iterable[date],
    states: Mapping[str, ContractState] | None = None,
) -> RangePlan:
    """Plan every contract for each run date in order, carrying state from date to date."""
    with cyclic_gc_paused():
        return _plan_range(portfolio, run_dates, states)


def _plan_range(
    portfolio: Portfolio,
    run_dates: Iterable[date],
    states: Mapping[str, ContractState] | None,
) -> RangePlan:
    current = dict(states or {})
    invoices: list[Invoice] = []
    log: list[LogEntry] = []
    days = list(run_dates)
    cache: ScheduleCache = {}
    indexes = [index_contract(contract, days, cache) for contract in portfolio.contracts]
    works: dict[str, _Work] = {}
    for run_date in days:
        for contract, index in zip(portfolio.contracts, indexes, strict=True):
            due_lines = index.due.get(run_date)
            if not due_lines:
                continue  # no line due: nothing to plan, nothing to log (R8)
            work = works.get(contract.contract_id)
            if work is None:
                state = current.get(contract.contract_id, ContractState())
                work = works[contract.contract_id] = _Work.start(state, index)
            _plan_day(contract, run_date, due_lines, index, work, invoices, log)
    for contract_id, work in works.items():
        current[contract_id] = work.state()
    return RangePlan(tuple(invoices), tuple(log), current)


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


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


# ---- helpers ------------------------------------------------------------------------------------


def _due(
    line: ContractLine, run_date: date, milestone_dates: frozenset[date]
) -> tuple[bool, date | None]:
    """R8: is the line due on ``run_date``, and with which cut-off (T&M only)."""
    if line.billing_method is BillingMethod.FIXED_PRICE:
        return run_date in milestone_dates, None
    if line.schedule is None:
        return False, None
    cutoff = line.schedule.cutoff_on(run_date)
    return cutoff is not None, cutoff


_date_and_key = itemgetter(0, 1)


def _detail(item: Milestone | Transaction, percent: Decimal, share: Decimal) -> Detail:
    if isinstance(item, Milestone):
        return Detail(
            SourceType.MILESTONE,
            item.milestone_id,
            None,
            item.date,
            item.name,
            None,
            None,
            percent,
            share,
        )
    return Detail(
        SourceType.TRANSACTION,
        item.transaction_id,
        item.txn_class,
        item.date,
        item.description,
        item.quantity,
        item.unit_price,
        percent,
        share,
    )


def _invoice(
    contract: Contract,
    customer_id: str,
    customer_name: str,
    run_date: date,
    lines: list[tuple[ContractLine, date | None, list[Detail], Decimal]],
) -> Invoice:
    # Positional arguments, in the records' field order: the P2 hot path.
    invoice_lines = tuple(
        [
            InvoiceLine(
                number,
                line.line_id,
                line.name,
                line.billing_method,
                cutoff,
                amount,
                tuple(details),
            )
            for number, (line, cutoff, details, amount) in enumerate(lines, start=1)
        ]
    )
    total = (
        invoice_lines[0].amount
        if len(invoice_lines) == 1
        else sum([line.amount for line in invoice_lines], ZERO)
    )
    return Invoice(
        invoice_id(contract.contract_id, customer_id, run_date),
        contract.contract_id,
        contract.name,
        customer_id,
        customer_name,
        run_date,
        run_date + timedelta(days=contract.payment_terms_days),
        contract.currency,
        total,
        invoice_lines,
    )


def _invoiced_note(cutoff: date | None, held: int) -> str:
    scope = f"cut-off {cutoff.isoformat()}" if cutoff else "milestones due"
    extra = f"; {held} held by not-to-exceed" if held else ""
    return f"{scope}{extra}"


def _skipped_note(cutoff: date | None, held: int) -> str:
    if held:
        return f"every ready item held by not-to-exceed ({held})"
    if cutoff:
        return f"nothing ready to invoice up to cut-off {cutoff.isoformat()}"
    return "no ready milestone to invoice"


def _held_note(item: Milestone | Transaction, limit: Decimal | None, used: Decimal) -> str:
    source = "milestone" if isinstance(item, Milestone) else "transaction"
    item_id = item.milestone_id if isinstance(item, Milestone) else item.transaction_id
    return (
        f"{source} {item_id} ({item.amount}) held: it would take the line past its "
        f"not-to-exceed {limit} (already invoiced {used})"
    )


def with_status(invoice: Invoice, status: Status, number: str | None = None) -> Invoice:
    return invoice._replace(status=status, invoice_number=number)
