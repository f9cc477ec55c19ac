"""Storage-backed operations (S5-S7, R15-R19): called by the CLI, the Functions handlers and tests.

API (no argparse needed)::

    store = open_store(settings)                      # StorageNotConfigured when unset
    import_upload(data, settings)           -> ImportResult  (validates before opening the store)
    import_workbook(store, data, settings)  -> ImportResult
                                     (InputRejected, UploadRejected, LeaseHeld, LeaseLost)
    run_daily(store, settings, today=None, span=None) -> RunSummary   (LeaseHeld, LeaseLost)
    confirm(store, settings, invoice_id)    -> Invoice          (NotFound, WrongState)
    cancel(store, settings, invoice_id)     -> Invoice          (NotFound, WrongState)
    list_invoices(store, start, end, status, contract) -> (invoices, log)
    get_invoice(store, invoice_id)          -> Invoice          (NotFound)
    ledger_entries(store)                   -> list[dict]       (S6, JSON-able)
    audit(store)                            -> list[str]        (empty = passed)
    health(store)                           -> bool

``ImportResult`` and ``RunSummary`` have ``as_dict()`` (JSON-able); ``invoicing.views`` gives an
invoice as JSON-able data.

Leases: import and run hold the blob lease (they must exclude each other: an import checks that no
item on a live invoice changes while a run could be invoicing it). Confirm and cancel do not take
it: each is one ETag-guarded state change of one invoice header (plus the ETag-guarded number
counter) that never conflicts with a run, which only writes uncommitted (contract, date) rows. So
accountants can confirm while a long run works, and twenty concurrent confirms all succeed.

The run's crash-safe commit protocol is described in ``invoicing.storage.store``.

Invoice numbers (R16) come from one counter entity updated with ``If-Match`` (ETag). Taking a
number records the pending assignment {number -> invoice} in the same update; nobody takes another
number while an assignment is pending: the next confirm (or audit) first *settles* it - stamps the
invoice if it is still a Draft, or gives the number back (counter - 1) if the invoice was cancelled
meanwhile. So a crash between taking a number and stamping it never leaves a gap, and numbers are
gap-free and unique in confirmation order however many confirms run at once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ServiceRequestError,
)

from invoicing import catchup, engine
from invoicing.engine import ContractPlan, ContractState, Invoice, LogEntry
from invoicing.errors import BadRequest, InputRejected, Problem
from invoicing.model import Contract, Outcome, Portfolio, SourceType, Status
from invoicing.settings import Settings
from invoicing.storage import codec
from invoicing.storage.codec import PENDING
from invoicing.storage.errors import (
    LeaseHeld,
    LeaseLost,
    NotFound,
    StorageError,
    StorageNotConfigured,
    WriteRefused,
    WrongState,
)
from invoicing.storage.keys import describe_key, encode_key
from invoicing.storage.store import (
    COUNTER_PK,
    COUNTER_RK,
    LEDGER,
    MAX_BATCH_BYTES,
    MAX_BATCH_OPS,
    REGISTRY,
    Op,
    Partition,
    Store,
    delete_op,
    entity_size,
    index_pk,
    upsert_op,
)

__all__ = [
    "ImportResult",
    "LeaseHeld",
    "LeaseLost",
    "NotFound",
    "RunSummary",
    "StorageNotConfigured",
    "WrongState",
    "audit",
    "cancel",
    "confirm",
    "get_invoice",
    "health",
    "import_upload",
    "import_workbook",
    "ledger_entries",
    "list_invoices",
    "open_store",
    "run_daily",
]

log = logging.getLogger(__name__)
DEFAULT_WORKERS = 4
CONTRACTS_PER_ROUND = 100  # contracts planned (held in memory) and indexed together
SHEETS = (
    "Contracts",
    "Customers",
    "ContractLines",
    "InvoiceSchedule",
    "Milestones",
    "Transactions",
)
Progress = Callable[[int, int], None]


def open_store(settings: Settings) -> Store:
    """The store named by the settings (S2), its tables created if missing."""
    if not settings.storage_connection:
        raise StorageNotConfigured()
    try:
        store = Store(settings.storage_connection, settings.table_prefix)
    except ValueError:  # the SDK's "connection string is either blank or malformed"
        raise StorageNotConfigured("the storage connection string is malformed") from None
    store.ensure_tables()
    return store


@contextmanager
def _leased(store: Store, settings: Settings, what: str):
    store.take_lease(settings.lease_seconds, what)
    store.abort.clear()
    try:
        yield
    finally:
        store.drop_lease()


def _parallel(
    fn: Callable[[Any], Any], items: Sequence[Any], workers: int, store: Store
) -> list[Any]:
    """``fn`` over ``items`` on a few threads; the first failure stops the others' writes."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]

    def guarded(item: Any) -> Any:
        if store.abort.is_set():
            raise WriteRefused("stopped: another worker of this operation failed")
        try:
            return fn(item)
        except BaseException:
            store.abort.set()
            raise

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(guarded, item) for item in items]
    errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
    if errors:
        real = [exc for exc in errors if not isinstance(exc, WriteRefused)]
        raise (real or errors)[0]
    return [f.result() for f in futures]


# =================================================================================================
# Import (S5)
# =================================================================================================


@dataclass
class ImportResult:
    """Counts per sheet: created / updated / unchanged / removed (removed: configuration rows of an
    imported contract that the upload no longer has; items are never removed)."""

    sheets: dict[str, dict[str, int]]
    contracts: int
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"sheets": self.sheets, "contracts": self.contracts, "warnings": list(self.warnings)}

    def text(self) -> str:
        rows = [f"imported {self.contracts} contract(s)"]
        for sheet, c in self.sheets.items():
            rows.append(
                f"  {sheet:<16} created {c['created']:>7,}  updated {c['updated']:>7,}  "
                f"unchanged {c['unchanged']:>7,}"
                + (f"  removed {c['removed']:,}" if c["removed"] else "")
            )
        return "\n".join(rows)


def import_workbook(
    store: Store, data: bytes, settings: Settings, *, workers: int = DEFAULT_WORKERS
) -> ImportResult:
    """Validate ``data`` like preview does, then upsert it (S5); nothing written on any error."""
    from invoicing.workbook.reader import read_workbook

    read = read_workbook(data, settings=settings)
    return import_portfolio(
        store,
        read.portfolio,
        settings,
        locations=read.locations,
        warnings=read.warnings,
        workers=workers,
    )


