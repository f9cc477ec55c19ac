"""The daily run (R17-R19, S5a, S6): which dates, then per contract plan and commit.

The crash-safe commit protocol is described in ``invoicing.storage.store``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableTransactionError

from invoicing import catchup, engine
from invoicing.engine import ContractPlan, ContractState
from invoicing.errors import BadRequest
from invoicing.services.common import DEFAULT_WORKERS, Progress, leased, now_text, parallel
from invoicing.settings import Settings
from invoicing.shares import state_from_invoices
from invoicing.storage import codec, rows, snapshot
from invoicing.storage.errors import LeaseLost, StateChanged, WriteRefused
from invoicing.storage.keys import encode_key
from invoicing.storage.store import (
    MAX_BATCH_BYTES,
    MAX_BATCH_OPS,
    Op,
    Partition,
    Store,
    changed_meanwhile,
    delete_op,
    entity_size,
    upsert_op,
)

log = logging.getLogger("invoicing.services")
T = TypeVar("T")
CONTRACTS_PER_ROUND = 100  # contracts planned (held in memory) and indexed together


@dataclass
class DateSummary:
    run_date: date
    invoices: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)
    held: int = 0
    skipped: int = 0
    invoiced_lines: int = 0

    def add(self, marker: Mapping[str, Any]) -> None:
        counts, amounts = rows.marker_counts(marker)
        self.invoices += counts["Invoices"]
        self.held += counts["Held"]
        self.skipped += counts["Skipped"]
        self.invoiced_lines += counts["InvoicedLines"]
        for currency, amount in amounts.items():
            self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + amount

    def counts(self) -> dict[str, int]:
        return {
            "Invoices": self.invoices,
            "Held": self.held,
            "Skipped": self.skipped,
            "InvoicedLines": self.invoiced_lines,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.run_date.isoformat(),
            "invoices": self.invoices,
            "amounts": {c: str(a) for c, a in sorted(self.amounts.items())},
            "held": self.held,
            "skipped_lines": self.skipped,
            "invoiced_lines": self.invoiced_lines,
        }


@dataclass
class RunSummary:
    dates: list[DateSummary] = field(default_factory=list)  # the dates run now, in order
    already_done: list[date] = field(default_factory=list)  # asked for, but completed before
    # never completed and out of the catch-up window (R19): named until someone runs them
    missed: list[date] = field(default_factory=list)
    # contracts not invoiced because their import never finished (S5a): their dates stay open
    blocked: list[str] = field(default_factory=list)
    # contracts that failed this run (ContractId -> reason): their dates stay open too
    failed: dict[str, str] = field(default_factory=dict)
    contracts: int = 0
    seconds: float = 0.0

    @property
    def invoices(self) -> int:
        return sum(d.invoices for d in self.dates)

    @property
    def amounts(self) -> dict[str, Decimal]:
        total: dict[str, Decimal] = {}
        for d in self.dates:
            for currency, amount in d.amounts.items():
                total[currency] = total.get(currency, Decimal(0)) + amount
        return dict(sorted(total.items()))

    @property
    def held(self) -> int:
        return sum(d.held for d in self.dates)

    @property
    def skipped(self) -> int:
        return sum(d.skipped for d in self.dates)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dates_run": [d.as_dict() for d in self.dates],
            "already_done": [d.isoformat() for d in self.already_done],
            "missed": [d.isoformat() for d in self.missed],
            "unfinished_imports": self.blocked,
            "failed_contracts": self.failed,
            "contracts": self.contracts,
            "invoices_created": self.invoices,
            "amounts": {c: str(a) for c, a in self.amounts.items()},
            "held": self.held,
            "skipped_lines": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def today_in(settings: Settings, now: datetime | None = None) -> date:
    """The run date (R19): the calendar date in INVOICE_TIMEZONE at ``now`` (default: the clock)."""
    moment = now if now is not None else datetime.now(UTC)
    return moment.astimezone(settings.zone).date()


def choose_dates(
    store: Store,
    ledger: Mapping[date, Mapping[str, Any]],
    settings: Settings,
    today: date,
    span: tuple[date, date] | None,
) -> catchup.DateChoice:
    """R19 over the store's ledger and first daily run (recorded by the first daily run)."""
    first_daily = store.first_daily_run()
    if first_daily is None and span is None:
        first_daily = store.note_first_daily_run(today)  # the very first daily run: today only
    return catchup.choose_dates(
        {d: rows.ledger_state(e) for d, e in ledger.items()},
        first_daily=first_daily,
        today=today,
        catchup_days=settings.catchup_days,
        span=span,
    )


