"""Audit (S7): the store's invariants, one small function each, problems returned as data.

``STORE_CHECKS`` look at the store as a whole; ``CONTRACT_CHECKS`` at one contract's partition
(read once per contract, checked, then dropped, so the audit's memory follows one contract).
Every check returns sentences; an empty list from all of them means the audit passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from invoicing import catchup
from invoicing.model import (
    BillingMethod,
    Contract,
    ContractLine,
    DetailStatus,
    Invoice,
    SourceType,
    Status,
)
from invoicing.services.audit_due import due_index_agrees
from invoicing.services.audit_state import open_work_agrees
from invoicing.services.common import DEFAULT_WORKERS, parallel
from invoicing.services.lifecycle import CREDIT_NOTES, INVOICES, settle_pending_number
from invoicing.settings import Settings
from invoicing.shares import item_amounts, item_entries, share_records, state_from_invoices
from invoicing.storage import codec, rows, work
from invoicing.storage.keys import describe_key, encode_key
from invoicing.storage.store import Partition, Store
from invoicing.tax import invoice_tax

ZERO = Decimal(0)


@dataclass
class ContractFacts:
    """One contract's partition as the checks need it."""

    contract_id: str
    part: Partition
    contract: Contract
    index: Mapping[str, str]  # encoded InvoiceId -> ContractId (the whole invoice index)
    note: str  # appended to "half-done" findings while a run holds the lease
    invoices: dict[str, Invoice] = field(default_factory=dict)  # committed, by id


def audit(
    store: Store, settings: Settings | None = None, *, workers: int = DEFAULT_WORKERS
) -> list[str]:
    """Every violated invariant as a sentence; an empty list means the audit passed."""
    settings = settings or Settings()
    settle_pending_number(store, settings, INVOICES)
    settle_pending_number(store, settings, CREDIT_NOTES)
    running = store.lease_state() == "leased"
    note = " (a run holds the lease now: it may still be working)" if running else ""
    violations = [v for check in STORE_CHECKS for v in check(store, note)]
    index = store.invoice_index()

    def one(contract_id: str) -> tuple[list[str], list[tuple[bool, int, str]]]:
        try:
            facts = _facts(store, contract_id, index, note)
        except (ValueError, KeyError, TypeError) as exc:  # damaged stored data: say so
            return [
                f"contract {contract_id}: its stored data cannot be read "
                f"({type(exc).__name__}: {str(exc)[:200]}); import its workbook again"
            ], []
        if isinstance(facts, str):
            return [facts], []
        found = [v for check in CONTRACT_CHECKS for v in check(facts)]
        found += open_work_agrees(
            store, contract_id, facts.part, facts.contract, facts.invoices.values()
        )
        return found, _numbers(facts)

    results = parallel(one, [cid for cid, _ in store.contracts()], workers, store)
    numbers: list[tuple[bool, int, str]] = []
    for found, seqs in results:
        violations.extend(found)
        numbers.extend(seqs)
    invoices = [(seq, i) for note, seq, i in numbers if not note]
    notes = [(seq, i) for note, seq, i in numbers if note]
    violations.extend(
        _numbers_gap_free(invoices, rows.counter_last(store.counter_row()), "invoice", "R16")
    )
    notes_last = rows.counter_last(store.counter_row(rows.CREDIT_COUNTER_RK))
    violations.extend(_numbers_gap_free(notes, notes_last, "credit note", "R21"))
    return violations


def _facts(
    store: Store, contract_id: str, index: Mapping[str, str], note: str
) -> ContractFacts | str:
    part = store.load(contract_id)
    contract = part.contract()
    if contract is None:
        return f"contract {contract_id} is registered but has no configuration (interrupted import)"
    facts = ContractFacts(contract_id, part, contract, index, note)
    facts.invoices = {inv.invoice_id: inv for inv in part.committed_invoices()}
    return facts


# ---- the store as a whole ----------------------------------------------------------------------


def ledger_dates_finished(store: Store, note: str) -> list[str]:
    """S6, R19, S5a: no run date started and never completed, incomplete, or Missed."""
    found = []
    for d, e in sorted(store.ledger().items()):
        state = rows.ledger_state(e)
        if state == catchup.MISSED:
            found.append(
                f"run date {d} was missed: older than the catch-up window and never run; "
                f"run it with run --from {d} --to {d} (R19)"
            )
        elif state == catchup.INCOMPLETE:
            blocked = rows.ledger_blocked(e)
            if blocked:
                found.append(
                    f"run date {d} is incomplete: contracts {', '.join(blocked)} were not "
                    "invoiced (their import never finished); the next run redoes it (S5a)"
                )
            for contract_id, reason in rows.ledger_failed(e).items():
                found.append(
                    f"run date {d} is incomplete: contract {contract_id} failed ({reason}); "
                    "the next run redoes it"
                )
        elif state != catchup.COMPLETED and work.ledger_batch(e):
            batch = work.ledger_batch(e) or ""
            waiting = work.queued(store, batch)
            found.append(
                f"run date {d} was dispatched on the work queue ({e.get('Started')}, batch "
                f"{batch}) and is not completed: {len(waiting)} contract(s) not committed yet"
                + (f" ({', '.join(sorted(waiting)[:10])})" if waiting else "")
                + "; workers (invoice_contracts, `worker`) finish it, or the next run (S9)"
            )
        elif state != catchup.COMPLETED:
            found.append(f"run date {d} was started ({e.get('Started')}) but never completed{note}")
    return found