def import_upload(data: bytes, settings: Settings) -> ImportResult:
    """Validate first, then open the store and import: a bad upload is answered as such (4xx,
    exit 2) even while storage is down or unconfigured."""
    from invoicing.workbook.reader import read_workbook

    read = read_workbook(data, settings=settings)
    return import_portfolio(
        open_store(settings),
        read.portfolio,
        settings,
        locations=read.locations,
        warnings=read.warnings,
    )


def import_portfolio(
    store: Store,
    portfolio: Portfolio,
    settings: Settings,
    *,
    locations: Mapping[tuple[str, str, str], tuple[str, int]] | None = None,
    warnings: Iterable[str] = (),
    workers: int = DEFAULT_WORKERS,
) -> ImportResult:
    """Import a validated portfolio under the lease.

    A contract in the upload replaces its own configuration (name, currency, terms, customers,
    lines, schedules) as one entity, atomically, so splits never mix two uploads. Lines, customers
    and schedule rows it no longer has are gone from the configuration (counted as removed); their
    stored items stay but are no longer invoiced while their line is absent. Items are upserted by
    natural key and never deleted. An item on a live invoice that the upload changes is an error,
    as is a new currency for a contract with live invoices; any error rejects the whole upload.
    """
    locations = locations or {}
    with _leased(store, settings, "import"):
        rows = store.registry()
        registry = {r["ContractId"]: int(r.get("Order") or 0) for r in rows}
        unfinished = {r["ContractId"] for r in rows if r.get("Importing")}
        parts = _parallel(
            lambda c: store.load(c.contract_id), list(portfolio.contracts), workers, store
        )
        counts = {sheet: Counter(created=0, updated=0, unchanged=0, removed=0) for sheet in SHEETS}
        problems: list[Problem] = []
        writes: list[tuple[Partition, list[Op], list[dict[str, Any]] | None]] = []
        next_order = max(registry.values(), default=-1) + 1
        order_of: dict[str, int] = {}
        for contract, part in zip(portfolio.contracts, parts, strict=True):
            order = registry.get(contract.contract_id)
            if order is None:
                order = next_order
                next_order += 1
            order_of[contract.contract_id] = order
            item_ops, config = _diff_contract(contract, part, order, counts, problems, locations)
            writes.append((part, item_ops, config))
        problems.extend(_moved_transactions(store, portfolio, parts, locations))
        if problems:
            raise InputRejected(problems, title="The upload changes invoiced items")

        def write(entry: tuple[Partition, list[Op], list[dict[str, Any]] | None]) -> None:
            _, ops, config = entry
            if config is not None:  # last: the configuration lands after the items it bills
                ops = [*ops, *(upsert_op(e) for e in config)]
            store.submit(store.table, ops, "import")

        # S5a: every contract this upload writes is marked Importing before its first write and
        # unmarked after the last, so a run never invoices a half-updated contract (it reports it)
        # and a crash in between is named by audit until the upload is imported again.
        touched = [
            (contract, order_of[contract.contract_id])
            for contract, (_, ops, config) in zip(portfolio.contracts, writes, strict=True)
            if ops or config is not None or contract.contract_id in unfinished
        ]
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        store.submit(
            store.globals,
            [upsert_op(_registry_row(c.contract_id, o, importing=started)) for c, o in touched],
            "import-begin",
        )
        _parallel(write, writes, workers, store)
        store.submit(
            store.globals,
            [upsert_op(_registry_row(c.contract_id, o)) for c, o in touched],
            "import-end",
        )
    return ImportResult(
        {sheet: dict(c) for sheet, c in counts.items()}, len(portfolio.contracts), tuple(warnings)
    )


def _registry_row(contract_id: str, order: int, importing: str | None = None) -> dict[str, Any]:
    return {
        "PartitionKey": REGISTRY,
        "RowKey": encode_key(contract_id),
        "ContractId": contract_id,
        "Order": order,
        "Importing": importing,
    }


def _moved_transactions(
    store: Store,
    portfolio: Portfolio,
    parts: Sequence[Partition],
    locations: Mapping[tuple[str, str, str], tuple[str, int]],
) -> list[Problem]:
    """W9 across uploads: a TransactionId is unique in the whole store, not only in one workbook.

    Items are never deleted, so a transaction moved to another contract would exist twice and be
    invoiced twice (R13). Only ids new to their contract need looking up; when there are any, one
    keys-only scan of the stored transactions finds their owners.
    """
    new_ids: dict[str, tuple[str, str]] = {}  # row key -> (contract id, transaction id)
    for contract, part in zip(portfolio.contracts, parts, strict=True):
        for t in contract.transactions:
            if t.transaction_id not in part.transactions:
                new_ids[codec.txn_key(t.transaction_id)] = (contract.contract_id, t.transaction_id)
    if not new_ids:
        return []
    owners: dict[str, str] = {}
    for row in store.query(
        store.table,
        "RowKey ge @lo and RowKey lt @hi",
        {"lo": "T:", "hi": "T;"},
        select=["PartitionKey", "RowKey"],
    ):
        wanted = new_ids.get(row["RowKey"])
        if wanted is not None and row["PartitionKey"] != encode_key(wanted[0]):
            owners[row["RowKey"]] = describe_key(row["PartitionKey"])
    problems = []
    for key, owner in owners.items():
        contract_id, transaction_id = new_ids[key]
        sheet, row = locations.get(
            (contract_id, SourceType.TRANSACTION.value, transaction_id), ("Transactions", 0)
        )
        problems.append(
            Problem(
                sheet,
                f"A{row}" if row else "",
                f"transaction {transaction_id} is already stored under contract {owner}; "
                "a TransactionId is unique across contracts and cannot move",
            )
        )
    return problems


def _count(counter: Counter[str], old: Mapping[Any, Any], new: Mapping[Any, Any]) -> None:
    for key, value in new.items():
        if key not in old:
            counter["created"] += 1
        elif old[key] != value:
            counter["updated"] += 1
        else:
            counter["unchanged"] += 1
    counter["removed"] += sum(1 for key in old if key not in new)


def _config_views(
    contract: Contract | None,
) -> tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any], dict[Any, Any]]:
    """(Contracts, Customers, ContractLines, InvoiceSchedule) rows of a contract, by natural key."""
    if contract is None:
        return {}, {}, {}, {}
    head = {contract.contract_id: (contract.name, contract.currency, contract.payment_terms_days)}
    customers: dict[Any, Any] = {}
    for c in contract.customers:
        customers[("", c.customer_id)] = (c.name, c.split_percent, c.rounding)
    lines: dict[Any, Any] = {}
    schedule: dict[Any, Any] = {}
    for line in contract.lines:
        for c in line.customers:
            customers[(line.line_id, c.customer_id)] = (c.name, c.split_percent, c.rounding)
        doc = codec.line_doc(line)
        doc["customers"] = None
        if doc["schedule"] and doc["schedule"]["k"] == "x":
            for run_date, cutoff in doc["schedule"]["rows"]:
                schedule[(line.line_id, run_date)] = cutoff
            doc["schedule"] = "explicit"
        lines[line.line_id] = repr(doc)
    return head, customers, lines, schedule


