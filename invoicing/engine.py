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
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, NamedTuple

from invoicing.details import (
    INVOICE_TAIL,
    LINE_TAIL,
    LOG_TAIL,
    PerCustomer,
    Split,
    new_record,
    share_items,
)
from invoicing.gcpause import cyclic_gc_paused
from invoicing.model import (
    BillingMethod,
    Contract,
    ContractLine,
    Detail,
    Invoice,
    InvoiceLine,
    ItemKey,
    LogEntry,
    Outcome,
    Portfolio,
    Share,
    SourceType,
    Status,
    rounding_index,
)
from invoicing.money import ZERO, minor_unit
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

try:  # CPython's own SHA-256: the same digest, without OpenSSL's set-up cost on a 40-byte text
    from _sha256 import sha256 as _sha256  # Python 3.11
except ImportError:  # pragma: no cover - 3.12 merged it into _sha2; else OpenSSL's
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[no-redef]
    except ImportError:
        _sha256 = hashlib.sha256  # type: ignore[assignment]
TRANSACTION, MILESTONE = SourceType.TRANSACTION, SourceType.MILESTONE
INVOICED, SKIPPED, HELD = Outcome.INVOICED, Outcome.SKIPPED, Outcome.HELD

DueLine = tuple[ContractLine, date | None]  # a due line and its cut-off (T&M) or None (FP)
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


class Candidates(NamedTuple):
    """One line's invoicable items in (date, id) order, with their dates and amounts in parallel
    lists: planning a date bisects the dates up to its cut-off and slices the rest."""

    items: list[Any]  # the line's milestones (FP) or transactions (T&M)
    dates: list[date]
    amounts: list[Decimal]
    kind: SourceType

    def keys(self, start: int, end: int) -> list[ItemKey]:
        kind = self.kind
        if kind is MILESTONE:
            return [(kind, m.milestone_id) for m in self.items[start:end]]
        return [(kind, t.transaction_id) for t in self.items[start:end]]


@dataclass(frozen=True, slots=True)
class ContractIndex:
    """A contract's invoicable items per line, filtered and sorted once, and its due lines on
    each run date it was built for.

    Only items that can ever be invoiced on their line are kept (ready, nonzero, a class the line
    bills, the line's billing method), in (date, id) order, so planning a date reads each line's
    candidates up to its cut-off. A stored contract can hold items of an earlier upload that no
    longer fit its line: such items stay in the backlog, never invoiced.
    """

    candidates: Mapping[str, Candidates]
    splits: Mapping[str, Split]  # per line: the R2 override or the contract's customers
    customer_names: Mapping[str, str]
    places: int
    due: Mapping[date, tuple[DueLine, ...]]  # R8: per run date, its due lines in line order