def run_daily(
    store: Store,
    settings: Settings,
    today: date | None = None,
    span: tuple[date, date] | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    now: datetime | None = None,
    summary: RunSummary | None = None,
    run_dates: Callable[[list[date], RunSummary], None] | None = None,
) -> RunSummary:
    """The daily run (R17-R19) under the lease: catch-up, or every date of ``span`` in order.

    ``today`` makes it the daily run as if today were that date; a date after the real today
    (``now``, default the clock, in INVOICE_TIMEZONE) is refused: a run invoices what happened.
    ``run_dates`` does the chosen dates' work under the lease (default: here, one date after
    the other; queue mode enqueues it instead) and fills ``summary`` (default a ``RunSummary``).
    """
    started_at = time.monotonic()
    real_today = today_in(settings, now)
    last = span[1] if span is not None else (today or real_today)
    if last > real_today:
        raise BadRequest(
            f"run date {last} is after today ({real_today} in {settings.timezone}): a run "
            "invoices what has happened, so a future date is refused (R19)"
        )
    with leased(store, settings, "run"):
        ledger = store.ledger()
        choice = choose_dates(store, ledger, settings, today or real_today, span)
        dates = list(choice.run)
        record_missed(store, ledger, choice.missed)
        summary = summary or RunSummary()
        summary.already_done, summary.missed = list(choice.already_done), list(choice.missed)
        if dates:
            store.note_ran_index(fresh=not ledger, today=real_today)
            if run_dates is None:
                _run_dates(store, dates, summary, workers, progress)
            else:
                run_dates(dates, summary)
    summary.seconds = time.monotonic() - started_at
    return summary