def _diff_contract(
    contract: Contract,
    part: Partition,
    order: int,
    counts: dict[str, Counter[str]],
    problems: list[Problem],
    locations: Mapping[tuple[str, str, str], tuple[str, int]],
) -> tuple[list[Op], list[dict[str, Any]] | None]:
    old = part.contract()
    old_views = _config_views(old)
    new_views = _config_views(contract)
    for sheet, o, n in zip(SHEETS[:4], old_views, new_views, strict=True):
        _count(counts[sheet], o, n)
    live = part.live_items()
    stored_items = bool(part.transactions or part.milestones)
    if old is not None and old.currency != contract.currency and stored_items:
        # Stored amounts were entered in the old currency: reading them in another one is wrong.
        sheet, row = locations.get(
            (contract.contract_id, "Contract", contract.contract_id), ("Contracts", 0)
        )
        problems.append(
            Problem(
                sheet,
                f"A{row}" if row else "",
                f"contract {contract.contract_id} has stored items in {old.currency}; "
                f"its currency cannot change to {contract.currency}",
            )
        )
    used = engine.state_from_invoices(contract, part.live_invoices()).nte_used
    for line in contract.lines:
        limit = line.not_to_exceed
        if limit is not None and used.get(line.line_id, Decimal(0)) > limit:
            sheet, row = locations.get(
                (contract.contract_id, "Line", line.line_id), ("ContractLines", 0)
            )
            problems.append(
                Problem(
                    sheet,
                    f"A{row}" if row else "",
                    f"NotToExceed {limit} of line {line.line_id} is below the "
                    f"{used[line.line_id]} already on live invoices; cancel drafts first",
                )
            )
    pk = part.pk
    ops: list[Op] = []
    kinds: tuple[tuple[SourceType, str, Sequence[Any], Mapping[str, Any], Any, Any], ...] = (
        (
            SourceType.MILESTONE,
            "Milestones",
            contract.milestones,
            part.milestones,
            codec.milestone_from,
            codec.milestone_entity,
        ),
        (
            SourceType.TRANSACTION,
            "Transactions",
            contract.transactions,
            part.transactions,
            codec.transaction_from,
            codec.transaction_entity,
        ),
    )
    for kind, sheet_name, items, stored_rows, from_row, to_entity in kinds:
        counter = counts[sheet_name]
        for new in items:
            item_id = new.milestone_id if kind is SourceType.MILESTONE else new.transaction_id
            stored = stored_rows.get(item_id)
            if stored is None:
                counter["created"] += 1
            elif from_row(stored) == new:
                counter["unchanged"] += 1
                continue
            else:
                holders = live.get((kind, item_id))
                if holders:
                    sheet, row = locations.get(
                        (contract.contract_id, kind.value, item_id), (sheet_name, 0)
                    )
                    problems.append(
                        Problem(
                            sheet,
                            f"A{row}" if row else "",
                            f"{kind.value} {item_id} is on invoice {' and '.join(holders)}; "
                            "cancel the draft first",
                        )
                    )
                    continue
                counter["updated"] += 1
            ops.append(upsert_op(to_entity(pk, new)))
    config = codec.config_entities(pk, contract, order)
    stored_config = part.config_entities()
    if len(stored_config) == len(config) and all(
        _same_config(a, b) for a, b in zip(stored_config, config, strict=True)
    ):
        return ops, None
    # parts the new configuration no longer needs go (the main entity's count ignores them anyway)
    wanted = {e["RowKey"] for e in config}
    ops.extend(delete_op(e) for e in stored_config if e["RowKey"] not in wanted)
    return ops, config


def _same_config(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = {k for k in (*old, *new) if not k.startswith("_") and k not in ("Timestamp", "etag")}
    return all(
        codec.plain_int(old.get(k)) == codec.plain_int(new.get(k))
        if k in ("Terms", "Order", "Parts", "Entities")
        else old.get(k) == new.get(k)
        for k in keys
    )


# =================================================================================================
# The daily run (R17-R19, S6)
# =================================================================================================


@dataclass
class DateSummary:
    run_date: date
    invoices: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)
    held: int = 0
    skipped: int = 0
    invoiced_lines: int = 0

    def add(self, other: Mapping[str, Any]) -> None:
        self.invoices += int(other.get("Invoices") or 0)
        self.held += int(other.get("Held") or 0)
        self.skipped += int(other.get("Skipped") or 0)
        self.invoiced_lines += int(other.get("InvoicedLines") or 0)
        for currency, amount in json.loads(other.get("Amounts") or "{}").items():
            self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + Decimal(amount)

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "dates_run": [d.as_dict() for d in self.dates],
            "already_done": [d.isoformat() for d in self.already_done],
            "missed": [d.isoformat() for d in self.missed],
            "unfinished_imports": self.blocked,
            "contracts": self.contracts,
            "invoices_created": self.invoices,
            "amounts": {c: str(a) for c, a in self.amounts.items()},
            "held": sum(d.held for d in self.dates),
            "skipped_lines": sum(d.skipped for d in self.dates),
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        rows: list[str] = []
        if self.dates:
            span = (
                f"{self.dates[0].run_date} .. {self.dates[-1].run_date}"
                if len(self.dates) > 1
                else str(self.dates[0].run_date)
            )
            rows.append(
                f"ran {len(self.dates)} date(s) ({span}) over {self.contracts} contract(s) "
                f"in {self.seconds:.1f} s"
            )
        else:
            rows.append("nothing to run")
        if self.already_done:
            rows.append(f"already completed, not rerun: {_dates_text(self.already_done)}")
        if self.missed:
            rows.append(
                f"missed (older than the catch-up window, INVOICE_CATCHUP_DAYS, and never "
                f"completed): {_dates_text(self.missed)}; run them with run --from A --to B"
            )
        if self.blocked:
            rows.append(
                f"not invoiced, their import never finished (import the workbook again): "
                f"{', '.join(self.blocked[:20])}"
                + (f" and {len(self.blocked) - 20} more" if len(self.blocked) > 20 else "")
                + "; the dates run stay incomplete"
            )
        amounts = ", ".join(f"{c} {a}" for c, a in self.amounts.items()) or "nothing"
        rows.append(f"invoices created: {self.invoices}; amounts: {amounts}")
        rows.append(
            f"held items: {sum(d.held for d in self.dates)}; "
            f"skipped lines: {sum(d.skipped for d in self.dates)}"
        )
        for d in self.dates:
            if d.invoices or d.held or d.skipped:
                amounts = ", ".join(f"{c} {a}" for c, a in sorted(d.amounts.items()))
                rows.append(
                    f"  {d.run_date}  {d.invoices} invoice(s)  {amounts}"
                    + (f"  held {d.held}" if d.held else "")
                    + (f"  skipped {d.skipped} line(s)" if d.skipped else "")
                )
        return "\n".join(rows)


