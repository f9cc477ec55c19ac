"""Import (S5, S5a): validate a workbook like preview does, then upsert it under the lease."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from azure.data.tables import TableTransactionError

from invoicing.errors import InputRejected, Problem
from invoicing.model import Contract, Party, Portfolio, SourceType
from invoicing.services.common import DEFAULT_WORKERS, leased, now_text, open_store, parallel
from invoicing.settings import Settings
from invoicing.shares import ContractState, item_entries, share_records, state_from_invoices
from invoicing.storage import codec, due, rows, snapshot
from invoicing.storage.errors import StateChanged
from invoicing.storage.keys import describe_key, encode_key
from invoicing.storage.ops import create_op, merge_if_op, merge_op, replace_if_op
from invoicing.storage.store import (
    Op,
    Partition,
    Store,
    changed_meanwhile,
    delete_op,
    upsert_op,
)

SHEETS = (
    "Contracts",
    "Customers",
    "ContractLines",
    "InvoiceSchedule",
    "Milestones",
    "Transactions",
)


@dataclass
class ImportResult:
    """Counts per sheet: created / updated / unchanged / removed (removed: configuration rows of an
    imported contract that the upload no longer has; items are never removed)."""

    sheets: dict[str, dict[str, int]]
    contracts: int
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"sheets": self.sheets, "contracts": self.contracts, "warnings": list(self.warnings)}


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
    with leased(store, settings, "import"):
        registry_rows = store.registry()
        registry = {r["ContractId"]: int(r.get("Order") or 0) for r in registry_rows}
        unfinished = {r["ContractId"] for r in registry_rows if r.get("Importing")}
        parts = parallel(
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
        indexed = {r["ContractId"] for r in registry_rows if rows.registry_indexed(r)}
        # every stored transaction is in the transaction index unless some contract was
        # imported before it existed (or its import is unfinished): then scan, as before
        scan = len(indexed) < len(registry_rows)
        if registry_rows:  # an empty registry: no contract was ever written, nothing can move
            problems.extend(
                _moved_transactions(store, portfolio, parts, locations, scan=scan, workers=workers)
            )
        index_ops, stale_index, due_states = _due_index(portfolio, parts, indexed)
        index_ops += _transaction_index(portfolio, parts, indexed)
        stored_seller = store.seller() if portfolio.seller is not None else None
        if problems:
            raise InputRejected(problems, title="The upload changes invoiced items")

        def write(entry: tuple[Partition, list[Op], list[dict[str, Any]] | None]) -> None:
            part, ops, config = entry
            if config is not None:  # last: the configuration lands after the items it bills
                ops = [*ops, *(upsert_op(e) for e in config)]
            if not ops:
                return
            # S8 (``storage.snapshot``): the contract's state row is fenced (or made stale) on
            # the ETag read first; then the work table's copies, before the main rows (a crash
            # in between leaves main rows that differ, so importing again writes both); then
            # the state row is touched again (a queue worker that read it meanwhile fails its
            # commit), or a brand-new contract gets its empty state
            fence, fresh = _state_fence(part, config is not None, started)
            try:
                store.transact(store.table, fence, "import-fence")
            except TableTransactionError as exc:
                if changed_meanwhile(exc):
                    raise StateChanged(
                        part.pk, then="import the workbook again", what="checked for import"
                    ) from exc
                raise
            work = [op for op in ops if op[0] == "upsert" and _work_row(op[1]["RowKey"])]
            store.submit(store.work, work, "import-work")
            store.submit(store.table, ops, "import")
            if fresh:
                state = snapshot.state_entity(part.pk, ContractState())
                store.transact(store.table, [create_op(state)], "import-state")
            else:
                touch = snapshot.touch_entity(part.pk, now_text())
                store.transact(store.table, [merge_op(touch)], "import-touch")

        # S5a: every contract this upload writes is marked Importing before its first write and
        # unmarked after the last, so a run never invoices a half-updated contract (it reports it)
        # and a crash in between is named by audit until the upload is imported again.
        touched = [
            (contract, order_of[contract.contract_id])
            for contract, (_, ops, config) in zip(portfolio.contracts, writes, strict=True)
            if ops or config is not None or contract.contract_id in unfinished
            or contract.contract_id in due_states
        ]
        started = now_text()
        store.submit(
            store.globals,
            [
                upsert_op(rows.registry_entity(c.contract_id, o, importing=started))
                for c, o in touched
            ],
            "import-begin",
        )
        parallel(write, writes, workers, store)
        # S8: the due-date index of what was written, before the contracts are unmarked
        store.submit(store.globals, index_ops, "due-index", workers=workers)
        for pk, rk in stale_index:
            store.delete_if_present(store.globals, pk, rk, "due-index-stale")
        # each contract's record of what it put in the index comes after the index itself:
        # an import that dies before it leaves the old record, so the next one cleans again
        store.submit(store.table, list(due_states.values()), "due-state", workers=workers)
        store.submit(
            store.globals,
            [upsert_op(rows.registry_entity(c.contract_id, o, indexed=True)) for c, o in touched],
            "import-end",
        )
        if portfolio.seller is not None:  # the latest upload with a Seller sheet wins (E1)
            if stored_seller != portfolio.seller:
                seller = rows.seller_entity(portfolio.seller)
                store.submit(store.globals, [upsert_op(seller)], "seller")
            counts["Seller"] = Counter(created=0, updated=0, unchanged=0, removed=0)
            counts["Seller"][_seller_change(stored_seller, portfolio.seller)] += 1
    return ImportResult(
        {sheet: dict(c) for sheet, c in counts.items()}, len(portfolio.contracts), tuple(warnings)
    )


def _due_index(
    portfolio: Portfolio,
    parts: Sequence[Partition],
    indexed: set[str],
) -> tuple[list[Op], list[tuple[str, str]], dict[str, Op]]:
    """The due-date index rows (``storage.due``) of every contract of the upload whose index
    changes or is not there yet: their globals upserts and stale keys, and per such contract
    its ``N:due`` row (written after the index rows; the contract counts as written, so S5a
    covers it).

    A contract is due on its lines' schedules (this upload's configuration) and on the dates of
    all its milestones, stored and uploaded (items are never deleted), and on the dates of its
    uncommitted (Pending) invoice rows, which a run must still clean."""
    rows_by_key: dict[tuple[str, str], dict[str, Any]] = {}  # pattern rows are shared
    stale: list[tuple[str, str]] = []
    states: dict[str, Op] = {}
    for contract, part in zip(portfolio.contracts, parts, strict=True):
        milestones = {m.milestone_id: m for m in _stored_milestones(part)}
        milestones.update((m.milestone_id, m) for m in contract.milestones)
        merged = Contract(
            contract.contract_id,
            contract.name,
            contract.currency,
            contract.customers,
            contract.lines,
            tuple(milestones.values()),
        )
        new = due.contract_index(merged, part.pending_dates())
        old = due.state_from(part.due_state)
        if old == new.state_doc() and contract.contract_id in indexed:
            continue
        for e in due.index_entities(contract.contract_id, new):
            rows_by_key[(e["PartitionKey"], e["RowKey"])] = e
        stale.extend(due.stale_keys(contract.contract_id, old, new))
        states[contract.contract_id] = upsert_op(due.state_entity(part.pk, new))
    return [upsert_op(e) for e in rows_by_key.values()], stale, states


def _state_fence(part: Partition, config_changed: bool, stamp: str) -> tuple[list[Op], bool]:
    """The first operation of an import's writes to a contract's partition, on ``N:state``
    (``storage.snapshot``), and whether the contract is brand new (it then gets an empty state
    after all its rows).

    A changed configuration makes the state stale (its not-to-exceed sums cover only the lines
    that had a limit); otherwise the row is touched on the ETag read, so that a queue worker
    that loaded the contract before fails its commit, and an import whose contract was invoiced
    since it was read fails instead of changing what was just invoiced (S9)."""
    row = part.state_row
    if row is None:
        new = part.config is None and not (part.transactions or part.milestones or part.headers)
        return ([] if new else [create_op(snapshot.stale_entity(part.pk, "imported"))]), new
    if config_changed:
        stale = snapshot.stale_entity(part.pk, "configuration imported")
        return [replace_if_op(stale, row["_etag"])], False
    return [merge_if_op(snapshot.touch_entity(part.pk, stamp), row["_etag"])], False


def _work_row(row_key: str) -> bool:
    """Rows the work table copies: items and the configuration (``storage.snapshot``)."""
    return snapshot.is_open_item_key(row_key) or row_key[:1] == codec.CONFIG


def _transaction_index(
    portfolio: Portfolio, parts: Sequence[Partition], indexed: set[str]
) -> list[Op]:
    """Transaction index rows for the transactions new to their contract, and for every stored
    transaction of a contract not indexed yet (so that once every contract is, the moved-
    transaction check needs no scan)."""
    ops: list[Op] = []
    for contract, part in zip(portfolio.contracts, parts, strict=True):
        cid = contract.contract_id
        ids = {
            t.transaction_id
            for t in contract.transactions
            if t.transaction_id not in part.transactions
        }
        if cid not in indexed:
            ids.update(e["Id"] for e in part.transactions.values())
        ops.extend(upsert_op(rows.txn_index_entity(t, cid)) for t in sorted(ids))
    return ops


def _stored_milestones(part: Partition) -> list[Any]:
    found = []
    for e in part.milestones.values():
        try:
            found.append(codec.milestone_from(e))
        except (ValueError, KeyError, TypeError):  # damaged: the upload's own rows still count
            continue
    return found


def _seller_change(stored: Party | None, uploaded: Party) -> str:
    if stored is None:
        return "created"
    return "unchanged" if stored == uploaded else "updated"


def _moved_transactions(
    store: Store,
    portfolio: Portfolio,
    parts: Sequence[Partition],
    locations: Mapping[tuple[str, str, str], tuple[str, int]],
    *,
    scan: bool = True,
    workers: int = DEFAULT_WORKERS,
) -> list[Problem]:
    """W9 across uploads: a TransactionId is unique in the whole store, not only in one workbook.

    Items are never deleted, so a transaction moved to another contract would exist twice and be
    invoiced twice (R13). Only ids new to their contract need looking up: in the transaction
    index (``rows.txn_index_entity``, maintained by import), by point reads; or, when ``scan``
    (some contract predates the index), by one keys-only scan of the stored transactions.
    """
    new_ids: dict[str, tuple[str, str]] = {}  # row key -> (contract id, transaction id)
    for contract, part in zip(portfolio.contracts, parts, strict=True):
        for t in contract.transactions:
            if t.transaction_id not in part.transactions:
                new_ids[codec.txn_key(t.transaction_id)] = (contract.contract_id, t.transaction_id)
    if not new_ids:
        return []
    owners: dict[str, str] = {}
    if scan:
        for pk, row_key in store.transaction_keys():
            wanted = new_ids.get(row_key)
            if wanted is not None and pk != encode_key(wanted[0]):
                owners[row_key] = describe_key(pk)
    else:
        found = store.transaction_owners((t for _, t in new_ids.values()), workers)
        for key, (contract_id, transaction_id) in new_ids.items():
            owner = found.get(transaction_id)
            if owner is not None and owner != contract_id:
                owners[key] = owner
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
    try:
        old = part.contract()
    except (ValueError, KeyError, TypeError):  # a damaged stored configuration: the upload
        old = None  # replaces it whole (audit and the runs name the damage until then)
    old_views = _config_views(old)
    new_views = _config_views(contract)
    for sheet, o, n in zip(SHEETS[:4], old_views, new_views, strict=True):
        _count(counts[sheet], o, n)
    live, closed = _fixed_items(part)
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
    used = state_from_invoices(contract, part.live_invoices()).nte_used
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
                written_off = closed.get((kind, item_id))
                if holders or written_off:
                    sheet, row = locations.get(
                        (contract.contract_id, kind.value, item_id), (sheet_name, 0)
                    )
                    if holders:
                        why = (
                            f"{kind.value} {item_id} is on invoice {' and '.join(holders)}; "
                            "cancel the draft first (or credit the invoice)"
                        )
                    else:
                        why = (
                            f"{kind.value} {item_id} was written off "
                            f"({' and '.join(written_off or [])}); it cannot change any more"
                        )
                    problems.append(Problem(sheet, f"A{row}" if row else "", why))
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


def _fixed_items(
    part: Partition,
) -> tuple[dict[tuple[SourceType, str], list[str]], dict[tuple[SourceType, str], list[str]]]:
    """Items an upload may not change: those with a share on a live invoice (net of credit
    notes: a credited share is back in the backlog) -> the invoices holding it, and those with a
    share written off -> the documents that closed it (R13, R21, R22)."""
    docs = part.committed_invoices()
    entries = item_entries(docs)
    holders = part.live_items()
    live: dict[tuple[SourceType, str], list[str]] = {}
    closed: dict[tuple[SourceType, str], list[str]] = {}
    notes = {inv.invoice_id for inv in docs if inv.is_credit_note}
    for key, item in entries.items():
        records = share_records(item)
        if any(r.state == "live" for r in records.values()):
            live[key] = [i for i in holders.get(key, []) if i not in notes] or holders.get(key, [])
        elif any(r.state == "closed" for r in records.values()):
            closed[key] = sorted(holders.get(key, [])) or ["a cancelled draft"]
    return live, closed


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