_by_date_and_milestone = attrgetter("date", "milestone_id")
_by_date_and_transaction = attrgetter("date", "transaction_id")


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
    picked: dict[str, list[Any]] = {line_id: [] for line_id in lines}
    milestone_dates: dict[str, set[date]] = {}
    fixed = BillingMethod.FIXED_PRICE
    for m in contract.milestones:
        line = lines.get(m.line_id)
        if line is None or line.billing_method is not fixed:
            continue
        milestone_dates.setdefault(m.line_id, set()).add(m.date)
        if m.ready and m.amount:
            picked[m.line_id].append(m)
    # per T&M line, the transaction classes it bills
    billed = {i: line.classes for i, line in lines.items() if line.billing_method is not fixed}
    for t in contract.transactions:
        classes = billed.get(t.line_id)
        if classes is not None and t.ready and t.amount and t.txn_class in classes:
            picked[t.line_id].append(t)
    candidates: dict[str, Candidates] = {}
    for line_id, items in picked.items():
        # A line holds one kind of item, and (date, id) is unique per kind: a total order.
        kind = MILESTONE if lines[line_id].billing_method is fixed else TRANSACTION
        items.sort(key=_by_date_and_milestone if kind is MILESTONE else _by_date_and_transaction)
        dates = [item.date for item in items]
        candidates[line_id] = Candidates(items, dates, [item.amount for item in items], kind)
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
    planner = _Planner.start(contract, index_contract(contract, run_dates), state, {})
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
    day_ids: dict[date, tuple[bytes, str]] = {}  # shared by the planners: one text per date
    planners = [
        _Planner.start(c, index_contract(c, days, cache), states.get(c.contract_id), day_ids)
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
    # the items taken; a line's candidates before its progress only once ``state`` records them
    invoiced: set[ItemKey]
    nte_used: dict[str, Decimal]
    open_shares: dict[ItemKey, tuple[Share, ...]]
    day_ids: dict[date, tuple[bytes, str]]  # run date -> (its ISO text, its invoice id prefix)
    # no item was invoiced before this call: on a line without a not-to-exceed, every candidate
    # at or past its progress is open (with one, a held item keeps progress where it is)
    fresh: bool
    # per line: every candidate before this position is invoiced (a range skips them next date)
    progress: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)  # per line: progress put in invoiced
    touched: bool = False
    # per customer, the hashed text of its invoice ids before the date (``_invoice_id``)
    id_prefixes: dict[str, bytes] = field(default_factory=dict)
    payment_terms: timedelta = timedelta(0)

    @classmethod
    def start(
        cls,
        contract: Contract,
        index: ContractIndex,
        state: ContractState | None,
        day_ids: dict[date, tuple[bytes, str]],
    ) -> _Planner:
        terms = timedelta(days=contract.payment_terms_days)
        if state is None:
            return cls(contract, index, set(), {}, {}, day_ids, True, payment_terms=terms)
        return cls(
            contract,
            index,
            set(state.invoiced),
            dict(state.nte_used),
            dict(state.open_shares),
            day_ids,
            not state.invoiced,
            payment_terms=terms,
        )

    def state(self) -> ContractState:
        # every candidate before a line's progress is invoiced: the hot path of ``_take`` leaves
        # recording them to here (the scans start at progress, so none of them is asked again)
        invoiced, recorded, candidates = self.invoiced, self.recorded, self.index.candidates
        for line_id, end in self.progress.items():
            start = recorded.get(line_id, 0)
            if end > start:
                invoiced.update(candidates[line_id].keys(start, end))
                recorded[line_id] = end
        return ContractState(frozenset(invoiced), dict(self.nte_used), dict(self.open_shares))

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
        index = self.index
        due = index.due.get(run_date)
        if not due:
            return invoices, log  # no line due: nothing to plan, nothing to log (R8)
        self.touched = True
        contract = self.contract
        contract_id, currency = contract.contract_id, contract.currency
        lines, splits = index.candidates, index.splits
        per_customer: PerCustomer = {}
        names: dict[str, str] = {}  # customers of fixed shares the splits no longer list
        progress = self.progress
        for line, cutoff in due:
            line_id = line.line_id
            candidates = lines[line_id]
            # R9: a due FP line takes milestones dated up to D; a due T&M line up to its cut-off.
            start = progress.get(line_id, 0)
            end = bisect_right(candidates.dates, run_date if cutoff is None else cutoff, start)
            if end == start:  # nothing new up to the cut-off (most due lines of a long range)
                note = skipped_note(cutoff, 0)
                entry = (run_date, contract_id, line_id, SKIPPED, 0, ZERO, note, currency)
                log.append(new_record(LogEntry, entry + LOG_TAIL))
                continue
            taken, held, fixed, total, used = self._take(line, candidates, start, end)
            if taken:
                split, places = splits[line_id], index.places
                share_items(line, cutoff, taken, total, split, places, per_customer, fixed)
                for shares in fixed.values():
                    for s in shares:
                        names.setdefault(s.customer_id, s.customer_name)
                note = invoiced_note(cutoff, len(held))
                count = len(taken)
                entry = (run_date, contract_id, line_id, INVOICED, count, total, note, currency)
            else:
                note = skipped_note(cutoff, len(held))
                entry = (run_date, contract_id, line_id, SKIPPED, 0, ZERO, note, currency)
            log.append(new_record(LogEntry, entry + LOG_TAIL))
            for item in held:
                note = held_note(item, line.not_to_exceed, used)
                log.append(
                    LogEntry(run_date, contract_id, line_id, HELD, 1, item.amount, note, currency)
                )
        if per_customer:
            known = index.customer_names
            for customer_id in sorted(per_customer) if len(per_customer) > 1 else per_customer:
                name = known.get(customer_id) or names.get(customer_id, "")
                lines_of = per_customer[customer_id]
                invoices.append(self._invoice(customer_id, name, run_date, lines_of))
        return invoices, log

    def _take(
        self, line: ContractLine, candidates: Candidates, position: int, end: int
    ) -> tuple[Sequence[Any], Sequence[Any], Mapping[ItemKey, tuple[Share, ...]], Decimal, Decimal]:
        """The line's candidates from ``position`` to ``end`` (its first one past the cut-off)
        not yet invoiced: (taken, held by the not-to-exceed, the fixed shares of the taken items
        that have them, amount taken, the line's not-to-exceed use after)."""
        line_id = line.line_id
        limit = line.not_to_exceed
        invoiced, open_shares = self.invoiced, self.open_shares
        if limit is None and not open_shares:
            # the hot path of a large range (P2): no limit to check, no share fixed yet. What
            # it takes goes into ``invoiced`` later, in ``state`` (everything before progress).
            self.progress[line_id] = end
            if self.fresh:  # none of them can be invoiced yet: take them all
                return (
                    candidates.items[position:end],
                    _NOTHING,
                    _NO_SHARES,
                    sum(candidates.amounts[position:end], ZERO),
                    ZERO,
                )
            items, keys = candidates.items, candidates.keys(position, end)
            taken = [items[i] for i, key in enumerate(keys, position) if key not in invoiced]
            return taken, _NOTHING, _NO_SHARES, sum([t.amount for t in taken], ZERO), ZERO
        first_open = -1
        taken: list[Any] = []
        held: list[Any] = []
        fixed: dict[ItemKey, tuple[Share, ...]] = {}
        total = ZERO
        used = self.nte_used.get(line_id, ZERO) if limit is not None else ZERO
        items = candidates.items
        for i, key in enumerate(candidates.keys(position, end), position):
            item = items[i]
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
                        first_open = i
                else:
                    used += amount
                    total += amount
                    taken.append(item)
                    invoiced.add(key)
                    if shares is not None:
                        fixed[key] = shares
                        del open_shares[key]
        self.progress[line_id] = end if first_open < 0 else first_open
        if limit is not None:
            self.nte_used[line_id] = used
        return taken, held, fixed, total, used

    def _invoice(
        self,
        customer_id: str,
        customer_name: str,
        run_date: date,
        lines: list[tuple[ContractLine, date | None, list[Detail], Decimal]],
    ) -> Invoice:
        contract = self.contract
        invoice_lines = []
        for number, (line, cutoff, details, amount) in enumerate(lines, start=1):
            fields = (
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
            invoice_lines.append(new_record(InvoiceLine, fields + LINE_TAIL))
        total = lines[0][3] if len(lines) == 1 else sum([line[3] for line in lines], ZERO)
        return new_record(
            Invoice,
            (  # noqa: RUF005
                self._invoice_id(customer_id, run_date),
                contract.contract_id,
                contract.name,
                customer_id,
                customer_name,
                run_date,
                run_date + self.payment_terms,
                contract.currency,
                total,
                tuple(invoice_lines),
            )
            + INVOICE_TAIL,
        )

    def _invoice_id(self, customer_id: str, run_date: date) -> str:
        """``invoice_id``, with the hash of the (contract, customer) prefix and each date's text
        made once."""
        day = self.day_ids.get(run_date)
        if day is None:
            iso = run_date.isoformat()
            day = self.day_ids[run_date] = (iso.encode(), f"INV-{iso[:4]}{iso[5:7]}{iso[8:10]}-")
        prefix = self.id_prefixes.get(customer_id)
        if prefix is None:
            text = f"{self.contract.contract_id}{UNIT_SEPARATOR}{customer_id}{UNIT_SEPARATOR}"
            prefix = self.id_prefixes[customer_id] = text.encode("utf-8")
        return day[1] + _sha256(prefix + day[0]).hexdigest()[:10]


_NOTHING: tuple[Any, ...] = ()
_NO_SHARES: Mapping[ItemKey, tuple[Share, ...]] = {}


def with_status(invoice: Invoice, status: Status, number: str | None = None) -> Invoice:
    return invoice._replace(status=status, invoice_number=number)