def _dates_text(days: list[date]) -> str:
    if len(days) > 4:
        return f"{days[0]} .. {days[-1]} ({len(days)} dates)"
    return ", ".join(str(d) for d in days)


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
        {d: str(e.get("State")) for d, e in ledger.items()},
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
) -> RunSummary:
    """The daily run (R17-R19) under the lease: catch-up, or every date of ``span`` in order.

    ``today`` makes it the daily run as if today were that date; a date after the real today
    (``now``, default the clock, in INVOICE_TIMEZONE) is refused: a run invoices what happened.
    """
    started_at = time.monotonic()
    real_today = today_in(settings, now)
    last = span[1] if span is not None else (today or real_today)
    if last > real_today:
        raise BadRequest(
            f"run date {last} is after today ({real_today} in {settings.timezone}): a run "
            "invoices what has happened, so a future date is refused (R19)"
        )
    with _leased(store, settings, "run"):
        ledger = store.ledger()
        choice = choose_dates(store, ledger, settings, today or real_today, span)
        dates = list(choice.run)
        _record_missed(store, ledger, choice.missed)
        summary = RunSummary(already_done=list(choice.already_done), missed=list(choice.missed))
        if not dates:
            summary.seconds = time.monotonic() - started_at
            return summary
        now_text = datetime.now().astimezone().isoformat(timespec="seconds")
        store.submit(
            store.globals,
            [
                upsert_op(
                    {
                        "PartitionKey": LEDGER,
                        "RowKey": d.isoformat(),
                        "State": catchup.STARTED,
                        "Started": now_text,
                    }
                )
                for d in dates
            ],
            "ledger-started",
        )
        # S5a: a contract whose import did not finish is not invoiced; its dates stay incomplete
        blocked = set(store.unfinished_imports())
        contracts = [cid for cid, _ in store.contracts() if cid not in blocked]
        summary.contracts = len(contracts)
        per_contract: list[dict[date, dict[str, Any]]] = []
        for first in range(0, len(contracts), CONTRACTS_PER_ROUND):
            # plan a round of contracts, index their new invoices in bulk, then commit each one
            chunk = contracts[first : first + CONTRACTS_PER_ROUND]
            planned = _parallel(lambda c: _plan_contract(store, c, dates), chunk, workers, store)
            _write_index(
                store, [inv for _, plans, _ in planned for p in plans for inv in p.invoices]
            )
            _parallel(lambda e: _write_plans(store, e[0], e[1]), planned, workers, store)
            for contract_id, (_, _, stats) in zip(chunk, planned, strict=True):
                if stats is None:
                    blocked.add(contract_id)
                else:
                    per_contract.append(stats)
            if progress is not None:
                progress(first + len(chunk), len(contracts))
        summary.blocked = sorted(blocked)
        by_date = {d: DateSummary(d) for d in dates}
        for stats in per_contract:
            for d, s in stats.items():
                by_date[d].add(s)
        finished = datetime.now().astimezone().isoformat(timespec="seconds")
        state = catchup.INCOMPLETE if blocked else catchup.COMPLETED
        store.submit(
            store.globals,
            [
                upsert_op(
                    {
                        "PartitionKey": LEDGER,
                        "RowKey": d.isoformat(),
                        "State": state,
                        "Started": now_text,
                        "Completed": finished,
                        "Contracts": len(contracts),
                        "Invoices": s.invoices,
                        "Held": s.held,
                        "Skipped": s.skipped,
                        "InvoicedLines": s.invoiced_lines,
                        "Amounts": json.dumps({c: str(a) for c, a in sorted(s.amounts.items())}),
                        "Blocked": json.dumps(sorted(blocked)[:100]) if blocked else None,
                    }
                )
                for d, s in by_date.items()
            ],
            "ledger-completed",
        )
        summary.dates = [by_date[d] for d in dates]
    summary.seconds = time.monotonic() - started_at
    return summary


def _record_missed(
    store: Store, ledger: Mapping[date, Mapping[str, Any]], missed: Iterable[date]
) -> None:
    """R19: a Missed date gets a ledger entry saying so (it keeps its Started time if any)."""
    ops = []
    for d in missed:
        entry = ledger.get(d)
        if entry is not None and entry.get("State") == catchup.MISSED:
            continue
        row = {"PartitionKey": LEDGER, "RowKey": d.isoformat(), "State": catchup.MISSED}
        if entry is not None and entry.get("Started"):
            row["Started"] = entry["Started"]
        ops.append(upsert_op(row))
    store.submit(store.globals, ops, "ledger-missed")


def _plan_contract(
    store: Store, contract_id: str, dates: list[date]
) -> tuple[Partition, list[ContractPlan], dict[date, dict[str, Any]] | None]:
    """Steps 2-3 of the commit protocol for one contract (see invoicing.storage.store).

    Stats are None for a contract that cannot be invoiced (no configuration: an import that
    never finished), so that its dates stay incomplete."""
    part = store.load(contract_id)
    contract = part.contract()
    if contract is None:
        log.warning(
            "contract %s has no configuration (an interrupted import?): not invoiced; "
            "import its workbook again",
            contract_id,
        )
        return part, [], None
    state: ContractState = engine.state_from_invoices(contract, part.committed_invoices())
    pending_dates = {h["InvoiceDate"] for h in part.headers.values() if h["Status"] == PENDING}
    stats: dict[date, dict[str, Any]] = {}
    plans: list[ContractPlan] = []
    index = engine.index_contract(contract, dates)  # once for all the dates of this run
    for run_date in dates:
        marker = part.markers.get(run_date)
        if marker is not None:
            stats[run_date] = marker
            continue
        plan = engine.plan_contract(contract, run_date, state, index)
        state = plan.state
        leftovers = run_date.isoformat() in pending_dates
        if plan.invoices or plan.log or leftovers:  # a date with no due line writes nothing
            plans.append(plan)
            stats[run_date] = _marker(part.pk, plan, 0)
    return part, plans, stats