@dataclass
class ContractsOutcome:
    """What invoicing a set of contracts over some dates did: per contract that committed
    (or had committed before), its commit markers per date; the contracts that could not be
    invoiced (no configuration: an import that never finished) and those that failed."""

    markers: dict[str, dict[date, dict[str, Any]]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    # of ``failed``, those whose state changed while they were planned (``StateChanged``)
    changed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Selection:
    """The contracts a run of some dates concerns (S5a, S8)."""

    everyone: list[str]  # every registered contract not blocked by an unfinished import
    due: list[str]  # those the due-date index names for the dates (or does not hold yet)
    blocked: set[str]  # registered contracts whose import never finished (S5a)


def select_contracts(store: Store, dates: list[date]) -> Selection:
    """S5a and S8: a contract whose import did not finish is not invoiced (its dates stay
    incomplete); of the others only those with something due on one of ``dates`` are loaded
    (a contract with no line due on a date writes nothing for it), plus every contract the
    index does not hold yet (imported before the index existed)."""
    registry = sorted(store.registry(), key=lambda r: int(r.get("Order") or 0))
    blocked = {r["ContractId"] for r in registry if r.get("Importing")}
    everyone = [r["ContractId"] for r in registry if r["ContractId"] not in blocked]
    due = store.due_contracts(dates)
    unindexed = {r["ContractId"] for r in registry if not rows.registry_indexed(r)}
    return Selection(everyone, [c for c in everyone if c in due or c in unindexed], blocked)


def invoice_contracts(
    store: Store,
    contract_ids: list[str],
    dates: list[date],
    *,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
) -> ContractsOutcome:
    """Plan and commit ``contract_ids`` over ``dates`` with the crash-safe protocol (steps 2-5
    of ``invoicing.storage.store``): rounds of contracts planned, indexed in bulk, then each
    committed. A contract that fails (bad stored data, a storage error) is reported in
    ``failed`` and the others go on; the next run redoes its dates. The caller holds the lease
    (inline) or is a queue worker (S9)."""
    outcome = ContractsOutcome()
    _invoice_rounds(store, contract_ids, dates, outcome, workers, progress)
    # a contract whose state changed while it was planned (a cancel, an import, another worker)
    # committed nothing: planned again once from what is stored now (committed dates are then
    # skipped), the others already done
    again = [c for c in outcome.failed if c in outcome.changed]
    if again:
        for contract_id in again:
            del outcome.failed[contract_id]
        outcome.changed.clear()
        _invoice_rounds(store, again, dates, outcome, 1, None)
    return outcome


def _invoice_rounds(
    store: Store,
    contract_ids: list[str],
    dates: list[date],
    outcome: ContractsOutcome,
    workers: int,
    progress: Progress | None,
) -> None:
    failed = outcome.failed
    for first in range(0, len(contract_ids), CONTRACTS_PER_ROUND):
        chunk = contract_ids[first : first + CONTRACTS_PER_ROUND]
        planned = parallel(
            lambda c: _isolated(c, outcome, lambda: _plan_contract(store, c, dates)),
            chunk,
            workers,
            store,
        )
        ready = [(c, p) for c, p in zip(chunk, planned, strict=True) if p is not None]
        invoices = [inv for _, planned in ready for p in planned.plans for inv in p.invoices]
        # the invoice index and the W rows (which contracts have a marker on a date: listings
        # of a range read those), before any commit: harmless if the commit never happens
        index = [upsert_op(rows.index_entity(i)) for i in invoices]
        index += [
            upsert_op(rows.ran_entity(c, p.run_date)) for c, planned in ready for p in planned.plans
        ]
        store.submit(store.globals, index, "index")
        parallel(
            lambda e: _isolated(e[0], outcome, lambda: _write_plans(store, e[1])),
            ready,
            workers,
            store,
        )
        for contract_id, planned in ready:
            markers = planned.markers
            if markers is None:
                outcome.blocked.add(contract_id)
            elif contract_id not in failed:  # failed while committing: named in ``failed``
                outcome.markers[contract_id] = markers
        if progress is not None:
            progress(first + len(chunk), len(contract_ids))


def _run_dates(
    store: Store,
    dates: list[date],
    summary: RunSummary,
    workers: int,
    progress: Progress | None,
) -> None:
    started = now_text()
    store.submit(
        store.globals, [upsert_op(rows.ledger_started(d, started)) for d in dates], "ledger-started"
    )
    chosen = select_contracts(store, dates)
    summary.contracts = len(chosen.everyone)
    outcome = invoice_contracts(store, chosen.due, dates, workers=workers, progress=progress)
    blocked = chosen.blocked | outcome.blocked
    failed = outcome.failed
    by_date = {d: DateSummary(d) for d in dates}
    for markers in outcome.markers.values():
        for d, marker in markers.items():
            by_date[d].add(marker)
    summary.blocked = sorted(blocked)
    summary.failed = dict(sorted(failed.items()))
    finished = now_text()
    state = catchup.INCOMPLETE if blocked or failed else catchup.COMPLETED
    entries = [
        rows.ledger_finished(
            d,
            state=state,
            started=started,
            finished=finished,
            contracts=len(chosen.everyone),
            counts=s.counts(),
            amounts=s.amounts,
            blocked=blocked,
            failed=failed,
        )
        for d, s in by_date.items()
    ]
    store.submit(store.globals, [upsert_op(e) for e in entries], "ledger-completed")
    summary.dates = [by_date[d] for d in dates]


def _isolated(contract_id: str, outcome: ContractsOutcome, work: Callable[[], T]) -> T | None:
    """``work()`` for one contract; a failure of that contract alone is recorded in
    ``outcome.failed`` (and logged with its traceback) instead of stopping the run. A lost lease
    (R18) and the test seam's simulated crash still stop everything."""
    try:
        return work()
    except (LeaseLost, WriteRefused):
        raise
    except StateChanged as exc:  # a race, not a fault: the caller plans it again once
        log.info("contract %s changed while it was planned: %s", contract_id, exc)
        outcome.changed.add(contract_id)
        outcome.failed[contract_id] = f"{type(exc).__name__}: {exc}"[:300]
        return None
    except Exception as exc:  # one contract must not stop the others
        log.exception("contract %s was not invoiced this run", contract_id)
        outcome.failed[contract_id] = f"{type(exc).__name__}: {exc}"[:300]
        return None


def record_missed(
    store: Store, ledger: Mapping[date, Mapping[str, Any]], missed: Iterable[date]
) -> None:
    """R19: a Missed date gets a ledger entry saying so."""
    ops = [
        upsert_op(rows.ledger_missed(d, ledger.get(d)))
        for d in missed
        if d not in ledger or rows.ledger_state(ledger[d]) != catchup.MISSED
    ]
    store.submit(store.globals, ops, "ledger-missed")


class Planned(NamedTuple):
    """One contract planned for a run: what was read, the plans, the commit markers per date
    (None: it cannot be invoiced), and the fence its commit needs (``storage.snapshot``)."""

    part: Partition
    plans: list[ContractPlan]
    markers: dict[date, dict[str, Any]] | None
    etag: str | None  # of ``N:state`` as read before the contract was loaded (None: no row)
    kept: snapshot.Kept  # the N:state its commit writes (state after the last plan, ...)
    rebuild: list[Op]  # full loads: the work-table writes making it hold what stays open
    work_items: list[dict[str, Any]]  # fast path: the work rows read (the sweep deletes some)
    full: bool  # loaded in full (no valid state): the commit writes a valid state back


def _plan_contract(store: Store, contract_id: str, dates: list[date]) -> Planned:
    """Steps 2-3 of the commit protocol for one contract (see invoicing.storage.store).

    Markers are None for a contract that cannot be invoiced (no configuration: an import that
    never finished), so that its dates stay incomplete. With a valid ``N:state`` only the
    contract's open work is read (S8); otherwise (or when a date to run has Pending leftovers
    to clean, or the work rows are gone) the whole partition, and the state comes from every
    invoice."""
    state_row = store.state_row(contract_id)  # first: its ETag fences what is read after it
    etag = None if state_row is None else state_row.get("_etag")
    if store.lease is None and store.importing(contract_id):
        # a queue worker (no lease: imports may run meanwhile) meets an import of the contract
        # under way, or one that never finished (S5a): not invoiced now, its dates stay open
        log.warning("contract %s is being imported: not invoiced now", contract_id)
        empty = snapshot.Kept(ContractState(), frozenset(), frozenset())
        return Planned(Partition(encode_key(contract_id)), [], None, etag, empty, [], [], False)
    kept = snapshot.kept_from(state_row)
    part = None
    if kept is not None and not kept.pending.intersection(dates):
        part = store.load_open(contract_id, [d for d in dates if d in kept.ran])
        if part is not None and part.config is None:
            part = None  # the work rows are gone (a restored table?): read it all, rebuild
    full = part is None
    if part is None:
        part = store.load(contract_id)
    contract = part.contract()
    if contract is None:
        log.warning(
            "contract %s has no configuration (an interrupted import?): not invoiced; "
            "import its workbook again",
            contract_id,
        )
        empty = snapshot.Kept(ContractState(), frozenset(), frozenset())
        return Planned(part, [], None, etag, empty, [], [], False)
    if full:
        state = state_from_invoices(contract, part.committed_invoices())
        ran, pending_dates = frozenset(part.markers), part.pending_dates()
    else:
        assert kept is not None
        state, ran, pending_dates = kept.state, kept.ran, set()
    markers: dict[date, dict[str, Any]] = {}
    plans: list[ContractPlan] = []
    # committed dates are done (their invoices are in the state); the others in date order
    todo = [d for d in dates if d not in part.markers]
    for d in dates:
        if d in part.markers:
            markers[d] = part.markers[d]
    for plan in engine.plan_dates(contract, todo, state):
        if plan.invoices or plan.log or plan.run_date in pending_dates:  # no due line: no write
            plans.append(plan)
            markers[plan.run_date] = _marker(part.pk, plan, 0)
            state = plan.state
    committed = {plan.run_date for plan in plans}
    after = snapshot.Kept(state, ran | committed, frozenset(set(pending_dates) - committed))
    items = [*part.transactions.values(), *part.milestones.values()]
    if not full:
        return Planned(part, plans, markers, etag, after, [], items, full)
    # the work rows as they must be once this commit lands (the items it invoices left out):
    # the state stays stale until then, so they are trusted only if it does
    rebuild, _ = snapshot.work_ops(
        part.config_entities(), items, store.work_rows(contract_id), state
    )
    return Planned(part, plans, markers, etag, after, rebuild, [], full)


def _marker(pk: str, plan: ContractPlan, log_parts: int) -> dict[str, Any]:
    return rows.marker_entity(pk, plan.run_date, plan.invoices, plan.log, log_parts)


def _write_plans(store: Store, planned: Planned) -> None:
    """Step 5 of the commit protocol: small dates packed in atomic batches, large ones through
    Pending headers and one final atomic commit; the contract's new ``N:state`` goes in the
    last transaction, fenced by the ETag read before the contract was loaded."""
    part, plans = planned.part, planned.plans
    if not plans and not planned.full:
        return
    pk = part.pk
    etag = planned.etag
    if planned.full:
        # before the work rows are rebuilt from what was read: if anything changed since, the
        # rebuild must not land (it would be trusted once a valid state is written)
        etag = _fence_stale(store, pk, etag, "the work rows are being rebuilt")
        try:
            store.submit(store.work, planned.rebuild, "work-rebuild")
        except TableTransactionError as exc:
            # a work row was rewritten (or deleted) since it was read
            if changed_meanwhile(exc) or getattr(exc, "status_code", None) == 404:
                raise StateChanged(pk) from exc
            raise
    state_op = snapshot.state_op(pk, planned.kept, etag)
    reserve = entity_size(state_op[1])
    units: list[tuple[str, Any]] = []  # ("pack", ops) | ("large", arguments of _commit_large)
    pack: list[Op] = []
    pack_size = 0
    for plan in plans:
        logs = rows.log_entities(pk, plan.run_date, plan.log)
        marker, logs = rows.with_inline_log(_marker(pk, plan, len(logs)), logs)
        invoice_rows: list[dict[str, Any]] = []
        for inv in plan.invoices:
            invoice_rows.extend(codec.invoice_entities(pk, inv, codec.DRAFT))
        ops = [upsert_op(e) for e in (*invoice_rows, marker, *logs)]
        size = sum(entity_size(op[1]) for op in ops)
        stale = part.stale_rows(plan.run_date, {e["RowKey"] for e in invoice_rows})
        room_ops, room_bytes = MAX_BATCH_OPS - 1, MAX_BATCH_BYTES - reserve
        if not stale and len(ops) <= room_ops and size <= room_bytes:
            if len(pack) + len(ops) > room_ops or pack_size + size > room_bytes:
                units.append(("pack", pack))
                pack, pack_size = [], 0
            pack.extend(ops)  # one atomic transaction: the rows and the marker commit together
            pack_size += size
            continue
        if pack:
            units.append(("pack", pack))
            pack, pack_size = [], 0
        units.append(("large", (plan, invoice_rows, stale, marker, logs)))
    if pack or not units:
        units.append(("pack", pack))
    if not planned.full and (len(units) > 1 or units[0][0] == "large"):
        # several transactions: the state is stale until the last one lands (a crash in between
        # sends the next run to the full read), and that last one is fenced on the new ETag
        etag = _fence_stale(store, pk, etag, "a commit in several transactions is under way")
        state_op = snapshot.state_op(pk, planned.kept, etag)
    for n, (kind, unit) in enumerate(units):
        last = [state_op] if n == len(units) - 1 else []
        try:
            if kind == "pack":
                store.transact(store.table, [*unit, *last], "commit")
            else:
                _commit_large(store, pk, *unit, last)
        except TableTransactionError as exc:
            if last and changed_meanwhile(exc):
                raise StateChanged(part.pk) from exc
            raise
    if not planned.full:
        _sweep(store, planned)


def _fence_stale(store: Store, pk: str, etag: str | None, why: str) -> str | None:
    """Make ``N:state`` stale on the ETag read (or create it stale); its new ETag."""
    stale = snapshot.stale_entity(pk, why)
    try:
        if etag is None:
            meta = store.create(store.table, stale, "state-stale")
        else:
            meta = store.replace_if(store.table, stale, etag, "state-stale")
    except (ResourceModifiedError, ResourceExistsError) as exc:
        raise StateChanged(pk) from exc
    return str(meta.get("etag")) if meta.get("etag") else None


def _sweep(store: Store, planned: Planned) -> None:
    """After the commit: the work rows of items now invoiced go, each on the ETag it was read
    with (best effort: a row left behind is read as invoiced by the state, and swept by a
    later run)."""
    ops = snapshot.sweep_ops(planned.work_items, planned.kept.state)
    try:
        store.submit(store.work, ops, "work-sweep")
    except (LeaseLost, WriteRefused):
        raise
    except Exception:  # the commit landed; only tidying failed
        log.warning("contract %s: work rows not swept; a later run does it", planned.part.pk)


def _commit_large(
    store: Store,
    pk: str,
    plan: ContractPlan,
    invoice_rows: list[dict[str, Any]],
    stale: list[dict[str, Any]],
    marker: dict[str, Any],
    logs: list[dict[str, Any]],
    last: list[Op],
) -> None:
    """A date too large for one transaction: clean leftovers, write Pending, commit atomically
    (with ``last``: the contract's new state when this is its final transaction)."""
    store.submit(store.table, [delete_op(e) for e in stale], "cleanup")
    headers = [codec.header_entity(pk, inv, codec.PENDING) for inv in plan.invoices]
    store.submit(store.table, [upsert_op(e) for e in headers], "pending-headers")
    store.submit(
        store.table,
        [upsert_op(e) for e in invoice_rows if not codec.is_header_key(e["RowKey"])],
        "pending-rows",
    )
    commit = [upsert_op(codec.header_entity(pk, inv, codec.DRAFT)) for inv in plan.invoices]
    commit.append(upsert_op(marker))
    commit.extend(last)
    log_ops = [upsert_op(e) for e in logs]
    if (
        len(commit) + len(log_ops) <= MAX_BATCH_OPS
        and sum(entity_size(op[1]) for op in (*commit, *log_ops)) <= MAX_BATCH_BYTES
    ):
        commit.extend(log_ops)
    else:
        store.submit(store.table, log_ops, "log")
    store.transact(store.table, commit, "commit")


def ledger_entries(store: Store) -> list[dict[str, Any]]:
    """The run ledger (S6), newest first, JSON-able."""
    return [rows.ledger_view(d, e) for d, e in sorted(store.ledger().items(), reverse=True)]

