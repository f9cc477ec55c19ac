"""The invoice engine (R7-R14, R16): pure functions from contracts and state to planned invoices.

No I/O, no clock, no globals. The state a contract carries from one run date to the next
(``shares.ContractState``: items with a live share, not-to-exceed use, shares to invoice again)
is what the store derives from its invoices (``shares.state_from_invoices``), which is why a
preview over a range and a stored run over the same range agree (R20).

Planning is per contract: ``index_contract`` filters and sorts its invoicable items once and
finds which lines are due on each run date; a ``_Planner`` (mutable, private to one call) then
walks the dates in order, and the result is frozen into immutable records at the boundary.
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
from invoicing.runlog import held_note, invoiced_note, skipped_note
from invoicing.shares import ContractState, state_from_invoices

__all__ = [
    "ContractIndex",
    "ContractPlan",
    "ContractState",
    "RangePlan",
    "date_range",
    "index_contract",
    "invoice_id",
    "plan_contract",
    "plan_dates",
    "plan_range",
    "state_from_invoices",
    "with_status",
]

UNIT_SEPARATOR = "\u001f"
TRANSACTION = SourceType.TRANSACTION
INVOICED, SKIPPED, HELD = Outcome.INVOICED, Outcome.SKIPPED, Outcome.HELD

Candidate = tuple[date, ItemKey, Milestone | Transaction]
DueLine = tuple[ContractLine, date | None]  # a due line and its cut-off (T&M) or None (FP)
Split = tuple[tuple[Customer, ...], list[Decimal], int]  # customers, percents, rounding index
# customer id -> (line, cutoff, details, amount) per due line with a share, in line order
PerCustomer = dict[str, list[tuple[ContractLine, date | None, list[Detail], Decimal]]]
ScheduleCache = dict[object, dict[date, date]]


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


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


# ---- the index: a contract's candidates and due lines, computed once ----------------------------


@dataclass(frozen=True, slots=True)
class ContractIndex:
    """A contract's invoicable items per line, filtered and sorted once, and its due lines on
    each run date it was built for.

    Only items that can ever be invoiced on their line are kept (ready, nonzero, a class the line
    bills, the line's billing method), in (date, id) order, so planning a date reads each line's
    candidates up to its cut-off. A stored contract can hold items of an earlier upload that no
    longer fit its line: such items stay in the backlog, never invoiced.
    """

    candidates: Mapping[str, list[Candidate]]
    splits: Mapping[str, Split]  # per line: the R2 override or the contract's customers
    customer_names: Mapping[str, str]
    places: int
    due: Mapping[date, tuple[DueLine, ...]]  # R8: per run date, its due lines in line order


def index_contract(
    contract: Contract,
    run_dates: Iterable[date],
    schedule_cache: ScheduleCache | None = None,
) -> ContractIndex:
    """Index ``contract`` for planning ``run_dates``.

    ``schedule_cache`` shares the run dates of equal schedules between contracts (most lines of a
    portfolio use a handful of schedules), so the date arithmetic runs once per distinct schedule.
    """
    lines = {line.line_id: line for line in contract.lines}
    candidates: dict[str, list[Candidate]] = {line_id: [] for line_id in lines}
    milestone_dates: dict[str, set[date]] = {}
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
    splits: dict[str, Split] = {}
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
    due = _due_lines(contract, frozenset(run_dates), milestone_dates, schedule_cache)
    return ContractIndex(candidates, splits, names, minor_unit(contract.currency), due)


def _due_lines(
    contract: Contract,
    window: frozenset[date],
    milestone_dates: Mapping[str, set[date]],
    schedule_cache: ScheduleCache | None,
) -> dict[date, tuple[DueLine, ...]]:
    """R8: the lines due on each date of ``window`` (schedule run dates; milestone dates)."""
    due: dict[date, list[DueLine]] = {}
    cache = {} if schedule_cache is None else schedule_cache
    for line in contract.lines:  # in line order, so each date's list is in line order
        if line.billing_method is BillingMethod.FIXED_PRICE:
            for day in milestone_dates.get(line.line_id, ()):
                if day in window:
                    due.setdefault(day, []).append((line, None))
        elif line.schedule is not None:
            key = (line.schedule, window)
            cutoffs = cache.get(key)
            if cutoffs is None:
                cutoffs = {}
                for day in window:
                    cutoff = line.schedule.cutoff_on(day)
                    if cutoff is not None:
                        cutoffs[day] = cutoff
                cache[key] = cutoffs
            for day, cutoff in cutoffs.items():
                due.setdefault(day, []).append((line, cutoff))
    return {day: tuple(entries) for day, entries in due.items()}


# ---- planning -----------------------------------------------------------------------------------


def plan_contract(contract: Contract, run_date: date, state: ContractState) -> ContractPlan:
    """Plan one contract's invoices for ``run_date`` (R8-R12, R14)."""
    return plan_dates(contract, [run_date], state)[0]


def plan_dates(
    contract: Contract, run_dates: Sequence[date], state: ContractState
) -> list[ContractPlan]:
    """Plan one contract for each of ``run_dates`` in order, each date's state feeding the next
    (how the store plans the dates a run has not committed yet)."""
    planner = _Planner.start(contract, index_contract(contract, run_dates), state)
    plans = []
    for run_date in run_dates:
        invoices, log = planner.plan_day(run_date)
        state = planner.state()
        plans.append(
            ContractPlan(contract.contract_id, run_date, tuple(invoices), tuple(log), state)
        )
    return plans


def plan_range(
    portfolio: Portfolio,
    run_dates: Iterable[date],
    states: Mapping[str, ContractState] | None = None,
) -> RangePlan:
    """Plan every contract for each run date in order, carrying state from date to date."""
    with cyclic_gc_paused():
        return _plan_range(portfolio, list(run_dates), states or {})


def _plan_range(
    portfolio: Portfolio, days: list[date], states: Mapping[str, ContractState]
) -> RangePlan:
    cache: ScheduleCache = {}
    planners = [
        _Planner.start(c, index_contract(c, days, cache), states.get(c.contract_id))
        for c in portfolio.contracts
    ]
    # per date, the contracts with a line due then, in workbook order (the RunLog's order)
    due_on: dict[date, list[_Planner]] = {day: [] for day in days}
    for planner in planners:
        for day in planner.index.due:
            due_on[day].append(planner)
    invoices: list[Invoice] = []
    log: list[LogEntry] = []
    for run_date in days:
        for planner in due_on[run_date]:
            planner.plan_day(run_date, invoices, log)
    current = dict(states)
    for planner in planners:
        if planner.touched:
            current[planner.contract.contract_id] = planner.state()
    return RangePlan(tuple(invoices), tuple(log), current)


@dataclass(slots=True)
class _Planner:
    """One contract's planning state across the dates of one call: mutable and private, frozen
    into a ``ContractState`` at the end (so a range does not copy the state on every date)."""

    contract: Contract
    index: ContractIndex
    invoiced: set[ItemKey]
    nte_used: dict[str, Decimal]
    open_shares: dict[ItemKey, tuple[Share, ...]]
    # per line: every candidate before this position is invoiced (a range skips them next date)
    progress: dict[str, int] = field(default_factory=dict)
    touched: bool = False

    @classmethod
    def start(
        cls,
        contract: Contract,
        index: ContractIndex,
        state: ContractState | None,
    ) -> _Planner:
        if state is None:
            return cls(contract, index, set(), {}, {})
        return cls(
            contract, index, set(state.invoiced), dict(state.nte_used), dict(state.open_shares)
        )

    def state(self) -> ContractState:
        return ContractState(frozenset(self.invoiced), dict(self.nte_used), dict(self.open_shares))

    def plan_day(
        self,
        run_date: date,
        invoices: list[Invoice] | None = None,
        log: list[LogEntry] | None = None,
    ) -> tuple[list[Invoice], list[LogEntry]]:
        """Plan the contract's due lines on ``run_date``: append its invoices and RunLog rows
        (to the given lists, else to new ones) and record what they took."""
        invoices = [] if invoices is None else invoices
        log = [] if log is None else log
        due = self.index.due.get(run_date)
        if not due:
            return invoices, log  # no line due: nothing to plan, nothing to log (R8)
        self.touched = True
        contract, index = self.contract, self.index
        contract_id, currency = contract.contract_id, contract.currency
        per_customer: PerCustomer = {}
        names: dict[str, str] = {}  # customers of fixed shares the splits no longer list
        for line, cutoff in due:
            line_id = line.line_id
            # R9: a due FP line takes milestones dated up to D; a due T&M line up to its cut-off.
            taken, held, fixed, total, used = self._take(
                line, run_date if cutoff is None else cutoff
            )
            if taken:
                split = index.splits[line_id]
                _share(line, cutoff, taken, total, split, index.places, per_customer, fixed)
                for shares in fixed.values():
                    for s in shares:
                        names.setdefault(s.customer_id, s.customer_name)
                note = invoiced_note(cutoff, len(held))
                log.append(
                    LogEntry(
                        run_date, contract_id, line_id, INVOICED, len(taken), total, note, currency
                    )
                )
            else:
                note = skipped_note(cutoff, len(held))
                log.append(
                    LogEntry(run_date, contract_id, line_id, SKIPPED, 0, ZERO, note, currency)
                )
            for item in held:
                note = held_note(item, line.not_to_exceed, used)
                log.append(
                    LogEntry(run_date, contract_id, line_id, HELD, 1, item.amount, note, currency)
                )
        known = index.customer_names
        for customer_id in sorted(per_customer):
            name = known.get(customer_id) or names.get(customer_id, "")
            invoices.append(
                _invoice(contract, customer_id, name, run_date, per_customer[customer_id])
            )
        return invoices, log

    def _take(
        self, line: ContractLine, limit_date: date
    ) -> tuple[
        Sequence[Any], Sequence[Any], Mapping[ItemKey, tuple[Share, ...]], Decimal, Decimal
    ]:
        """The line's candidates up to ``limit_date`` not yet invoiced: (taken, held by the
        not-to-exceed, the fixed shares of the taken items that have them, amount taken, the
        line's not-to-exceed use after)."""
        line_id = line.line_id
        candidates = self.index.candidates[line_id]
        invoiced, open_shares = self.invoiced, self.open_shares
        position = self.progress.get(line_id, 0)
        count = len(candidates)
        if position >= count or candidates[position][0] > limit_date:
            # nothing new up to the cut-off (most due lines of a long range): answer at once
            used = self.nte_used.get(line_id, ZERO) if line.not_to_exceed is not None else ZERO
            return _NOTHING, _NOTHING, _NO_SHARES, ZERO, used
        first_open = -1
        taken: list[Any] = []
        held: list[Any] = []
        fixed: dict[ItemKey, tuple[Share, ...]] = {}
        total = ZERO
        limit = line.not_to_exceed
        used = self.nte_used.get(line_id, ZERO) if limit is not None else ZERO
        if limit is None and not open_shares:
            # the hot path of a large range (P2): no limit to check, no share fixed yet
            while position < count:
                item_date, key, item = candidates[position]
                if item_date > limit_date:
                    break
                if key not in invoiced:
                    taken.append(item)
                    invoiced.add(key)
                    total += item.amount
                position += 1
            self.progress[line_id] = position
            return taken, held, fixed, total, used
        while position < count:
            item_date, key, item = candidates[position]
            if item_date > limit_date:
                break
            shares = open_shares.get(key) if open_shares else None
            if (
                shares is not None
                and key not in invoiced
                and sum([s.amount for s in shares], ZERO) != item.amount
            ):
                # every share was cancelled and the item changed since: it is split afresh
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
            position += 1
        self.progress[line_id] = position if first_open < 0 else first_open
        if limit is not None:
            self.nte_used[line_id] = used
        return taken, held, fixed, total, used


_NOTHING: tuple[Any, ...] = ()
_NO_SHARES: Mapping[ItemKey, tuple[Share, ...]] = {}


def _share(
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


# ---- records ------------------------------------------------------------------------------------


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
                line.tax_category,
                line.tax_percent,
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


def with_status(invoice: Invoice, status: Status, number: str | None = None) -> Invoice:
    return invoice._replace(status=status, invoice_number=number)