def _write_index(store: Store, invoices: list[Invoice]) -> None:
    """Step 4: InvoiceId -> ContractId, before any of these invoices is committed."""
    store.submit(
        store.globals,
        [
            upsert_op(
                {
                    "PartitionKey": index_pk(inv.invoice_id),
                    "RowKey": encode_key(inv.invoice_id),
                    "ContractId": inv.contract_id,
                    "InvoiceDate": inv.invoice_date.isoformat(),
                }
            )
            for inv in invoices
        ],
        "index",
    )


def _marker(pk: str, plan: ContractPlan, log_parts: int) -> dict[str, Any]:
    amounts: dict[str, Decimal] = {}
    for inv in plan.invoices:
        amounts[inv.currency] = amounts.get(inv.currency, Decimal(0)) + inv.amount
    return {
        "PartitionKey": pk,
        "RowKey": codec.marker_key(plan.run_date),
        "Date": plan.run_date.isoformat(),
        "Invoices": len(plan.invoices),
        "Amounts": json.dumps({c: str(a) for c, a in sorted(amounts.items())}),
        "Held": sum(1 for e in plan.log if e.outcome is Outcome.HELD),
        "Skipped": sum(1 for e in plan.log if e.outcome is Outcome.SKIPPED),
        "InvoicedLines": sum(1 for e in plan.log if e.outcome is Outcome.INVOICED),
        "LogParts": log_parts,
    }


def _write_plans(store: Store, part: Partition, plans: list[ContractPlan]) -> None:
    if not plans:
        return
    pk = part.pk
    pack: list[Op] = []
    pack_size = 0

    def flush() -> None:
        nonlocal pack, pack_size
        store.transact(store.table, pack, "commit")
        pack, pack_size = [], 0

    for plan in plans:
        logs = [
            {
                "PartitionKey": pk,
                "RowKey": codec.log_key(plan.run_date, n),
                "Date": plan.run_date.isoformat(),
                **e,
            }
            for n, e in enumerate(codec.pack_chunks(codec.log_rows(plan.log), "the run log"))
        ]
        marker = _marker(pk, plan, len(logs))
        rows: list[dict[str, Any]] = []
        for inv in plan.invoices:
            rows.extend(codec.invoice_entities(pk, inv, Status.DRAFT.value))
        ops = [upsert_op(e) for e in (*rows, marker, *logs)]
        size = sum(entity_size(op[1]) for op in ops)
        stale = _stale_rows(part, plan, {e["RowKey"] for e in rows})
        if not stale and len(ops) <= MAX_BATCH_OPS and size <= MAX_BATCH_BYTES:
            if len(pack) + len(ops) > MAX_BATCH_OPS or pack_size + size > MAX_BATCH_BYTES:
                flush()
            pack.extend(ops)  # one atomic transaction: the rows and the marker commit together
            pack_size += size
            continue
        flush()
        # a large date: clean leftovers, write Pending, then commit atomically (see store docs)
        store.submit(store.table, [delete_op(e) for e in stale], "cleanup")
        headers = [codec.header_entity(pk, inv, PENDING) for inv in plan.invoices]
        store.submit(store.table, [upsert_op(e) for e in headers], "pending-headers")
        store.submit(
            store.table,
            [upsert_op(e) for e in rows if not e["RowKey"].startswith("I:")],
            "pending-rows",
        )
        commit = [
            upsert_op(codec.header_entity(pk, inv, Status.DRAFT.value)) for inv in plan.invoices
        ]
        commit.append(upsert_op(marker))
        log_ops = [upsert_op(e) for e in logs]
        if (
            len(commit) + len(log_ops) <= MAX_BATCH_OPS
            and sum(entity_size(op[1]) for op in (*commit, *log_ops)) <= MAX_BATCH_BYTES
        ):
            commit.extend(log_ops)
        else:
            store.submit(store.table, log_ops, "log")
        store.transact(store.table, commit, "commit")
    flush()


def _stale_rows(part: Partition, plan: ContractPlan, keep: set[str]) -> list[dict[str, Any]]:
    """Rows of uncommitted (Pending) invoices of (C, D) that the new plan does not overwrite."""
    stale: list[dict[str, Any]] = []
    day = plan.run_date.isoformat()
    for invoice_id, header in part.headers.items():
        if header.get("InvoiceDate") != day or header.get("Status") != PENDING:
            continue
        stale.extend(e for e in part.invoice_rows(invoice_id) if e["RowKey"] not in keep)
    return stale


def ledger_entries(store: Store) -> list[dict[str, Any]]:
    """The run ledger (S6), newest first, JSON-able."""
    out = []
    for d, e in sorted(store.ledger().items(), reverse=True):
        out.append(
            {
                "date": d.isoformat(),
                "state": e.get("State"),
                "started": e.get("Started"),
                "completed": e.get("Completed"),
                "contracts": e.get("Contracts"),
                "invoices": e.get("Invoices"),
                "held": e.get("Held"),
                "skipped_lines": e.get("Skipped"),
                "amounts": json.loads(e.get("Amounts") or "{}"),
            }
        )
    return out


# =================================================================================================
# Reading invoices (export, H7, H8)
# =================================================================================================


def _locate(store: Store, invoice_id: str) -> str:
    contract_id = store.index_lookup(invoice_id)
    if contract_id is None:
        raise NotFound(invoice_id)
    return contract_id


def _read_invoice(
    store: Store, contract_id: str, invoice_id: str
) -> tuple[Invoice, dict[str, Any]]:
    pk = encode_key(contract_id)
    header = store.get(store.table, pk, codec.header_key(invoice_id))
    if header is None or header.get("Status") == PENDING:
        raise NotFound(invoice_id)
    key = encode_key(invoice_id)
    lines = store.partition_rows(pk, lo=f"L:{key}:", hi=f"L:{key};")
    details = store.partition_rows(pk, lo=f"D:{key}:", hi=f"D:{key};")
    return codec.invoice_from(header, lines, details), header


def get_invoice(store: Store, invoice_id: str) -> Invoice:
    """One invoice with its lines and details, status and number (H8); NotFound otherwise."""
    return _read_invoice(store, _locate(store, invoice_id), invoice_id)[0]