def imports_finished(store: Store, note: str) -> list[str]:
    """S5a: no contract left marked Importing."""
    return [
        f"contract {contract_id}: an import started at {since} never finished; runs do not "
        "invoice it until its workbook is imported again (S5a)"
        for contract_id, since in sorted(store.unfinished_imports().items())
    ]


def transactions_in_one_contract(store: Store, note: str) -> list[str]:
    """R13 across partitions: one TransactionId stored under two contracts could bill twice."""
    owners: dict[str, list[str]] = {}
    for pk, row_key in store.transaction_keys():
        owners.setdefault(row_key, []).append(pk)
    return [
        f"transaction {describe_key(key[2:])} is stored under {len(pks)} contracts "
        f"({', '.join(describe_key(p) for p in pks)}): it could be invoiced twice (R13)"
        for key, pks in owners.items()
        if len(pks) > 1
    ]


def tables_of_the_layout(store: Store, note: str) -> list[str]:
    """No rows outside the store's tables (``storage.shards``): a version from before shards,
    run against a store of several tables, writes to one-table names that nothing here reads,
    so what it imported would never be invoiced and what it invoiced could be invoiced again."""
    return [
        f"table {name} holds rows, but this store keeps its contracts in "
        f"{store.table.shards} tables: a version from before table shards wrote them (a rolling "
        "upgrade or a rollback), and nothing reads them; stop that version, import its uploads "
        "again here, settle by hand any invoice it drafted there (this store does not know it), "
        "then delete that table"
        for name in store.stray_tables()
    ]


STORE_CHECKS: tuple[Callable[[Store, str], list[str]], ...] = (
    tables_of_the_layout,
    ledger_dates_finished,
    imports_finished,
    transactions_in_one_contract,
    due_index_agrees,  # S8: the due-date index against the stored configurations
)


def _numbers_gap_free(
    numbers: list[tuple[int, str]], counter_last: int, what: str, rule: str
) -> list[str]:
    """R16, R21: a series' numbered documents carry 1..N, each once, and its counter is at N."""
    found = []
    seen: dict[int, str] = {}
    for seq, invoice_id in sorted(numbers):
        if seq in seen:
            found.append(f"{what} number {seq} is on both {seen[seq]} and {invoice_id} ({rule})")
        seen[seq] = invoice_id
    missing = sorted(set(range(1, len(seen) + 1)) - set(seen))
    if missing or (seen and max(seen) != len(seen)):
        found.append(
            f"{what} numbers are not gap-free: {len(seen)} numbered, "
            f"numbers missing: {missing[:10]}, highest {max(seen, default=0)} ({rule})"
        )
    if counter_last != len(seen):
        found.append(
            f"the {what} number counter is at {counter_last} but {len(seen)} number(s) "
            f"are on {what}s ({rule})"
        )
    return found


# ---- one contract ------------------------------------------------------------------------------


def _where(facts: ContractFacts, invoice_id: str) -> str:
    return f"invoice {invoice_id} ({facts.contract_id})"


def no_pending_invoice(facts: ContractFacts) -> list[str]:
    """R17: no run left a (contract, date) half-written."""
    found = []
    for invoice_id, header in facts.part.headers.items():
        if not codec.is_pending(header):
            continue
        if codec.is_credit_note(header):
            found.append(
                f"credit note {invoice_id} ({facts.contract_id}) is not numbered yet: its credit "
                f"of {header.get('CreditedInvoiceId')} was interrupted; credit that invoice "
                "again to finish it (R21)"
            )
        else:
            found.append(
                f"{_where(facts, invoice_id)} is Pending: the run of "
                f"{header.get('InvoiceDate')} is half-done{facts.note}"
            )
    return found


def invoices_committed_and_indexed(facts: ContractFacts) -> list[str]:
    """Every committed invoice has its date's commit marker and its index entry."""
    found = []
    for invoice_id, inv in facts.invoices.items():
        if not inv.is_credit_note and inv.invoice_date not in facts.part.markers:
            found.append(
                f"{_where(facts, invoice_id)} is {inv.status.value} but its run date has no "
                "commit marker"
            )
        if facts.index.get(encode_key(invoice_id)) != facts.contract_id:
            found.append(f"{_where(facts, invoice_id)} is missing from the invoice index")
    return found