def list_invoices(
    store: Store,
    start: date | None = None,
    end: date | None = None,
    status: Status | str | None = None,
    contract: str | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
) -> tuple[list[Invoice], list[LogEntry]]:
    """Committed invoices by invoice date / status / contract, and the stored RunLog of the dates
    in range (X4), sorted like the preview (X: date, contract, customer)."""
    wanted = Status(status) if status else None
    registry = store.contracts()
    if contract is not None:
        registry = [(c, o) for c, o in registry if c == contract]
    lo, hi = start or date.min, end or date.max

    def one(entry: tuple[str, int]) -> tuple[list[Invoice], list[tuple[date, int, int, LogEntry]]]:
        contract_id, order = entry
        part = store.load_invoices(contract_id, (lo, hi))
        invoices = []
        for invoice_id, header in part.headers.items():
            if header.get("Status") == PENDING:
                continue
            if not lo <= date.fromisoformat(header["InvoiceDate"]) <= hi:
                continue
            if wanted is not None and header.get("Status") != wanted.value:
                continue
            invoices.append(part.invoice(invoice_id))
        entries = []
        for run_date, marker in part.markers.items():
            if not lo <= run_date <= hi:
                continue
            count = codec.plain_int(marker.get("LogParts")) or 0
            parts = sorted(part.logs.get(run_date, ()), key=lambda e: e["RowKey"])[:count]
            rows = [row for p in parts for row in codec.unpack(p)]
            for seq, entry in enumerate(codec.log_from(run_date, contract_id, rows)):
                entries.append((run_date, order, seq, entry))
        return invoices, entries

    results = _parallel(one, registry, workers, store)
    invoices = [inv for r in results for inv in r[0]]
    invoices.sort(key=lambda i: (i.invoice_date, i.contract_id, i.customer_id))
    entries = sorted((e for r in results for e in r[1]), key=lambda e: e[:3])
    return invoices, [e[3] for e in entries]


def format_number(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:06d}"


def _counter(store: Store) -> dict[str, Any]:
    row = store.get(store.globals, COUNTER_PK, COUNTER_RK)
    if row is not None:
        return row
    with contextlib.suppress(ResourceExistsError):  # another confirm created it first
        store.create(
            store.globals,
            {"PartitionKey": COUNTER_PK, "RowKey": COUNTER_RK, "Last": codec.int64(0)},
            "counter-create",
        )
    row = store.get(store.globals, COUNTER_PK, COUNTER_RK)
    assert row is not None
    return row


def _counter_entity(last: int, pending: tuple[int, str, str] | None = None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": COUNTER_PK,
        "RowKey": COUNTER_RK,
        "Last": codec.int64(last),
    }
    if pending is not None:
        entity.update(
            PendingSeq=codec.int64(pending[0]),
            PendingInvoice=pending[1],
            PendingContract=pending[2],
        )
    return entity


def _stamp(store: Store, header: Mapping[str, Any], seq: int, prefix: str) -> None:
    stamped = dict(header)
    stamped.update(
        Status=Status.CONFIRMED.value, Number=format_number(prefix, seq), Seq=codec.int64(seq)
    )
    store.replace_if(store.table, stamped, header["_etag"], "confirm-stamp")


def settle_pending_number(store: Store, settings: Settings) -> None:
    """Finish (or undo) an invoice-number assignment left pending by an interrupted confirm."""
    while True:
        counter = _counter(store)
        seq = codec.plain_int(counter.get("PendingSeq"))
        if seq is None:
            return
        last = codec.plain_int(counter.get("Last")) or 0
        invoice_id, contract_id = counter["PendingInvoice"], counter["PendingContract"]
        header = store.get(store.table, encode_key(contract_id), codec.header_key(invoice_id))
        status = header.get("Status") if header else None
        try:
            if status == Status.DRAFT.value:
                assert header is not None
                _stamp(store, header, seq, settings.invoice_number_prefix)
                new = _counter_entity(last)
            elif status == Status.CONFIRMED.value and codec.plain_int(header.get("Seq")) == seq:  # type: ignore[union-attr]
                new = _counter_entity(last)
            else:  # cancelled (or gone) before it was stamped: give the number back
                new = _counter_entity(seq - 1 if last == seq else last)
            store.replace_if(store.globals, new, counter["_etag"], "counter-settle")
        except ResourceModifiedError:
            continue  # someone else settled or stamped meanwhile: look again


def confirm(store: Store, settings: Settings, invoice_id: str) -> Invoice:
    """Draft -> Confirmed with the next gap-free InvoiceNumber (R15, R16)."""
    contract_id = _locate(store, invoice_id)
    pk = encode_key(contract_id)
    while True:
        settle_pending_number(store, settings)
        header = store.get(store.table, pk, codec.header_key(invoice_id))
        if header is None or header.get("Status") == PENDING:
            raise NotFound(invoice_id)
        if header["Status"] != Status.DRAFT.value:
            raise WrongState(invoice_id, header["Status"])
        counter = _counter(store)
        if codec.plain_int(counter.get("PendingSeq")) is not None:
            continue
        seq = (codec.plain_int(counter.get("Last")) or 0) + 1
        try:
            store.replace_if(
                store.globals,
                _counter_entity(seq, (seq, invoice_id, contract_id)),
                counter["_etag"],
                "counter-take",
            )
        except ResourceModifiedError:
            continue
        break
    # the number is ours and recorded as pending: stamp it, then clear the pending assignment
    settle_pending_number(store, settings)
    invoice = get_invoice(store, invoice_id)
    if invoice.status is not Status.CONFIRMED:
        raise WrongState(invoice_id, invoice.status.value)  # cancelled meanwhile: number given back
    if invoice.invoice_number != format_number(settings.invoice_number_prefix, seq):
        # another confirm of the same invoice won the race; ours was given back
        raise WrongState(invoice_id, invoice.status.value)
    return invoice


def cancel(store: Store, settings: Settings, invoice_id: str) -> Invoice:
    """Draft -> Cancelled (R15); its items go out again on their line's next due run. Cancelling a
    cancelled invoice is a no-op; a confirmed one is WrongState."""
    contract_id = _locate(store, invoice_id)
    pk = encode_key(contract_id)
    while True:
        header = store.get(store.table, pk, codec.header_key(invoice_id))
        if header is None or header.get("Status") == PENDING:
            raise NotFound(invoice_id)
        status = header["Status"]
        if status == Status.CANCELLED.value:
            break
        if status != Status.DRAFT.value:
            raise WrongState(invoice_id, status)
        cancelled = dict(header)
        cancelled["Status"] = Status.CANCELLED.value
        try:
            store.replace_if(store.table, cancelled, header["_etag"], "cancel")
        except ResourceModifiedError:
            continue
        break
    return get_invoice(store, invoice_id)


# =================================================================================================
# Audit (S7) and health (H2)
# =================================================================================================


def audit(
    store: Store, settings: Settings | None = None, *, workers: int = DEFAULT_WORKERS
) -> list[str]:
    """Every violated invariant as a sentence; an empty list means the audit passed."""
    settings = settings or Settings()
    settle_pending_number(store, settings)
    violations: list[str] = []
    running = store.lease_state() == "leased"
    note = " (a run holds the lease now: it may still be working)" if running else ""
    for d, e in sorted(store.ledger().items()):
        state = e.get("State")
        if state == catchup.MISSED:
            violations.append(
                f"run date {d} was missed: older than the catch-up window and never run; "
                f"run it with run --from {d} --to {d} (R19)"
            )
        elif state == catchup.INCOMPLETE:
            blocked = ", ".join(json.loads(e.get("Blocked") or "[]"))
            violations.append(
                f"run date {d} is incomplete: contracts {blocked} were not invoiced (their "
                "import never finished); the next run redoes it (S5a)"
            )
        elif state != catchup.COMPLETED:
            violations.append(
                f"run date {d} was started ({e.get('Started')}) but never completed{note}"
            )
    for contract_id, since in sorted(store.unfinished_imports().items()):
        violations.append(
            f"contract {contract_id}: an import started at {since} never finished; runs do not "
            "invoice it until its workbook is imported again (S5a)"
        )
    index: dict[str, str] = {}
    for row in store.query(
        store.globals, "PartitionKey ge @lo and PartitionKey lt @hi", {"lo": "I", "hi": "J"}
    ):
        index[row["RowKey"]] = row["ContractId"]
    registry = store.contracts()
    results = _parallel(
        lambda c: _audit_contract(store, c[0], index, note), registry, workers, store
    )
    seqs: list[tuple[int, str]] = []
    for found, numbers in results:
        violations.extend(found)
        seqs.extend(numbers)
    violations.extend(_transactions_in_two_contracts(store))
    counter = store.get(store.globals, COUNTER_PK, COUNTER_RK)
    last = codec.plain_int(counter.get("Last")) if counter else 0
    seen: dict[int, str] = {}
    for seq, invoice_id in sorted(seqs):
        if seq in seen:
            violations.append(f"invoice number {seq} is on both {seen[seq]} and {invoice_id} (R16)")
        seen[seq] = invoice_id
    missing = sorted(set(range(1, len(seen) + 1)) - set(seen))
    if missing or (seen and max(seen) != len(seen)):
        violations.append(
            f"invoice numbers are not gap-free: {len(seen)} confirmed invoice(s), "
            f"numbers missing: {missing[:10]}, highest {max(seen, default=0)} (R16)"
        )
    if (last or 0) != len(seen):
        violations.append(
            f"the invoice number counter is at {last} but {len(seen)} number(s) "
            "are on confirmed invoices (R16)"
        )
    return violations


def _transactions_in_two_contracts(store: Store) -> list[str]:
    """R13 across partitions: one TransactionId stored under two contracts could bill twice."""
    owners: dict[str, list[str]] = {}
    for row in store.query(
        store.table,
        "RowKey ge @lo and RowKey lt @hi",
        {"lo": "T:", "hi": "T;"},
        select=["PartitionKey", "RowKey"],
    ):
        owners.setdefault(row["RowKey"], []).append(row["PartitionKey"])
    return [
        f"transaction {describe_key(key[2:])} is stored under {len(pks)} contracts "
        f"({', '.join(describe_key(p) for p in pks)}): "
        "it could be invoiced twice (R13)"
        for key, pks in owners.items()
        if len(pks) > 1
    ]


def _audit_contract(
    store: Store, contract_id: str, index: Mapping[str, str], note: str
) -> tuple[list[str], list[tuple[int, str]]]:
    part = store.load(contract_id)
    contract = part.contract()
    found: list[str] = []
    numbers: list[tuple[int, str]] = []
    if contract is None:
        return [
            f"contract {contract_id} is registered but has no configuration (interrupted import)"
        ], []
    held_by: dict[tuple[SourceType, str], dict[str, list[Decimal]]] = {}
    nte_used: dict[str, Decimal] = {}
    for invoice_id, header in part.headers.items():
        status = header.get("Status")
        where = f"invoice {invoice_id} ({contract_id})"
        if status == PENDING:
            found.append(
                f"{where} is Pending: the run of {header.get('InvoiceDate')} is half-done{note}"
            )
            continue
        inv = part.invoice(invoice_id)
        if date.fromisoformat(header["InvoiceDate"]) not in part.markers:
            found.append(f"{where} is {status} but its run date has no commit marker")
        if index.get(encode_key(invoice_id)) != contract_id:
            found.append(f"{where} is missing from the invoice index")
        if inv.amount != sum((line.amount for line in inv.lines), Decimal(0)):
            found.append(f"{where}: amount {inv.amount} is not the sum of its lines (R12)")
        if codec.plain_int(header.get("LineCount")) != len(inv.lines):
            found.append(
                f"{where}: {len(inv.lines)} line row(s), header says {header.get('LineCount')}"
            )
        for line, row in zip(
            inv.lines,
            sorted(part.lines.get(invoice_id, ()), key=lambda e: int(e["LineNumber"])),
            strict=False,
        ):
            if line.amount != sum((d.amount for d in line.details), Decimal(0)):
                found.append(
                    f"{where} line {line.line_number}: amount {line.amount} is not the sum "
                    "of its details (R12)"
                )
            if codec.plain_int(row.get("DetailCount")) != len(line.details):
                found.append(
                    f"{where} line {line.line_number}: {len(line.details)} detail row(s), "
                    f"line says {row.get('DetailCount')}"
                )
        if status == Status.CONFIRMED.value:
            seq = codec.plain_int(header.get("Seq"))
            if seq is None or not header.get("Number"):
                found.append(f"{where} is Confirmed without an invoice number (R16)")
            else:
                numbers.append((seq, invoice_id))
        elif header.get("Number") or header.get("Seq") is not None:
            found.append(f"{where} is {status} but has invoice number {header.get('Number')} (R16)")
        if status in codec.LIVE:
            for line in inv.lines:
                nte_used[line.contract_line_id] = (
                    nte_used.get(line.contract_line_id, Decimal(0)) + line.amount
                )
                for d in line.details:
                    held_by.setdefault((d.source_type, d.source_id), {}).setdefault(
                        invoice_id, []
                    ).append(d.amount)
    open_shares = engine.state_from_invoices(contract, part.committed_invoices()).open_shares
    for (kind, item_id), invoices in held_by.items():
        by_customer: dict[str, list[str]] = {}
        for invoice_id in invoices:
            by_customer.setdefault(part.headers[invoice_id]["CustomerId"], []).append(invoice_id)
        for customer_id, ids in sorted(by_customer.items()):
            if len(ids) > 1:
                found.append(
                    f"{kind.value} {item_id} ({contract_id}): customer {customer_id}'s share is "
                    f"on {len(ids)} live invoices: {', '.join(sorted(ids))} (R13)"
                )
        if any(len(shares) > 1 for shares in invoices.values()):
            found.append(f"{kind.value} {item_id} ({contract_id}) is twice on one invoice (R13)")
        stored = (part.transactions if kind is SourceType.TRANSACTION else part.milestones).get(
            item_id
        )
        if stored is None:
            found.append(f"{kind.value} {item_id} ({contract_id}) is invoiced but not stored")
            continue
        total = sum((a for shares in invoices.values() for a in shares), Decimal(0))
        again = sum((s.amount for s in open_shares.get((kind, item_id), ())), Decimal(0))
        if total + again != Decimal(stored["Amount"]):
            found.append(
                f"{kind.value} {item_id} ({contract_id}): live shares {total} and shares to "
                f"invoice again {again} differ from its amount {stored['Amount']} (R11, R13)"
            )
    for line in contract.lines:
        if (
            line.not_to_exceed is not None
            and nte_used.get(line.line_id, Decimal(0)) > line.not_to_exceed
        ):
            found.append(
                f"line {line.line_id} of {contract_id}: live invoices total "
                f"{nte_used[line.line_id]}, past its not-to-exceed {line.not_to_exceed} (R14)"
            )
    return found, numbers