def invoice_sums(facts: ContractFacts) -> list[str]:
    """R12: invoice = Σ lines, line = Σ details, and the stored counts match the rows."""
    found = []
    for invoice_id, inv in facts.invoices.items():
        where = _where(facts, invoice_id)
        header = facts.part.headers[invoice_id]
        if inv.amount != sum((line.amount for line in inv.lines), ZERO):
            found.append(f"{where}: amount {inv.amount} is not the sum of its lines (R12)")
        if codec.plain_int(header.get("LineCount")) != len(inv.lines):
            found.append(
                f"{where}: {len(inv.lines)} line row(s), header says {header.get('LineCount')}"
            )
        line_rows = sorted(
            facts.part.lines.get(invoice_id, ()), key=lambda e: int(e["LineNumber"])
        )
        for line, row in zip(inv.lines, line_rows, strict=False):
            counted = [
                d.amount
                for d in line.details
                if inv.is_credit_note or d.status is DetailStatus.INVOICED
            ]  # a removed or written-off detail of an invoice is kept but not billed (R22)
            if line.amount != sum(counted, ZERO):
                found.append(
                    f"{where} line {line.line_number}: amount {line.amount} is not the sum "
                    "of its details (R12)"
                )
            if codec.plain_int(row.get("DetailCount")) != len(line.details):
                found.append(
                    f"{where} line {line.line_number}: {len(line.details)} detail row(s), "
                    f"line says {row.get('DetailCount')}"
                )
    return found


def tax_sums(facts: ContractFacts) -> list[str]:
    """E2: the header's TaxAmount is its lines' tax, per (category, percent) group rounded once,
    and GrossAmount is Amount plus TaxAmount (a header stored before E2 carries neither)."""
    found = []
    for invoice_id, inv in facts.invoices.items():
        header = facts.part.headers[invoice_id]
        if header.get("TaxAmount") is None and header.get("GrossAmount") is None:
            continue
        tax = invoice_tax(inv)
        stored = (codec.undec(header.get("TaxAmount")), codec.undec(header.get("GrossAmount")))
        if stored != (tax.tax, tax.gross):
            found.append(
                f"{_where(facts, invoice_id)}: tax {stored[0]} and gross {stored[1]} stored, "
                f"its lines give {tax.tax} and {tax.gross} (E2)"
            )
    return found


def numbers_only_on_confirmed(facts: ContractFacts) -> list[str]:
    """R16: a confirmed invoice has a number; nothing else has one."""
    found = []
    for invoice_id, inv in facts.invoices.items():
        header = facts.part.headers[invoice_id]
        if inv.status is Status.CONFIRMED:
            if codec.header_seq(header) is None or not header.get("Number"):
                found.append(
                    f"{_where(facts, invoice_id)} is Confirmed without an invoice number (R16)"
                )
        elif header.get("Number") or header.get("Seq") is not None:
            found.append(
                f"{_where(facts, invoice_id)} is {inv.status.value} but has invoice number "
                f"{header.get('Number')} (R16)"
            )
    return found


def shares_invoiced_once(facts: ContractFacts) -> list[str]:
    """R11, R13, R21, R22: each customer's share of an item is on at most one live invoice (net
    of credit notes), never credited more often than invoiced, and an item's shares - live,
    written off, or waiting to go out again - add up to its amount."""
    found = []
    cid = facts.contract_id
    entries = item_entries(facts.invoices.values())
    amounts = item_amounts(facts.contract, entries.keys())
    for (kind, item_id), item in sorted(entries.items()):
        what = f"{kind.value} {item_id} ({cid})"
        stored = amounts.get((kind, item_id))
        if stored is None:
            found.append(f"{what} is invoiced but not stored")
            continue
        records = share_records(item)
        for customer_id, record in sorted(records.items()):
            if record.live > 1:
                found.append(
                    f"{what}: customer {customer_id}'s share is on {record.live} live invoices "
                    "(R13)"
                )
            if record.live < 0:
                found.append(
                    f"{what}: customer {customer_id}'s share is credited more often than it "
                    "was invoiced (R21)"
                )
        total = sum((r.share.amount for r in records.values()), ZERO)
        back_whole = all(r.state == "open" for r in records.values())
        # every share open and the item changed since: it goes out whole, split afresh
        if total != stored and not back_whole:
            found.append(
                f"{what}: its shares (live, written off or to invoice again) add up to "
                f"{total}, not its amount {stored} (R11, R13)"
            )
    for invoice_id, inv in facts.invoices.items():
        if inv.status is Status.CANCELLED or inv.is_credit_note:
            continue
        ids: dict[tuple[SourceType, str], int] = {}
        for line in inv.lines:
            for d in line.details:
                ids[(d.source_type, d.source_id)] = ids.get((d.source_type, d.source_id), 0) + 1
        for (kind, item_id), count in ids.items():
            if count > 1:
                found.append(f"{kind.value} {item_id} ({cid}) is twice on {invoice_id} (R13)")
    return found