def health(store: Store) -> bool:
    """Storage reachable (H2)?"""
    try:
        store.get(store.globals, COUNTER_PK, COUNTER_RK)
        return True
    except AzureError:
        return False


def health_report(store: Store) -> dict[str, Any]:
    """H2's answer: storage reachable, and what needs someone (R19, S5a) while it is.

    Missed and incomplete run dates and unfinished imports do not make the app unhealthy (it
    still works: 200), but they are listed until someone fixes them."""
    if not health(store):
        return {"status": "unavailable", "storage": False}
    try:
        ledger = store.ledger()
        imports = store.unfinished_imports()
    except AzureError:
        return {"status": "unavailable", "storage": False}
    missed = sorted(d.isoformat() for d, e in ledger.items() if e.get("State") == catchup.MISSED)
    incomplete = sorted(
        d.isoformat()
        for d, e in ledger.items()
        if e.get("State") not in (catchup.MISSED, catchup.COMPLETED)
    )
    attention = bool(missed or incomplete or imports)
    return {
        "status": "attention" if attention else "ok",
        "storage": True,
        "missed_dates": missed,
        "incomplete_dates": incomplete,
        "unfinished_imports": sorted(imports),
    }


# =================================================================================================
# Command line (SPEC C): invoicing.cli calls these
# =================================================================================================

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_LEASE_HELD, EXIT_AUDIT = 0, 1, 2, 3, 4


def _cli(fn: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return fn(*args, **kwargs)
        except LeaseHeld as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LEASE_HELD
        except StorageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except ServiceRequestError as exc:
            print(
                f"error: cannot reach the storage account: {str(exc).splitlines()[0]}",
                file=sys.stderr,
            )
            return EXIT_ERROR
        except AzureError as exc:
            print(
                f"error: storage: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                file=sys.stderr,
            )
            return EXIT_ERROR

    return wrapper


def _progress(label: str) -> Progress | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{label}: {done}/{total} contract(s)", end=end, file=sys.stderr, flush=True)

    return show


@_cli
def cli_import(data: bytes, settings: Settings) -> int:
    result = import_upload(data, settings)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.text())
    return EXIT_OK


@_cli
def cli_run(args: Any, settings: Settings, span: tuple[date, date] | None) -> int:
    store = open_store(settings)
    if span is not None and getattr(args, "date", None):
        summary = run_daily(store, settings, today=span[0], progress=_progress("run"))
    else:
        summary = run_daily(store, settings, span=span, progress=_progress("run"))
    print(summary.text())
    return EXIT_OK


@_cli
def cli_export(args: Any, settings: Settings, start: date | None, end: date | None) -> int:
    from invoicing.cli import write_output
    from invoicing.workbook.writer import invoice_workbook_bytes

    store = open_store(settings)
    invoices, entries = list_invoices(
        store, start, end, getattr(args, "status", None), getattr(args, "contract", None)
    )
    write_output(args.output, invoice_workbook_bytes(invoices, entries))
    print(f"{len(invoices)} invoice(s) and {len(entries)} run log row(s) written to {args.output}")
    return EXIT_OK


def _lifecycle(
    args: Any, settings: Settings, action: Callable[[Store, Settings, str], Invoice], verb: str
) -> int:
    store = open_store(settings)
    failed = 0
    for invoice_id in args.ids:
        try:
            invoice = action(store, settings, invoice_id)
        except (NotFound, WrongState) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        number = f" as {invoice.invoice_number}" if invoice.invoice_number else ""
        print(f"{invoice.invoice_id} {verb}{number}")
    return EXIT_ERROR if failed else EXIT_OK


@_cli
def cli_confirm(args: Any, settings: Settings) -> int:
    return _lifecycle(args, settings, confirm, "confirmed")


@_cli
def cli_cancel(args: Any, settings: Settings) -> int:
    return _lifecycle(args, settings, cancel, "cancelled")


@_cli
def cli_ledger(args: Any, settings: Settings) -> int:
    """S6: the run ledger, newest first, one line per run date."""
    entries = ledger_entries(open_store(settings))
    if not entries:
        print("no run yet")
    for e in entries:
        amounts = ", ".join(f"{cur} {amt}" for cur, amt in sorted(e["amounts"].items()))
        print(
            f"{e['date']}  {e['state']:<9}  contracts {e['contracts'] or 0:>6}  "
            f"invoices {e['invoices'] or 0:>6}  held {e['held'] or 0:>4}  "
            f"skipped {e['skipped_lines'] or 0:>5}  {amounts}"
        )
    return EXIT_OK


@_cli
def cli_audit(args: Any, settings: Settings) -> int:
    store = open_store(settings)
    violations = audit(store, settings)
    for violation in violations:
        print(violation)
    if violations:
        print(f"audit found {len(violations)} violation(s)", file=sys.stderr)
        return EXIT_AUDIT
    print("audit passed")
    return EXIT_OK