def not_to_exceed_kept(facts: ContractFacts) -> list[str]:
    """R14: live invoices never total more than a line's not-to-exceed."""
    used: dict[str, Decimal] = {}
    for inv in facts.invoices.values():
        if inv.status is Status.CANCELLED:
            continue
        for line in inv.lines:
            used[line.contract_line_id] = used.get(line.contract_line_id, ZERO) + line.amount
    return [
        f"line {line.line_id} of {facts.contract_id}: live invoices total "
        f"{used[line.line_id]}, past its not-to-exceed {line.not_to_exceed} (R14)"
        for line in facts.contract.lines
        if line.not_to_exceed is not None and used.get(line.line_id, ZERO) > line.not_to_exceed
    ]




def _numbers(facts: ContractFacts) -> list[tuple[bool, int, str]]:
    """(is a credit note, number, id) of every numbered document."""
    numbers = []
    for invoice_id, inv in facts.invoices.items():
        seq = codec.header_seq(facts.part.headers[invoice_id])
        if inv.status is Status.CONFIRMED and seq is not None:
            numbers.append((inv.is_credit_note, seq, invoice_id))
    return numbers


def credits_finished(facts: ContractFacts) -> list[str]:
    """R21: every credit an invoice records has its Confirmed, numbered credit note."""
    found = []
    for invoice_id, inv in facts.invoices.items():
        for note_id, number in inv.credit_notes:
            note = facts.invoices.get(note_id)
            if number is None or note is None or note.status is not Status.CONFIRMED:
                found.append(
                    f"{_where(facts, invoice_id)}: its credit {note_id} was started but never "
                    "finished; credit the invoice again to finish it (R21)"
                )
            elif note.credited_invoice_id != invoice_id:
                found.append(f"{_where(facts, note_id)} does not name {invoice_id} (R21)")
    return found


def open_shares_can_go_out(facts: ContractFacts) -> list[str]:
    """R15, R21, R22: a share back in the backlog (cancelled, removed, credited) goes out at its
    line's next due run; one whose line has no due date left would wait for ever, unbilled."""
    state = state_from_invoices(facts.contract, facts.invoices.values())
    if not state.open_shares:
        return []
    lines = {line.line_id: line for line in facts.contract.lines}
    line_of = {("Transaction", t.transaction_id): t.line_id for t in facts.contract.transactions}
    line_of.update({("Milestone", m.milestone_id): m.line_id for m in facts.contract.milestones})
    amounts = item_amounts(facts.contract, state.open_shares.keys())
    ran_to = max(facts.part.markers, default=None)
    found = []
    for (kind, item_id), shares in sorted(state.open_shares.items()):
        if amounts.get((kind, item_id)) == ZERO:
            continue  # now an item of no amount: non-chargeable, never invoiced (R11)
        line_id = line_of.get((kind.value, item_id))
        line = lines.get(line_id or "")
        last = _last_due(facts.contract, line) if line is not None else date.min
        if last is None or ran_to is None or last > ran_to:
            continue  # a due date is still to come
        customers = ", ".join(s.customer_id for s in shares)
        where = f"line {line_id} has no due date after {last}" if line else "its line is gone"
        found.append(
            f"{kind.value} {item_id} ({facts.contract_id}): the share of {customers} waits to be "
            f"invoiced again, but {where}; add a run date or milestone date to bill it (R15)"
        )
    return found


def _last_due(contract: Contract, line: ContractLine) -> date | None:
    """The line's last due date; None when it has no end (an open-ended schedule)."""
    if line.billing_method is BillingMethod.FIXED_PRICE:
        days = [m.date for m in contract.milestones if m.line_id == line.line_id]
        return max(days, default=date.min)
    schedule = line.schedule
    if schedule is None:
        return date.min
    rows = getattr(schedule, "rows", None)
    if rows is not None:
        return max((row.run_date for row in rows), default=date.min)
    return getattr(schedule, "last", None)


CONTRACT_CHECKS: tuple[Callable[[ContractFacts], list[str]], ...] = (
    no_pending_invoice,
    invoices_committed_and_indexed,
    invoice_sums,
    tax_sums,
    numbers_only_on_confirmed,
    shares_invoiced_once,
    not_to_exceed_kept,
    credits_finished,
    open_shares_can_go_out,
)
