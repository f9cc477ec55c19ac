"""Issue 9, acceptance 2, and issue 12, acceptance 3: a model-based property over real Azurite
(R7-R17, R21-R23, S5-S7).

A seeded random walk over import, run, confirm, cancel (of any one customer's draft: a split
contract has several customers' drafts per run date), re-import of a mutated workbook, and the
corrections: adjust a draft (remove details or write them off, R22), credit a confirmed invoice
in full or in part, with or without write-off (R21), and decide in the exported invoice workbook
(R23: Confirm / Cancel / Credit, Remove / WriteOff / Credit / CreditWriteOff, uploaded twice, or
with bad decisions that reject the whole upload). The test keeps its own model of the world - what
was imported, each item's shares as first invoiced, which shares are on which live invoice, which
are written off, which details were removed, written off or credited by which credit note - and
predicts every run from the SPEC alone: which lines are due with which cut-off (R4, R5, R8), which
items they take (R7, R9), how each is split (R11), which shares go out again after a cancel, a
removal or a credit and for how much (R13, R15, R21, R22), what a not-to-exceed holds back (R14,
credits freeing room), the invoice ids (R16) and the RunLog rows (X4). After every step:

* ``services.audit`` is clean (S7);
* every invoice is Σ of its lines and every line Σ of its invoiced details (R12, R22); every
  invoice is its draft as generated but for its status, number, credit notes and the details an
  adjustment removed or wrote off (R15, R22); every credit note is the model's (R21);
* net of credit notes, no share is on two live invoices and none is credited twice; every
  invoice less its credit notes is Σ of its live (not credited) shares, never negative (R21);
* the live shares in the store are exactly the model's: Σ live shares ≤ the item's amount, each
  live share equals that customer's share as first invoiced (or as split afresh after a full
  cancel and an amount change), not-to-exceed lines stay under their limit (R14);
* statuses and both number series are the model's (R15, R16, R21); a rejected import or a
  rejected decision upload changes nothing (S5, R23), and so does a decision upload repeated.

At the end one more range (every line is due again after the last cancel) must leave every ready,
nonzero item of a billed class, dated on or before its line's last cut-off, fully invoiced or
written off (every share of it live or closed) or held with a Held RunLog row naming it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

from invoicing import services
from invoicing.errors import BadRequest, InputRejected
from invoicing.model import DetailStatus, DocumentType, Invoice, Outcome, Status
from invoicing.storage.errors import WrongState
from invoicing.workbook.writer import invoice_workbook_bytes
from tests.support.workbooks import HEADERS, Book, xlsx

TXN, MS = "Transaction", "Milestone"
TM, FP = "Time and material", "Fixed price"
CLASSES = ("Time", "Expense", "Material", "Fee")
FIRST_RUN = date(2020, 10, 1)
WALK_END = date(2020, 11, 18)  # the walk runs dates up to here ...
END = date(2020, 11, 30)  # ... and the final range up to here: every line is due in it
TERMS = 30
D = Decimal

Cust = tuple[str, Decimal, bool]  # customer id, SplitPercent, rounding customer
Key = tuple[str, str, str]  # contract id, source type, source id
Shares = dict[str, tuple[Decimal, Decimal]]  # customer -> (SplitPercent, amount)


@dataclass
class Line:
    line_id: str
    method: str
    classes: tuple[str, ...] = CLASSES
    nte: Decimal | None = None
    freq: str | None = None  # Daily, Weekly (run_day a weekday), Semimonthly ("15, Last")
    run_day: str | None = None
    rows: dict[date, date | None] = field(default_factory=dict)  # an explicit schedule
    override: list[Cust] | None = None  # R2: customer rows naming this line


@dataclass
class Contract:
    cid: str
    currency: str
    places: int
    customers: list[Cust]
    lines: list[Line]
    presets: list[list[Cust]]  # the contract-level splits an upload may switch to
    override_presets: dict[str, list[list[Cust]]] = field(default_factory=dict)


@dataclass
class Item:
    kind: str
    item_id: str
    cid: str
    line_id: str
    cls: str | None
    day: date
    amount: Decimal
    ready: bool
    quantity: Decimal | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class Live:
    """A share on a live invoice."""

    invoice_id: str
    day: date
    percent: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Generation:
    """An item's shares as fixed at its (latest full) invoicing (R13)."""

    amount: Decimal
    shares: tuple[tuple[str, Decimal, Decimal], ...]  # (customer, percent, amount), nonzero only

    def as_dict(self) -> Shares:
        return {c: (p, a) for c, p, a in self.shares}


@dataclass(frozen=True)
class Note:
    """A credit note as made (R21): the invoice it credits, the details it takes, closed or not."""

    invoice_id: str
    items: tuple[str, ...]
    write_off: bool
    day: date


# ---- the SPEC, written independently of the product ---------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def invoice_id(contract_id: str, customer_id: str, day: date) -> str:
    """R16."""
    digest = hashlib.sha256(
        "\u001f".join((contract_id, customer_id, day.isoformat())).encode()
    ).hexdigest()
    return f"INV-{day:%Y%m%d}-{digest[:10]}"


def split(amount: Decimal, customers: list[Cust], places: int) -> Generation:
    """R11: every share but the rounding customer's rounded half-up, the rounding customer (the
    flagged one, else the first) taking the remainder; zero shares make no detail."""
    quantum = D(1).scaleb(-places)
    rounding = next((i for i, c in enumerate(customers) if c[2]), 0)
    amounts = [
        D(0) if i == rounding else (amount * pct / 100).quantize(quantum, ROUND_HALF_UP)
        for i, (_, pct, _) in enumerate(customers)
    ]
    # README: a customer is never billed a negative amount; a surplus of round-ups is taken back
    # one minor unit at a time from the shares rounded up the most (ties: the last listed first)
    surplus = sum(amounts, D(0)) - amount
    exact = [amount * pct / 100 for _, pct, _ in customers]
    order = sorted(
        (i for i in range(len(customers)) if i != rounding),
        key=lambda i: (amounts[i] - exact[i], i),
        reverse=True,
    )
    while surplus > 0:
        for i in order:
            if surplus > 0 and amounts[i] > 0:
                amounts[i] -= quantum
                surplus -= quantum
    amounts[rounding] = amount - sum(amounts, D(0))
    return Generation(
        amount,
        tuple((c[0], c[1], a) for c, a in zip(customers, amounts, strict=True) if a != 0),
    )


def last_day_of_month(day: date) -> bool:
    return (day + timedelta(days=1)).month != day.month


class World:
    """The model: the workbook as last imported, and what the store must hold."""

    def __init__(self, contracts: list[Contract], items: list[Item]):
        self.contracts = {c.cid: c for c in contracts}
        self.items: dict[Key, Item] = {(i.cid, i.kind, i.item_id): i for i in items}
        self.gen: dict[Key, Generation] = {}
        self.live: dict[Key, dict[str, Live]] = {}
        self.status: dict[str, Status] = {}
        self.invoices_seen: dict[str, tuple[str, date, str]] = {}
        self.snapshots: dict[str, object] = {}  # each invoice as generated
        self.numbers: dict[str, str] = {}
        # (run date, amount) of every cancelled share: amount changes that probe R13 use them
        self.cancelled_amounts: dict[Key, list[tuple[date, Decimal]]] = {}
        self.next_date = FIRST_RUN
        self.last_held: set[tuple[Key, date]] = set()
        self.serial = 0
        # the corrections (R21, R22): written-off shares (customer -> amount), closed for good
        self.closed: dict[Key, dict[str, Decimal]] = {}
        # invoice -> SourceId -> (status, note) of a detail an adjustment removed or wrote off
        self.marks: dict[str, dict[str, tuple[DetailStatus, str]]] = {}
        self.notes: dict[str, Note] = {}  # credit note id -> what it credits
        self.notes_of: dict[str, list[str]] = {}  # invoice -> its credit notes, in order
        self.credited: dict[str, dict[str, str]] = {}  # invoice -> SourceId -> credit note
        self.series = {"invoice": 0, "credit": 0}

    # -- schedules and eligibility (R4, R5, R7-R9) --

    def line(self, cid: str, line_id: str) -> Line:
        return next(line for line in self.contracts[cid].lines if line.line_id == line_id)

    def cutoff(self, cid: str, line: Line, day: date) -> date | None:
        """The line's cut-off on ``day`` if it is due then (FP: the run date itself), else None."""
        if line.method == FP:
            due = any(
                i.kind == MS and i.cid == cid and i.line_id == line.line_id and i.day == day
                for i in self.items.values()
            )
            return day if due else None
        if line.rows:
            if day not in line.rows:
                return None
            return line.rows[day] or day - timedelta(days=1)
        if day < FIRST_RUN:
            return None
        due = (
            line.freq == "Daily"
            or (line.freq == "Weekly" and WEEKDAYS[day.weekday()] == line.run_day)
            or (line.freq == "Semimonthly" and (day.day == 15 or last_day_of_month(day)))
        )
        return day - timedelta(days=1) if due else None

    def eligible(self, item: Item) -> bool:
        line = self.line(item.cid, item.line_id)
        if not item.ready or item.amount == 0:
            return False
        if item.kind == MS:
            return line.method == FP
        return line.method == TM and item.cls in line.classes

    def customers_of(self, cid: str, line: Line) -> list[Cust]:
        return line.override or self.contracts[cid].customers

    def open_shares(
        self, key: Key, live: dict[Key, dict[str, Live]], gens: dict[Key, Generation]
    ) -> tuple[Generation, bool] | None:
        """The shares that go out next (R13, R15, R21, R22) and whether they are a fresh split,
        or None when every share is live or written off."""
        item = self.items[key]
        on = live.get(key, {})
        closed = self.closed.get(key, {})
        gen = gens.get(key)
        if not on and not closed and (gen is None or gen.amount != item.amount):
            # never invoiced, or every share back (cancelled, removed, credited) and the amount
            # changed since: split afresh
            line = self.line(item.cid, item.line_id)
            places = self.contracts[item.cid].places
            return split(item.amount, self.customers_of(item.cid, line), places), True
        assert gen is not None and gen.amount == item.amount, (key, gen, item)
        missing = tuple(s for s in gen.shares if s[0] not in on and s[0] not in closed)
        return (Generation(gen.amount, missing), False) if missing else None

    # -- a run, predicted (R8-R14, X4) --

    def predict(self, dates: list[date]):
        live = {k: dict(v) for k, v in self.live.items()}
        gens = dict(self.gen)
        held: set[tuple[Key, date]] = set()
        log: list[tuple[str, str, date, Outcome, int, Decimal]] = []
        for day in dates:
            for contract in self.contracts.values():
                for line in contract.lines:
                    cutoff = self.cutoff(contract.cid, line, day)
                    if cutoff is None:
                        continue
                    used = sum(
                        (
                            s.amount
                            for k, on in live.items()
                            if k[0] == contract.cid and self.items[k].line_id == line.line_id
                            for s in on.values()
                        ),
                        D(0),
                    )
                    candidates = sorted(
                        (item.day, item.kind, item.item_id)
                        for item in self.items.values()
                        if item.cid == contract.cid
                        and item.line_id == line.line_id
                        and self.eligible(item)
                        and item.day <= cutoff
                    )
                    taken, total = 0, D(0)
                    for _, kind, item_id in candidates:
                        key = (contract.cid, kind, item_id)
                        opened = self.open_shares(key, live, gens)
                        if opened is None:
                            continue
                        going, fresh = opened
                        amount = sum((a for _, _, a in going.shares), D(0))
                        if line.nte is not None and used + amount > line.nte:
                            held.add((key, day))  # R14: held whole
                            continue
                        used += amount
                        total += amount
                        taken += 1
                        if fresh:  # a fresh split: this is its generation
                            gens[key] = going
                        on = live.setdefault(key, {})
                        for customer, percent, share in going.shares:
                            on[customer] = Live(
                                invoice_id(contract.cid, customer, day), day, percent, share
                            )
                    outcome = Outcome.INVOICED if taken else Outcome.SKIPPED
                    log.append((contract.cid, line.line_id, day, outcome, taken, total))
        return live, gens, held, log

    # -- the lifecycle and the corrections, as the SPEC has them (R15, R16, R21, R22) --

    def last_due(self, cid: str, line: Line) -> date | None:
        """The line's last due date; None for a schedule without an end (R4-R6, R8)."""
        if line.method == FP:
            days = [
                i.day for i in self.items.values() if i.cid == cid and i.line_id == line.line_id
            ]
            return max(days, default=date.min)
        return max(line.rows) if line.rows else None

    def waiting(self) -> set[Key]:
        """Items with a share of their fixed generation back in the backlog (cancelled, removed,
        credited: neither live nor written off) whose line has no due date left after the last
        run: audit names them, for they would wait for ever (R15). An item corrected to zero
        after its cancel is non-chargeable: nothing of it waits (R11)."""
        last_run = self.next_date - timedelta(days=1)
        out = set()
        for key, gen in self.gen.items():
            item = self.items[key]
            on, closed = self.live.get(key, {}), self.closed.get(key, {})
            if item.amount == 0 or all(c in on or c in closed for c, _, _ in gen.shares):
                continue
            last = self.last_due(item.cid, self.line(item.cid, item.line_id))
            if last is not None and last <= last_run:
                out.add(key)
        return out

    def invoiced_details(self, iid: str) -> list[str]:
        """The SourceIds of the invoice's details still invoiced (not removed, written off)."""
        marks = self.marks.get(iid, {})
        return [
            d.source_id
            for line in self.snapshots[iid].lines
            for d in line.details
            if d.source_id not in marks
        ]

    def uncredited(self, iid: str) -> list[str]:
        credited = self.credited.get(iid, {})
        return [s for s in self.invoiced_details(iid) if s not in credited]

    def take_back(self, iid: str, source_id: str, close: bool) -> None:
        """A live share leaves the invoice: back to the backlog (R15, R21, R22) or closed."""
        inv = self.snapshots[iid]
        d = next(d for line in inv.lines for d in line.details if d.source_id == source_id)
        key = (inv.contract_id, d.source_type.value, source_id)
        on = self.live[key]
        share = on.pop(inv.customer_id)
        assert share.invoice_id == iid and share.amount == d.amount, (key, share, iid)
        if not on:
            del self.live[key]
        if close:
            self.closed.setdefault(key, {})[inv.customer_id] = share.amount
        else:
            self.cancelled_amounts.setdefault(key, []).append((share.day, share.amount))

    def confirm(self, iid: str, prefix: str) -> str:
        assert self.status[iid] is Status.DRAFT and self.invoiced_details(iid)
        self.status[iid] = Status.CONFIRMED
        self.series["invoice"] += 1
        self.numbers[iid] = f"{prefix}{self.series['invoice']:06d}"
        return self.numbers[iid]

    def cancel(self, iid: str) -> None:
        assert self.status[iid] is Status.DRAFT
        self.status[iid] = Status.CANCELLED
        for source_id in self.invoiced_details(iid):
            self.take_back(iid, source_id, close=False)

    def adjust(self, iid: str, remove: list[str], write_off: list[str], note: str) -> None:
        """R22: removed shares go back to the backlog, written-off ones are closed; an emptied
        draft is Cancelled. A detail already so stays as it is."""
        assert self.status[iid] is Status.DRAFT
        marks = self.marks.setdefault(iid, {})
        for source_ids, status, close in (
            (remove, DetailStatus.REMOVED, False),
            (write_off, DetailStatus.WRITTEN_OFF, True),
        ):
            for source_id in source_ids:
                if source_id in marks:
                    assert marks[source_id][0] is status
                    continue
                self.take_back(iid, source_id, close)
                marks[source_id] = (status, note if close else "")
        if not self.invoiced_details(iid):
            self.status[iid] = Status.CANCELLED

    def credit(
        self, iid: str, items: list[str], write_off: bool, note_id: str, day: date, prefix: str
    ) -> str:
        """R21: a Confirmed credit note of its own series; the shares back or closed."""
        assert self.status[iid] is Status.CONFIRMED and items
        assert note_id not in self.status, note_id
        credited = self.credited.setdefault(iid, {})
        for source_id in items:
            assert source_id in self.uncredited(iid), (iid, source_id)
            self.take_back(iid, source_id, close=write_off)
            credited[source_id] = note_id
        self.notes[note_id] = Note(iid, tuple(items), write_off, day)
        self.notes_of.setdefault(iid, []).append(note_id)
        self.status[note_id] = Status.CONFIRMED
        self.series["credit"] += 1
        self.numbers[note_id] = f"{prefix}{self.series['credit']:06d}"
        return self.numbers[note_id]

    def expected_invoice(self, iid: str) -> Invoice:
        """The invoice as generated, with its status, number, credit notes and adjustments."""
        snap = self.snapshots[iid]
        marks = self.marks.get(iid, {})
        lines = []
        for line in snap.lines:
            details = tuple(
                d._replace(status=marks[d.source_id][0], note=marks[d.source_id][1])
                if d.source_id in marks
                else d
                for d in line.details
            )
            amount = sum((d.amount for d in details if d.status is DetailStatus.INVOICED), D(0))
            lines.append(line._replace(amount=amount, details=details))
        return snap._replace(
            lines=tuple(lines),
            amount=sum((line.amount for line in lines), D(0)),
            status=self.status[iid],
            invoice_number=self.numbers.get(iid),
            credit_notes=tuple((n, self.numbers[n]) for n in self.notes_of.get(iid, ())),
        )

    def expected_note(self, note_id: str) -> Invoice:
        """R21: the credited details with negated amounts, Credited (or WrittenOff), on a
        Confirmed credit note naming the original; line numbers and due date left out."""
        note = self.notes[note_id]
        original = self.snapshots[note.invoice_id]
        status = DetailStatus.WRITTEN_OFF if note.write_off else DetailStatus.CREDITED
        lines = []
        for line in original.lines:
            details = tuple(
                d._replace(amount=-d.amount, status=status, note="")
                for d in line.details
                if d.source_id in note.items
            )
            if details:
                amount = sum((d.amount for d in details), D(0))
                lines.append(line._replace(line_number=0, amount=amount, details=details))
        return original._replace(
            invoice_id=note_id,
            invoice_date=note.day,
            due_date=note.day,
            amount=sum((line.amount for line in lines), D(0)),
            lines=tuple(lines),
            status=Status.CONFIRMED,
            invoice_number=self.numbers[note_id],
            document_type=DocumentType.CREDIT_NOTE,
            credited_invoice_id=note.invoice_id,
            credited_number=self.numbers[note.invoice_id],
            credit_notes=(),
        )


# ---- reading the store --------------------------------------------------------------------------


def observe(store):
    invoices, log = services.list_invoices(store)
    return {inv.invoice_id: inv for inv in invoices}, log


def credits_in_store(invoices) -> dict[str, dict[str, str]]:
    """Invoice -> SourceId -> the credit note that credited it (R21: at most one)."""
    credited: dict[str, dict[str, str]] = {}
    for inv in invoices.values():
        if not inv.is_credit_note:
            continue
        assert inv.status is Status.CONFIRMED, inv
        original = invoices[inv.credited_invoice_id]
        assert original.status is Status.CONFIRMED and not original.is_credit_note, original
        assert inv.credited_number == original.invoice_number, inv
        on_original = {d.source_id: d for line in original.lines for d in line.details}
        taken = credited.setdefault(original.invoice_id, {})
        for line in inv.lines:
            for d in line.details:
                assert d.source_id not in taken, (
                    f"R21: {d.source_id} of {original.invoice_id} is credited by both "
                    f"{taken[d.source_id]} and {inv.invoice_id}"
                )
                taken[d.source_id] = inv.invoice_id
                was = on_original[d.source_id]
                assert was.status is DetailStatus.INVOICED and d.amount == -was.amount, (d, was)
    return credited


def live_in_store(invoices) -> dict[Key, dict[str, Live]]:
    """Every share on a live invoice, not removed, written off or credited (R13, R21, R22)."""
    live: dict[Key, dict[str, Live]] = {}
    credited = credits_in_store(invoices)
    for inv in invoices.values():
        if inv.status is Status.CANCELLED or inv.is_credit_note:
            continue
        for line in inv.lines:
            for d in line.details:
                if d.status is not DetailStatus.INVOICED:
                    continue
                if d.source_id in credited.get(inv.invoice_id, {}):
                    continue
                key = (inv.contract_id, d.source_type.value, d.source_id)
                on = live.setdefault(key, {})
                assert inv.customer_id not in on, (
                    f"R13: {key} of customer {inv.customer_id} is on two live invoices: "
                    f"{on[inv.customer_id].invoice_id} and {inv.invoice_id}"
                )
                on[inv.customer_id] = Live(
                    inv.invoice_id, inv.invoice_date, d.split_percent, d.amount
                )
    return live


def held_in(log, dates: set[date]) -> set[tuple[Key, date]]:
    out = set()
    for e in log:
        if e.outcome is Outcome.HELD and e.run_date in dates:
            assert "not-to-exceed" in e.note, e  # held with its reason (R14, X4)
            kind, rest = e.note.split(" ", 1)
            item_id = rest.split(" (", 1)[0]
            out.add(((e.contract_id, kind.capitalize(), item_id), e.run_date))
    return out


# ---- the steps ----------------------------------------------------------------------------------


class Driver:
    def __init__(self, world: World, store, settings, trace: list[str]):
        self.world, self.store, self.settings, self.trace = world, store, settings, trace

    def import_(self, world: World | None = None, *, rejected: Key | None = None) -> None:
        """Import ``world``'s workbook; ``rejected``: it changes that item on a live invoice (or
        written off), so S5 refuses the whole upload, naming the item, and nothing changes."""
        proposed = world or self.world
        data = xlsx(render(proposed))
        if rejected is not None:
            before = observe(self.store)
            with pytest.raises(InputRejected) as refusal:
                services.import_workbook(self.store, data, self.settings)
            why = "is on invoice" if rejected in self.world.live else "was written off"
            assert f"{rejected[1]} {rejected[2]} {why}" in str(refusal.value)
            assert observe(self.store) == before
        else:
            services.import_workbook(self.store, data, self.settings)
            self.world = proposed
        self.check()

    def run(self, last: date) -> None:
        w = self.world
        dates = [w.next_date + timedelta(days=i) for i in range((last - w.next_date).days + 1)]
        expected_live, gens, expected_held, expected_log = w.predict(dates)
        known = set(w.status)
        services.run_daily(self.store, self.settings, span=(dates[0], dates[-1]))
        invoices, log = observe(self.store)
        in_range = set(dates)
        for inv in invoices.values():
            if inv.invoice_id in known:
                continue
            # R10, R12, R16: a new draft of a run date of this range, under its deterministic id
            assert inv.status is Status.DRAFT and inv.invoice_date in in_range, inv
            assert inv.invoice_id == invoice_id(inv.contract_id, inv.customer_id, inv.invoice_date)
            assert inv.customer_name == f"Customer {inv.customer_id}"
            assert inv.due_date == inv.invoice_date + timedelta(days=TERMS)
            assert inv.currency == w.contracts[inv.contract_id].currency
            order = [line.line_id for line in w.contracts[inv.contract_id].lines]
            ids = [line.contract_line_id for line in inv.lines]
            assert ids == sorted(ids, key=order.index) and len(set(ids)) == len(ids), ids
            assert [line.line_number for line in inv.lines] == list(range(1, len(ids) + 1))
            for line in inv.lines:
                model_line = w.line(inv.contract_id, line.contract_line_id)
                cutoff = w.cutoff(inv.contract_id, model_line, inv.invoice_date)
                assert cutoff is not None, f"{line.contract_line_id} is not due {inv.invoice_date}"
                assert line.cutoff == (None if model_line.method == FP else cutoff)
            w.status[inv.invoice_id] = Status.DRAFT
            w.snapshots[inv.invoice_id] = inv
            w.invoices_seen[inv.invoice_id] = (inv.contract_id, inv.invoice_date, inv.customer_id)
        actual_live = live_in_store(invoices)
        assert actual_live == expected_live, diff(expected_live, actual_live)
        actual_held = held_in(log, in_range)
        assert actual_held == expected_held
        actual_log = sorted(
            (e.contract_id, e.line_id, e.run_date, e.outcome.value, e.items, e.amount)
            for e in log
            if e.run_date in in_range and e.outcome is not Outcome.HELD
        )
        assert actual_log == sorted((*e[:3], e[3].value, *e[4:]) for e in expected_log)
        w.live, w.gen, w.last_held = expected_live, gens, expected_held
        w.next_date = dates[-1] + timedelta(days=1)
        self.check(invoices)

    def confirm(self, iid: str) -> None:
        inv = services.confirm(self.store, self.settings, iid)
        assert inv.invoice_number == self.world.confirm(iid, self.settings.invoice_number_prefix)
        self.check()

    def cancel(self, iid: str) -> None:
        inv = services.cancel(self.store, self.settings, iid)
        assert inv.status is Status.CANCELLED
        self.world.cancel(iid)
        self.check()

    def refused(self, iid: str, action, error: type[Exception] = WrongState, **kwargs) -> None:
        """Confirming a cancelled invoice, cancelling a confirmed one, adjusting anything but a
        draft, crediting anything but a confirmed invoice or a share twice: refused, no change."""
        before = observe(self.store)
        with pytest.raises(error):
            action(self.store, self.settings, iid, **kwargs)
        assert observe(self.store) == before
        self.check()

    def adjust(self, iid: str, remove: list[str], write_off: list[str], note: str) -> None:
        inv = services.adjust(
            self.store, self.settings, iid, remove=remove, write_off=write_off, note=note
        )
        self.world.adjust(iid, remove, write_off, note)
        assert inv == self.world.expected_invoice(iid)
        self.check()

    def credit(self, iid: str, items: list[str] | None, write_off: bool, day: date) -> None:
        w = self.world
        taken = w.uncredited(iid) if items is None else items
        note = services.credit(self.store, self.settings, iid, items, write_off, today=day)
        prefix = self.settings.credit_note_prefix
        assert note.invoice_number == w.credit(iid, taken, write_off, note.invoice_id, day, prefix)
        self.check()

    def decide(self, rnd: random.Random, bad: bool) -> None:
        """R23: decisions typed into the exported workbook and uploaded twice (the second time
        changes nothing); with ``bad``, among them decisions the store or the invoice's own
        decision contradicts: the upload is rejected naming each at its cell, nothing applied."""
        w, trace = self.world, self.trace
        sheet = DecisionSheet(*services.list_invoices(self.store))
        drafts = sorted(i for i, s in w.status.items() if s is Status.DRAFT)
        invoices = sorted(i for i in w.status if i not in w.notes)
        confirmed = [i for i in invoices if w.status[i] is Status.CONFIRMED]
        cancelled = [i for i in invoices if w.status[i] is Status.CANCELLED]
        for iid in rnd.sample(drafts, min(len(drafts), rnd.randint(1, 5))):
            details = w.invoiced_details(iid)
            roll = rnd.random()
            if roll < 0.4:
                sheet.invoice(iid, "Confirm")
                if len(details) > 1 and rnd.random() < 0.5:  # adjusted first, never emptied
                    for source_id in rnd.sample(details, rnd.randint(1, len(details) - 1)):
                        sheet.detail(iid, source_id, rnd.choice(["Remove", "WriteOff"]))
            elif roll < 0.6:
                sheet.invoice(iid, "Cancel")
                continue
            else:  # adjusted only, and maybe emptied (so Cancelled)
                for source_id in rnd.sample(details, rnd.randint(1, len(details))):
                    sheet.detail(iid, source_id, rnd.choice(["Remove", "WriteOff"]))
            marks = sorted(w.marks.get(iid, {}).items())
            if marks and rnd.random() < 0.5:  # a detail already so: already done
                source_id, (status, _) = rnd.choice(marks)
                if sheet.has_detail(iid, source_id):
                    again = "Remove" if status is DetailStatus.REMOVED else "WriteOff"
                    sheet.detail(iid, source_id, again)
        for iid in rnd.sample(confirmed, min(len(confirmed), rnd.randint(0, 4))):
            open_ = w.uncredited(iid)
            roll = rnd.random()
            if open_ and roll < 0.35:
                sheet.invoice(iid, "Credit")
                continue
            if open_ and roll < 0.8:
                for source_id in rnd.sample(open_, rnd.randint(1, len(open_))):
                    sheet.detail(iid, source_id, rnd.choice(["Credit", "CreditWriteOff"]))
                done = sorted(w.credited.get(iid, {}))
                if done and rnd.random() < 0.5:  # credited before: already done
                    sheet.detail(iid, rnd.choice(done), rnd.choice(["Credit", "CreditWriteOff"]))
            else:  # already confirmed, or already credited in full
                sheet.invoice(iid, "Confirm" if open_ or rnd.random() < 0.5 else "Credit")
        if cancelled and rnd.random() < 0.3:
            sheet.invoice(rnd.choice(cancelled), "Cancel")  # already cancelled
        if bad:
            for _ in range(rnd.randint(1, 3)):
                sheet.contradict(w, rnd)
            bad = bool(sheet.bad)
        if not sheet.count():
            return
        trace.append("decide" + (" (refused: bad decisions)" if bad else ", twice"))
        trace.extend(f"  {line}" for line in sheet.describe())
        upload = sheet.upload()
        if bad:
            before = observe(self.store)
            with pytest.raises(InputRejected) as refusal:
                services.decide_upload(upload, self.settings)
            found = {(p.sheet, p.cell) for p in refusal.value.problems}
            assert found == sheet.bad, (found, sheet.bad, str(refusal.value))
            assert observe(self.store) == before
            self.check()
            return
        days = {datetime.now(UTC).date()}
        result = services.decide_upload(upload, self.settings)
        days.add(datetime.now(UTC).date())
        self.check_decisions(sheet, result, days)
        self.check()
        before = observe(self.store)
        again = services.decide_upload(upload, self.settings)
        assert not +again.done and not again.numbers, again
        assert len(again.already) == sheet.count(), again.already
        assert observe(self.store) == before
        self.check()

    def check_decisions(self, sheet: DecisionSheet, result, days: set[date]) -> None:
        """Apply the sheet's decisions to the model as decisions.py orders them - invoice by
        invoice (those with a decision of their own in Invoices row order, then the others in
        InvoiceLineDetails row order), each invoice's adjustments, then its credits, then its own
        decision - and compare what was done, what was already so, and the new numbers."""
        w = self.world
        numbers = iter(result.numbers)
        done: Counter[str] = Counter()
        already = 0
        invoice_prefix = self.settings.invoice_number_prefix
        credit_prefix = self.settings.credit_note_prefix

        def credit(iid: str, items: list[str], write_off: bool) -> None:
            entry = next(numbers)
            assert set(entry) == {"CreditNoteId", "Number"}, entry
            note_id = entry["CreditNoteId"]
            day = min(days)
            if len(days) > 1:  # made at midnight
                day = services.get_invoice(self.store, note_id).invoice_date
            assert entry["Number"] == w.credit(iid, items, write_off, note_id, day, credit_prefix)
            done["credit_notes"] += 1

        for iid in sheet.plans():
            details = sheet.details_of(iid)
            marks = w.marks.get(iid, {})
            wanted = {s: ADJUSTED[d] for s, d in details if d in ADJUSTED}
            todo = {s: st for s, st in wanted.items() if marks.get(s, (None, ""))[0] is not st}
            already += len(wanted) - len(todo)
            if todo:
                remove = [s for s, st in todo.items() if st is DetailStatus.REMOVED]
                write_off = [s for s, st in todo.items() if st is DetailStatus.WRITTEN_OFF]
                w.adjust(iid, remove, write_off, "")
                done["removed"] += len(remove)
                done["written_off"] += len(write_off)
            groups: dict[bool, list[str]] = {}
            for source_id, decision in details:
                if decision in ("Credit", "CreditWriteOff"):
                    groups.setdefault(decision == "CreditWriteOff", []).append(source_id)
            for write_off_, items in groups.items():
                new = [s for s in items if s not in w.credited.get(iid, {})]
                already += len(items) - len(new)
                if new:
                    credit(iid, new, write_off_)
            decision = sheet.on_invoice.get(iid)
            if decision == "Confirm":
                if w.status[iid] is Status.CONFIRMED:
                    already += 1
                else:
                    number = w.confirm(iid, invoice_prefix)
                    assert next(numbers) == {"InvoiceId": iid, "Number": number}
                    done["confirmed"] += 1
            elif decision == "Cancel":
                if w.status[iid] is Status.CANCELLED:
                    already += 1
                else:
                    w.cancel(iid)
                    done["cancelled"] += 1
            elif decision == "Credit":
                open_ = w.uncredited(iid)
                if open_:
                    credit(iid, open_, False)
                else:
                    already += 1
        assert next(numbers, None) is None, result.numbers
        assert +result.done == +done, (result.done, done)
        assert len(result.already) == already, result.already

    def check(self, invoices=None) -> None:
        w = self.world
        found = services.audit(self.store, self.settings)
        waits = {m.groups() for m in map(WAITS.match, found) if m}
        assert [f for f in found if not WAITS.match(f)] == []
        assert {(cid, kind, item_id) for kind, item_id, cid in waits} == w.waiting(), found
        if invoices is None:
            invoices, _ = observe(self.store)
        assert set(invoices) == set(w.status)
        credited = credits_in_store(invoices)
        assert credited == {i: c for i, c in w.credited.items() if c}, (credited, w.credited)
        for iid, inv in invoices.items():
            assert inv.status is w.status[iid], iid
            assert inv.invoice_number == w.numbers.get(iid), iid
            if iid in w.notes:  # R21: the model's credit note, negative, Σ lines = Σ details
                expected = w.expected_note(iid)
                lines = tuple(line._replace(line_number=0) for line in inv.lines)
                assert inv._replace(due_date=expected.due_date, lines=lines) == expected, inv
                assert inv.amount < 0 and inv.amount == sum((x.amount for x in inv.lines), D(0))
                for line in inv.lines:
                    total = sum((d.amount for d in line.details), D(0))
                    assert line.details and line.amount == total
                    assert all(d.amount < 0 for d in line.details), line
                continue
            # an invoice never changes after its run, but for its status and number (R15), its
            # credit notes (R21) and, while a draft, its adjustments (R22)
            assert inv == w.expected_invoice(iid), (inv, w.expected_invoice(iid))
            # R12, R22: invoice = Σ lines = Σ invoiced details; no empty line, no zero detail
            assert inv.amount == sum((line.amount for line in inv.lines), D(0)), inv
            assert inv.lines
            for line in inv.lines:
                invoiced = [d.amount for d in line.details if d.status is DetailStatus.INVOICED]
                assert line.details and line.amount == sum(invoiced, D(0))
                for d in line.details:
                    assert d.amount > 0, d
                    key = (inv.contract_id, d.source_type.value, d.source_id)
                    assert key in w.items, f"{key} is invoiced but was never imported"
                    assert w.items[key].line_id == line.contract_line_id
            if inv.status is Status.CANCELLED:
                continue
            # R21: the invoice less its credit notes is Σ of its live shares, never negative
            net = inv.amount + sum((invoices[n].amount for n, _ in inv.credit_notes), D(0))
            on_notes = credited.get(iid, {})
            live_total = sum(
                (
                    d.amount
                    for line in inv.lines
                    for d in line.details
                    if d.status is DetailStatus.INVOICED and d.source_id not in on_notes
                ),
                D(0),
            )
            assert net == live_total >= 0, (iid, net, live_total)
        live = live_in_store(invoices)
        assert live == w.live, diff(w.live, live)
        used: dict[tuple[str, str], Decimal] = {}
        for key in set(live) | set(w.closed):
            item = w.items[key]
            on = live.get(key, {})
            closed = w.closed.get(key, {})
            assert not set(on) & set(closed), (key, on, closed)
            total = sum((s.amount for s in on.values()), D(0))
            assert total + sum(closed.values(), D(0)) <= item.amount, (key, on, closed, item)
            gen = w.gen[key].as_dict()  # R13: each live share is the customer's fixed share
            for customer, share in on.items():
                assert (share.percent, share.amount) == gen[customer], (key, customer, share)
            for customer, amount_ in closed.items():
                assert amount_ == gen[customer][1], (key, customer, amount_)
            used[(item.cid, item.line_id)] = used.get((item.cid, item.line_id), D(0)) + total
        for (cid, line_id), total in used.items():
            limit = w.line(cid, line_id).nte
            assert limit is None or total <= limit, (cid, line_id, total, limit)

    def final_check(self, final_dates: set[date]) -> None:
        """Every ready share is on exactly one live invoice, written off, or held with a reason."""
        w = self.world
        every_date = [FIRST_RUN + timedelta(days=i) for i in range((END - FIRST_RUN).days + 1)]
        last_cutoff: dict[tuple[str, str], date] = {}
        for contract in w.contracts.values():
            for line in contract.lines:
                due = [d for d in every_date if w.cutoff(contract.cid, line, d) is not None]
                assert due and due[-1] in final_dates, f"{line.line_id} is not due at the end"
                cutoff = w.cutoff(contract.cid, line, due[-1])
                assert cutoff is not None
                last_cutoff[(contract.cid, line.line_id)] = cutoff
        for key, item in w.items.items():
            if not w.eligible(item) or item.day > last_cutoff[(item.cid, item.line_id)]:
                continue
            line = w.line(item.cid, item.line_id)
            on = w.live.get(key, {})
            closed = w.closed.get(key, {})
            total = sum((s.amount for s in on.values()), sum(closed.values(), D(0)))
            if total == item.amount:
                assert set(on) | set(closed) == {c for c, _, _ in w.gen[key].shares}
                continue
            assert line.nte is not None and any((key, d) in w.last_held for d in final_dates), (
                f"{key} ({item.amount}) is neither fully invoiced or written off ({total}) nor held"
            )


ADJUSTED = {"Remove": DetailStatus.REMOVED, "WriteOff": DetailStatus.WRITTEN_OFF}
# what audit says of a share back in the backlog whose line is never due again (R15)
WAITS = re.compile(r"(Transaction|Milestone) (\S+) \((\S+)\): the share of .* waits to be invoiced")


class DecisionSheet:
    """The exported invoice workbook (X1-X5) with decisions typed into its Decision columns, as an
    accountant would (a Decision header added at the end of a sheet that lacks one), and the
    cells of the decisions that must be refused."""

    def __init__(self, invoices: list[Invoice], log) -> None:
        self.book = openpyxl.load_workbook(io.BytesIO(invoice_workbook_bytes(invoices, log)))
        self.by_id = {inv.invoice_id: inv for inv in invoices}
        self.columns: dict[str, int] = {}
        rows: dict[str, dict] = {}
        for name in ("Invoices", "InvoiceLineDetails"):
            ws = self.book[name]
            header = [c.value for c in ws[1]]
            if "Decision" not in header:
                ws.cell(row=1, column=len(header) + 1, value="Decision")
                header.append("Decision")
            self.columns[name] = header.index("Decision") + 1
            at = {n: i for i, n in enumerate(header) if n}
            rows[name] = {
                (
                    row[at["InvoiceId"]].value
                    if name == "Invoices"
                    else (row[at["InvoiceId"]].value, row[at["SourceId"]].value)
                ): row[0].row
                for row in ws.iter_rows(min_row=2)
            }
        self.invoice_rows: dict[str, int] = rows["Invoices"]
        self.detail_rows: dict[tuple[str, str], int] = rows["InvoiceLineDetails"]
        self.on_invoice: dict[str, str] = {}
        self.on_detail: dict[tuple[str, str], str] = {}
        self.bad: set[tuple[str, str]] = set()
        self.kinds: list[str] = []

    def cell(self, sheet: str, row: int) -> tuple[str, str]:
        return sheet, f"{get_column_letter(self.columns[sheet])}{row}"

    def invoice(self, iid: str, decision: str) -> tuple[str, str]:
        assert iid not in self.on_invoice
        self.on_invoice[iid] = decision
        return self.cell("Invoices", self.invoice_rows[iid])

    def has_detail(self, iid: str, source_id: str) -> bool:
        return (iid, source_id) in self.detail_rows

    def detail(self, iid: str, source_id: str, decision: str) -> tuple[str, str]:
        self.on_detail[(iid, source_id)] = decision
        return self.cell("InvoiceLineDetails", self.detail_rows[(iid, source_id)])

    def count(self) -> int:
        return len(self.on_invoice) + len(self.on_detail)

    def touched(self) -> set[str]:
        return set(self.on_invoice) | {iid for iid, _ in self.on_detail}

    def plans(self) -> list[str]:
        order = sorted(self.on_invoice, key=self.invoice_rows.__getitem__)
        for iid, _ in sorted(self.on_detail, key=self.detail_rows.__getitem__):
            if iid not in order:
                order.append(iid)
        return order

    def details_of(self, iid: str) -> list[tuple[str, str]]:
        return [
            (source_id, decision)
            for (i, source_id), decision in sorted(
                self.on_detail.items(), key=lambda kv: self.detail_rows[kv[0]]
            )
            if i == iid
        ]

    def contradict(self, w: World, rnd: random.Random) -> None:
        """One decision R23 refuses, on an invoice no other decision names (R23: unknown value,
        wrong state, a detail decision contradicting its invoice's, a decision on a credit
        note)."""
        free = [i for i in sorted(w.status) if i not in self.touched()]
        by = {
            st: [i for i in free if w.status[i] is st and i not in w.notes]
            for st in (Status.DRAFT, Status.CONFIRMED, Status.CANCELLED)
        }
        drafts, confirmed, cancelled = by[Status.DRAFT], by[Status.CONFIRMED], by[Status.CANCELLED]
        notes = [i for i in free if i in w.notes]
        kinds = ["unknown"]
        kinds += ["credit-draft", "credit-draft-detail", "versus-cancel", "versus-confirm"] * (
            bool(drafts)
        )
        kinds += ["emptied-confirm"] * bool(drafts)
        kinds += ["cancel-confirmed", "adjust-confirmed"] * bool(confirmed)
        kinds += ["versus-credit"] * bool([i for i in confirmed if w.uncredited(i)])
        kinds += ["confirm-cancelled"] * bool(cancelled)
        closed = [  # a confirmed invoice's detail removed or written off while it was a draft
            (i, source_id)
            for i in confirmed
            for source_id in sorted(w.marks.get(i, {}))
            if self.has_detail(i, source_id)
        ]
        kinds += ["credit-closed-detail"] * bool(closed)
        kinds += ["note", "note-detail"] * bool(notes)
        kind = rnd.choice(kinds)
        self.kinds.append(kind)
        if kind == "unknown":
            if free:
                self.bad.add(self.invoice(rnd.choice(free), "Approve"))
        elif kind == "credit-draft":
            self.bad.add(self.invoice(rnd.choice(drafts), "Credit"))
        elif kind == "credit-draft-detail":
            iid = rnd.choice(drafts)
            self.bad.add(self.detail(iid, rnd.choice(w.invoiced_details(iid)), "Credit"))
        elif kind == "versus-cancel":
            iid = rnd.choice(drafts)
            self.invoice(iid, "Cancel")
            decision = rnd.choice(["Remove", "WriteOff"])
            self.bad.add(self.detail(iid, rnd.choice(w.invoiced_details(iid)), decision))
        elif kind == "versus-confirm":
            iid = rnd.choice(drafts)
            self.invoice(iid, "Confirm")
            decision = rnd.choice(["Credit", "CreditWriteOff"])
            self.bad.add(self.detail(iid, rnd.choice(w.invoiced_details(iid)), decision))
        elif kind == "emptied-confirm":
            iid = rnd.choice(drafts)
            self.bad.add(self.invoice(iid, "Confirm"))
            for source_id in w.invoiced_details(iid):
                self.detail(iid, source_id, rnd.choice(["Remove", "WriteOff"]))
        elif kind == "cancel-confirmed":
            self.bad.add(self.invoice(rnd.choice(confirmed), "Cancel"))
        elif kind == "adjust-confirmed":
            iid = rnd.choice(confirmed)
            decision = rnd.choice(["Remove", "WriteOff"])
            self.bad.add(self.detail(iid, rnd.choice(w.invoiced_details(iid)), decision))
        elif kind == "versus-credit":
            iid = rnd.choice([i for i in confirmed if w.uncredited(i)])
            self.invoice(iid, "Credit")
            decision = rnd.choice(["Credit", "CreditWriteOff"])
            self.bad.add(self.detail(iid, rnd.choice(w.uncredited(iid)), decision))
        elif kind == "confirm-cancelled":
            self.bad.add(self.invoice(rnd.choice(cancelled), "Confirm"))
        elif kind == "credit-closed-detail":
            iid, source_id = rnd.choice(closed)
            self.bad.add(self.detail(iid, source_id, rnd.choice(["Credit", "CreditWriteOff"])))
        elif kind == "note":
            decision = rnd.choice(["Confirm", "Cancel", "Credit"])
            self.bad.add(self.invoice(rnd.choice(notes), decision))
        else:  # a credit decision on a credit note's detail
            iid = rnd.choice(notes)
            source_id = rnd.choice(w.notes[iid].items)
            self.bad.add(self.detail(iid, source_id, rnd.choice(["Credit", "CreditWriteOff"])))

    def describe(self) -> list[str]:
        rows = [f"{iid}: {d}" for iid, d in self.on_invoice.items()]
        rows += [f"{iid} {source_id}: {d}" for (iid, source_id), d in self.on_detail.items()]
        rows += [f"bad: {kind}" for kind in self.kinds]
        return [*rows, *(f"bad at {sheet}!{cell}" for sheet, cell in sorted(self.bad))]

    def upload(self) -> bytes:
        ws, column = self.book["Invoices"], self.columns["Invoices"]
        for iid, decision in self.on_invoice.items():
            ws.cell(row=self.invoice_rows[iid], column=column, value=decision)
        ws, column = self.book["InvoiceLineDetails"], self.columns["InvoiceLineDetails"]
        for key, decision in self.on_detail.items():
            ws.cell(row=self.detail_rows[key], column=column, value=decision)
        out = io.BytesIO()
        self.book.save(out)
        return out.getvalue()


def diff(expected: dict[Key, dict[str, Live]], actual: dict[Key, dict[str, Live]]) -> str:
    rows = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            rows.append(f"{key}: expected {expected.get(key)}, store has {actual.get(key)}")
    return "\n".join(rows[:20])


# ---- workbooks ----------------------------------------------------------------------------------


def render(world: World) -> Book:
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    for c in world.contracts.values():
        book["Contracts"].append([c.cid, f"Contract {c.cid}", c.currency, TERMS])
        for cust, pct, rounding in c.customers:
            book["Customers"].append(
                [c.cid, cust, f"Customer {cust}", pct, None, "Yes" if rounding else None]
            )
        for line in c.lines:
            for cust, pct, rounding in line.override or ():
                book["Customers"].append(
                    [
                        c.cid,
                        cust,
                        f"Customer {cust}",
                        pct,
                        line.line_id,
                        "Yes" if rounding else None,
                    ]
                )
            classes = ", ".join(line.classes) if line.classes != CLASSES else None
            book["ContractLines"].append(
                [
                    c.cid,
                    line.line_id,
                    f"Line {line.line_id}",
                    line.method,
                    classes if line.method == TM else None,
                    line.nte,
                    line.freq,
                    line.run_day,
                    FIRST_RUN if line.freq else None,
                    None,
                    None,
                ]
            )
            for day, cutoff in line.rows.items():
                book["InvoiceSchedule"].append([c.cid, line.line_id, day, cutoff])
    for item in world.items.values():
        ready = "Yes" if item.ready else "No"
        if item.kind == MS:
            book["Milestones"].append(
                [
                    item.cid,
                    item.line_id,
                    item.item_id,
                    f"M {item.item_id}",
                    item.day,
                    item.amount,
                    ready,
                ]
            )
        else:
            book["Transactions"].append(
                [
                    item.item_id,
                    item.cid,
                    item.line_id,
                    item.cls,
                    item.day,
                    f"work {item.item_id}",
                    "Ana",
                    item.quantity,
                    item.unit_price,
                    None if item.quantity is not None else item.amount,
                    ready,
                ]
            )
    return book


def amount(rnd: random.Random, places: int) -> Decimal:
    unit = D(1).scaleb(-places)
    roll = rnd.random()
    if roll < 0.12:
        return unit * rnd.choice([1, 1, 2, 3, 5])  # one-cent (one-yen) items
    if roll < 0.16:
        return D(0)  # non-chargeable (R11)
    return D(rnd.randint(100, 90000 if places else 900)) * (unit if places else 1)


def portfolio(rnd: random.Random, transactions: int) -> World:
    """Three contracts: C1 (USD) split three ways with rounding, a line-level override, daily and
    weekly lines and milestones; C2 (USD) 60/40 with a not-to-exceed line and an explicit
    schedule; C3 (JPY) 50/50 with a semimonthly not-to-exceed line and milestones."""
    c1 = Contract(
        "C1",
        "USD",
        2,
        [("K1", D("33.33"), False), ("K2", D("33.33"), False), ("K3", D("33.34"), True)],
        [
            Line("L1", TM, classes=("Time", "Expense"), freq="Daily"),
            Line(
                "L2",
                TM,
                freq="Weekly",
                run_day="Monday",
                override=[("K1", D(70), False), ("K2", D(30), True)],
            ),
            Line("L3", FP),
        ],
        presets=[
            [("K1", D("33.33"), False), ("K2", D("33.33"), False), ("K3", D("33.34"), True)],
            [("K1", D(50), True), ("K2", D(25), False), ("K3", D(25), False)],
            [("K1", D("20.5"), False), ("K2", D("29.5"), True), ("K3", D(50), False)],
            [("K1", D(60), True), ("K2", D(40), False)],  # K3 dropped
            [("K1", D(25), False), ("K2", D(25), False), ("K3", D(25), False), ("K4", D(25), True)],
        ],
        override_presets={
            "L2": [
                [("K1", D(70), False), ("K2", D(30), True)],
                [("K2", D("55.55"), True), ("K3", D("44.45"), False)],
            ]
        },
    )
    c2 = Contract(
        "C2",
        "USD",
        2,
        [("K1", D(60), False), ("K2", D(40), False)],
        [
            Line("L1", TM, nte=D("1500.00"), freq="Weekly", run_day="Friday"),
            Line(
                "L2",
                TM,
                classes=("Material", "Fee"),
                rows={
                    date(2020, 10, 5): date(2020, 10, 2),
                    date(2020, 10, 20): None,
                    date(2020, 11, 9): date(2020, 11, 6),
                    date(2020, 11, 30): date(2020, 11, 27),
                },
            ),
        ],
        presets=[
            [("K1", D(60), False), ("K2", D(40), False)],
            [("K1", D("45.5"), False), ("K2", D("54.5"), True)],
        ],
    )
    c3 = Contract(
        "C3",
        "JPY",
        0,
        [("K1", D(50), False), ("K2", D(50), True)],
        [
            Line("L1", TM, nte=D(60000), freq="Semimonthly", run_day="15, Last"),
            Line("L2", FP),
        ],
        presets=[
            [("K1", D(50), False), ("K2", D(50), True)],
            [("K1", D("33.3333"), False), ("K2", D("66.6667"), True)],
        ],
    )
    items = [
        Item(MS, "M1", "C1", "L3", None, date(2020, 10, 15), D("3000.00"), True),
        Item(MS, "M2", "C1", "L3", None, date(2020, 11, 2), D("1234.56"), False),
        Item(MS, "M3", "C1", "L3", None, date(2020, 11, 30), D("0.01"), True),
        Item(MS, "M1", "C3", "L2", None, date(2020, 10, 30), D(50001), True),
        Item(MS, "M2", "C3", "L2", None, date(2020, 11, 30), D(7), False),
    ]
    world = World([c1, c2, c3], items)
    for _ in range(transactions):
        world.items.update([new_transaction(world, rnd)])
    return world


def new_transaction(world: World, rnd: random.Random) -> tuple[Key, Item]:
    world.serial += 1
    cid, line_id = rnd.choice(
        [("C1", "L1"), ("C1", "L2"), ("C2", "L1"), ("C2", "L2"), ("C3", "L1")]
    )
    contract = world.contracts[cid]
    line = world.line(cid, line_id)
    day = date(2020, 9, 25) + timedelta(days=rnd.randrange(66))
    item = Item(
        TXN,
        f"T{world.serial:03d}",
        cid,
        line_id,
        rnd.choice(line.classes),
        day,
        amount(rnd, contract.places),
        rnd.random() < 0.8,
    )
    if rnd.random() < 0.15:  # Quantity x UnitPrice, rounded half-up (W8)
        item.quantity = D(rnd.choice([3, 7]))
        item.unit_price = D(rnd.choice(["33.335", "0.005", "142.857"]))
        item.amount = (item.quantity * item.unit_price).quantize(
            D(1).scaleb(-contract.places), ROUND_HALF_UP
        )
    return (cid, TXN, item.item_id), item


def mutate(world: World, rnd: random.Random, trace: list[str]) -> World:
    """A re-upload: changes only what may change (items on no live invoice, splits, new items)."""
    new = copy.deepcopy(world)
    # S5: an item with a live share, or a share written off, cannot change; one removed from a
    # draft or credited (back in the backlog) can
    free = [k for k in sorted(new.items) if k not in new.live and k not in new.closed]
    for _ in range(rnd.randint(1, 4)):
        roll = rnd.random()
        if roll < 0.25 and free:  # R7: a not-ready item becomes ready (or, rarely, back)
            key = rnd.choice(free)
            new.items[key].ready = rnd.random() < 0.85
            trace.append(f"  {key} ready={new.items[key].ready}")
        elif roll < 0.45:  # a split change: applies to items not yet invoiced (R13)
            contract = new.contracts[rnd.choice(sorted(new.contracts))]
            if contract.override_presets and rnd.random() < 0.4:
                line_id = rnd.choice(sorted(contract.override_presets))
                line = new.line(contract.cid, line_id)
                line.override = copy.deepcopy(rnd.choice(contract.override_presets[line_id]))
                trace.append(f"  {contract.cid} {line_id} override {line.override}")
            else:
                contract.customers = copy.deepcopy(rnd.choice(contract.presets))
                trace.append(f"  {contract.cid} splits {contract.customers}")
        elif roll < 0.75 and free:  # an amount (or date) change of an item on no live invoice
            # mostly an item whose every share was cancelled, the more often the likelier
            cancelled = [k for k in free if k in new.gen]
            if cancelled and rnd.random() < 0.7:
                weights = [
                    len({day for day, _ in new.cancelled_amounts.get(k, ())}) ** 3
                    for k in cancelled
                ]
                key = rnd.choices(cancelled, weights)[0]
            else:
                key = rnd.choice(free)
            item = new.items[key]
            places = new.contracts[item.cid].places
            cancelled_shares = new.cancelled_amounts.get(key, [])
            by_day: dict[date, Decimal] = {}
            for day, share in cancelled_shares:
                by_day[day] = by_day.get(day, D(0)) + share
            # edge values for R13: what a cancelled run billed of it in part, or one share
            partial = sorted({a for a in by_day.values() if a != item.amount})
            probes = sorted({share for _, share in cancelled_shares} | set(by_day.values()))
            if partial and rnd.random() < 0.6:
                item.amount = rnd.choice(partial)
            elif probes and rnd.random() < 0.4:
                item.amount = rnd.choice(probes)
            else:
                item.amount = amount(rnd, places)
                if item.kind == MS and item.amount == 0:
                    item.amount = D(1).scaleb(-places)  # a milestone's amount is > 0 (W8)
            item.quantity = item.unit_price = None
            if item.kind == TXN and rnd.random() < 0.3:
                item.day = date(2020, 9, 25) + timedelta(days=rnd.randrange(66))
            trace.append(f"  {key} amount={item.amount} day={item.day}")
        elif roll < 0.9:
            for _ in range(rnd.randint(1, 4)):
                key, item = new_transaction(new, rnd)
                new.items[key] = item
                trace.append(f"  new {key} {item.line_id} {item.day} {item.amount} {item.ready}")
        else:  # a new milestone (its date is a run date of its FP line, R6)
            cid, line_id = rnd.choice([("C1", "L3"), ("C3", "L2")])
            new.serial += 1
            places = new.contracts[cid].places
            item = Item(
                MS,
                f"M{new.serial:03d}",
                cid,
                line_id,
                None,
                FIRST_RUN + timedelta(days=rnd.randrange(61)),
                max(amount(rnd, places), D(1).scaleb(-places)),
                rnd.random() < 0.8,
            )
            new.items[(cid, MS, item.item_id)] = item
            trace.append(f"  new {item}")
    return new


def illegal(world: World, rnd: random.Random, trace: list[str]) -> tuple[World, Key] | None:
    """An upload that also changes an item with a live share, or one written off (S5, R21, R22:
    the whole upload is refused)."""
    fixed = sorted(set(world.live) | set(world.closed))
    if not fixed:
        return None
    trace.append("import (refused: it changes an item on a live invoice or written off)")
    new = mutate(world, rnd, trace)
    key = rnd.choice(fixed)
    item = new.items[key]
    if rnd.random() < 0.7:
        item.amount += D(1)
        item.quantity = item.unit_price = None
    else:
        item.ready = False
    trace.append(f"  {key} (live or closed) amount={item.amount} ready={item.ready}")
    return new, key


# ---- the property -------------------------------------------------------------------------------


def walk(store, settings, seed: int, steps: int, transactions: int) -> None:
    rnd = random.Random(seed)
    trace: list[str] = [f"seed {seed}"]
    driver = Driver(portfolio(rnd, transactions), store, settings, trace)
    try:
        trace.append("import")
        driver.import_()
        for _ in range(steps):
            w = driver.world
            drafts = sorted(i for i, s in w.status.items() if s is Status.DRAFT)
            invoices = sorted(i for i in w.status if i not in w.notes)
            confirmed = [i for i in invoices if w.status[i] is Status.CONFIRMED]
            roll = rnd.random()
            if roll < 0.24 and w.next_date <= WALK_END:
                last = min(WALK_END, w.next_date + timedelta(days=rnd.choice([0, 1, 2, 4, 6, 9])))
                trace.append(f"run {w.next_date} .. {last}")
                driver.run(last)
            elif roll < 0.34 and drafts:
                iid = rnd.choice(drafts)
                trace.append(f"confirm {iid}")
                driver.confirm(iid)
            elif roll < 0.52 and drafts:
                iid = rnd.choice(drafts)
                group = [iid]
                roll = rnd.random()
                if roll < 0.35:  # every customer's draft of one run, one cancel at a time
                    inv = w.invoices_seen[iid]
                    group = [i for i in drafts if w.invoices_seen[i][:2] == inv[:2]]
                elif roll < 0.7:  # every draft that bills one item, mostly one re-invoiced
                    # in part (its live shares on drafts of several runs)
                    held_by = [
                        ({s.invoice_id for s in on.values()}, {s.day for s in on.values()})
                        for _, on in sorted(w.live.items())
                        if {s.invoice_id for s in on.values()} <= set(drafts)
                    ]
                    if held_by:
                        weights = [len(days) ** 3 for _, days in held_by]
                        group = sorted(rnd.choices(held_by, weights)[0][0])
                rnd.shuffle(group)
                for iid in group:
                    trace.append(f"cancel {iid}")
                    driver.cancel(iid)
            elif roll < 0.62 and drafts:  # R22: remove or write off details, maybe all
                iid = rnd.choice(drafts)
                details = w.invoiced_details(iid)
                picked = rnd.sample(details, rnd.randint(1, min(3, len(details))))
                cut = rnd.randint(0, len(picked))
                remove, write_off = sorted(picked[:cut]), sorted(picked[cut:])
                note = rnd.choice(["", "goodwill", "=1+1"])
                trace.append(f"adjust {iid} remove={remove} write_off={write_off}")
                driver.adjust(iid, remove, write_off, note)
                if w.status[iid] is Status.DRAFT and rnd.random() < 0.3:
                    trace.append(f"adjust {iid} again (changes nothing)")
                    driver.adjust(iid, remove, write_off, note)
            elif roll < 0.72 and (drafts or confirmed):  # R21: credit, confirming one first
                open_ = [i for i in confirmed if w.uncredited(i)]
                if not open_ or (drafts and rnd.random() < 0.3):
                    if not drafts:
                        continue
                    iid = rnd.choice(drafts)
                    trace.append(f"confirm {iid}")
                    driver.confirm(iid)
                    open_ = [iid]
                iid = rnd.choice(open_)
                uncredited = w.uncredited(iid)
                items = None
                if rnd.random() < 0.6:
                    items = sorted(rnd.sample(uncredited, rnd.randint(1, len(uncredited))))
                write_off = rnd.random() < 0.35
                last_run = w.next_date - timedelta(days=1)
                day = rnd.choice(
                    [w.invoices_seen[iid][1], last_run, last_run + timedelta(5), date(2021, 1, 4)]
                )
                trace.append(f"credit {iid} {items or 'all'} write_off={write_off} on {day}")
                driver.credit(iid, items, write_off, day)
                done = sorted(w.credited.get(iid, {}))
                if rnd.random() < 0.4:  # R21: a share is credited at most once
                    again = None if not w.uncredited(iid) else [rnd.choice(done)]
                    trace.append(f"credit {iid} {again or 'all'} (refused: already credited)")
                    driver.refused(
                        iid, services.credit, services.AlreadyCredited, items=again, today=day
                    )
            elif roll < 0.80 and (drafts or confirmed):  # R23
                driver.decide(rnd, bad=rnd.random() < 0.3)
            elif roll < 0.83:
                cancelled = [i for i in invoices if w.status[i] is Status.CANCELLED]
                if confirmed or w.notes:
                    iid = rnd.choice([*confirmed, *sorted(w.notes)])
                    trace.append(f"cancel {iid} (refused: confirmed)")
                    driver.refused(iid, services.cancel)
                    trace.append(f"adjust {iid} (refused: confirmed)")
                    note = w.notes.get(iid)
                    some = [rnd.choice(note.items if note else w.invoiced_details(iid))]
                    driver.refused(iid, services.adjust, remove=some)
                if cancelled:
                    iid = rnd.choice(cancelled)
                    trace.append(f"confirm {iid} (refused: cancelled)")
                    driver.refused(iid, services.confirm)
                if drafts:
                    iid = rnd.choice(drafts)
                    trace.append(f"credit {iid} (refused: a draft)")
                    driver.refused(iid, services.credit)
                if w.notes:
                    iid = rnd.choice(sorted(w.notes))
                    trace.append(f"credit {iid} (refused: a credit note)")
                    driver.refused(iid, services.credit)
                marked = [(i, m) for i in drafts for m in sorted(w.marks.get(i, {}).items())]
                if marked:  # R22: a removed detail cannot be written off, nor the other way
                    iid, (source_id, (status, _)) = rnd.choice(marked)
                    other = "write_off" if status is DetailStatus.REMOVED else "remove"
                    trace.append(f"adjust {iid} {other}={source_id} (refused: {status.value})")
                    driver.refused(iid, services.adjust, BadRequest, **{other: [source_id]})
            elif roll < 0.87:
                refused = illegal(w, rnd, trace)
                if refused is not None:
                    driver.import_(refused[0], rejected=refused[1])
            else:
                trace.append("import")
                driver.import_(mutate(w, rnd, trace))
        final = driver.world.next_date
        trace.append(f"run {final} .. {END} (final)")
        driver.run(END)
        driver.final_check({final + timedelta(days=i) for i in range((END - final).days + 1)})
    except BaseException:
        print("\n".join(trace))
        raise


# seeds 6 and 19 meet the partial-generation case of the first deterministic test below (an item
# re-invoiced in part, then cancelled whole and changed); seed 22 types a Credit on a credit
# note's detail among refused decisions, and seed 3 corrects a cancelled item to zero (each the
# case of a deterministic test at the end)
@pytest.mark.parametrize("seed", [1, 2, 3, 6, 19, 22])
def test_random_walks_keep_every_share_on_one_live_invoice_or_held(store, storage_settings, seed):
    walk(store, storage_settings, seed, steps=40, transactions=40)


# ---- deterministic cases (each a sequence the walk can produce, written out) --------------------


def small_world(amount: Decimal, customers: list[Cust]) -> World:
    contract = Contract(
        "C1", "USD", 2, customers, [Line("L1", TM, freq="Daily")], presets=[customers]
    )
    item = Item(TXN, "T1", "C1", "L1", "Time", date(2020, 9, 30), amount, True)
    return World([contract], [item])


def draft_of(driver: Driver, customer: str, day: date) -> str:
    iid = invoice_id("C1", customer, day)
    assert driver.world.status[iid] is Status.DRAFT
    return iid


def test_an_item_re_invoiced_in_part_then_cancelled_whole_and_changed_is_split_afresh(
    store, storage_settings
):
    """R13: every share of T1 cancelled, then its amount changed to what one re-invoiced share
    was: it is split afresh (2.50 / 2.50), not billed 5.00 to K2 alone."""
    driver = Driver(
        small_world(D("10.00"), [("K1", D(50), False), ("K2", D(50), False)]),
        store,
        storage_settings,
        [],
    )
    driver.import_()
    driver.run(date(2020, 10, 1))  # K1 5.00, K2 5.00
    driver.cancel(draft_of(driver, "K2", date(2020, 10, 1)))
    driver.run(date(2020, 10, 2))  # K2's 5.00 again
    driver.cancel(draft_of(driver, "K1", date(2020, 10, 1)))
    driver.cancel(draft_of(driver, "K2", date(2020, 10, 2)))
    changed = copy.deepcopy(driver.world)
    changed.items[("C1", TXN, "T1")].amount = D("5.00")
    driver.import_(changed)
    driver.run(date(2020, 10, 3))
    assert driver.world.live[("C1", TXN, "T1")] == {
        "K1": Live(invoice_id("C1", "K1", date(2020, 10, 3)), date(2020, 10, 3), D(50), D("2.50")),
        "K2": Live(invoice_id("C1", "K2", date(2020, 10, 3)), date(2020, 10, 3), D(50), D("2.50")),
    }


def test_a_cancelled_share_of_a_customer_the_splits_no_longer_list_goes_out_to_that_customer(
    store, storage_settings
):
    """R13, R15: K3's cancelled share of T1 goes out again to K3 (33.34 %, 3.34) after an upload
    dropped K3 from the splits; an item first invoiced after the upload is split 60/40."""
    three = [("K1", D("33.33"), False), ("K2", D("33.33"), False), ("K3", D("33.34"), True)]
    driver = Driver(small_world(D("10.00"), three), store, storage_settings, [])
    driver.import_()
    driver.run(date(2020, 10, 1))  # K1 3.33, K2 3.33, K3 3.34
    driver.cancel(draft_of(driver, "K3", date(2020, 10, 1)))
    changed = copy.deepcopy(driver.world)
    changed.contracts["C1"].customers = [("K1", D(60), True), ("K2", D(40), False)]
    changed.items[("C1", TXN, "T2")] = Item(
        TXN, "T2", "C1", "L1", "Time", date(2020, 10, 1), D("0.05"), True
    )
    driver.import_(changed)
    driver.run(date(2020, 10, 2))
    on = driver.world.live
    assert {c: (s.percent, s.amount) for c, s in on[("C1", TXN, "T1")].items()} == {
        "K1": (D("33.33"), D("3.33")),
        "K2": (D("33.33"), D("3.33")),
        "K3": (D("33.34"), D("3.34")),
    }
    assert {c: (s.percent, s.amount) for c, s in on[("C1", TXN, "T2")].items()} == {
        "K1": (D(60), D("0.03")),
        "K2": (D(40), D("0.02")),
    }


def test_audit_is_clean_while_an_item_changed_after_a_full_cancel_waits_for_its_next_run(
    store, storage_settings
):
    """S7, R13: T1's every share cancelled, then its amount corrected: nothing is lost (it is
    split afresh at the line's next due run), so audit passes before and after that run."""
    driver = Driver(
        small_world(D("10.00"), [("K1", D(60), False), ("K2", D(40), False)]),
        store,
        storage_settings,
        [],
    )
    driver.import_()
    driver.run(date(2020, 10, 1))  # K1 6.00, K2 4.00
    driver.cancel(draft_of(driver, "K1", date(2020, 10, 1)))
    driver.cancel(draft_of(driver, "K2", date(2020, 10, 1)))
    changed = copy.deepcopy(driver.world)
    changed.items[("C1", TXN, "T1")].amount = D("12.00")
    driver.import_(changed)  # checks: audit == []
    driver.run(date(2020, 10, 2))
    assert {c: s.amount for c, s in driver.world.live[("C1", TXN, "T1")].items()} == {
        "K1": D("7.20"),
        "K2": D("4.80"),
    }


def test_a_credit_decision_on_a_credit_notes_detail_is_refused_at_its_cell_and_nothing_applied(
    store, storage_settings
):
    """R23 (the walk's refused decisions found it at 0d5396d, fixed since): Credit typed on a
    credit note's own detail row is a decision in the wrong state. The upload is rejected naming
    that cell, with nothing applied - not K2's Confirm either, though its row comes first."""
    driver = Driver(
        small_world(D("10.00"), [("K1", D(60), False), ("K2", D(40), False)]),
        store,
        storage_settings,
        [],
    )
    driver.import_()
    driver.run(date(2020, 10, 1))  # K1 6.00, K2 4.00
    k1, k2 = (draft_of(driver, k, date(2020, 10, 1)) for k in ("K1", "K2"))
    driver.confirm(k1)
    driver.credit(k1, None, False, date(2020, 10, 2))
    (note,) = driver.world.notes
    sheet = DecisionSheet(*services.list_invoices(store))
    sheet.invoice(k2, "Confirm")
    bad = sheet.detail(note, "T1", "Credit")
    before = observe(store)
    with pytest.raises(InputRejected) as refusal:
        services.decide_upload(sheet.upload(), storage_settings)
    assert {(p.sheet, p.cell) for p in refusal.value.problems} == {bad}
    assert observe(store) == before


def test_a_credit_decision_on_a_written_off_detail_is_refused_at_its_cell_and_nothing_applied(
    store, storage_settings
):
    """R23 (fixed since 0d5396d, like the case above): Credit typed on the row of a detail written
    off while its invoice was a draft (Status WrittenOff: nothing of it is billed) is refused at
    its cell with nothing applied, like every decision the store contradicts."""
    world = small_world(D("10.00"), [("K1", D(60), False), ("K2", D(40), False)])
    world.items[("C1", TXN, "T2")] = Item(
        TXN, "T2", "C1", "L1", "Time", date(2020, 9, 30), D("5.00"), True
    )
    driver = Driver(world, store, storage_settings, [])
    driver.import_()
    driver.run(date(2020, 10, 1))  # K1 6.00 + 3.00, K2 4.00 + 2.00
    k1, k2 = (draft_of(driver, k, date(2020, 10, 1)) for k in ("K1", "K2"))
    driver.adjust(k1, [], ["T2"], "goodwill")
    driver.confirm(k1)
    sheet = DecisionSheet(*services.list_invoices(store))
    sheet.invoice(k2, "Confirm")
    bad = sheet.detail(k1, "T2", "Credit")
    before = observe(store)
    with pytest.raises(InputRejected) as refusal:
        services.decide_upload(sheet.upload(), storage_settings)
    assert {(p.sheet, p.cell) for p in refusal.value.problems} == {bad}
    assert observe(store) == before


def test_an_item_cancelled_then_corrected_to_zero_leaves_nothing_waiting_for_the_audit(
    store, storage_settings
):
    """R11, S7 (the walk found it, seed 3): T1's only draft cancelled, then its amount corrected to
    0. A zero item is non-chargeable - never invoiced, never an error - so once its line has no
    due date left nothing of it waits to be invoiced again, and audit stays clean."""
    customers: list[Cust] = [("K1", D(100), False)]
    line = Line("L1", TM, rows={date(2020, 10, 1): None, date(2020, 10, 5): None})
    contract = Contract("C1", "USD", 2, customers, [line], presets=[customers])
    item = Item(TXN, "T1", "C1", "L1", "Time", date(2020, 9, 30), D("10.00"), True)
    driver = Driver(World([contract], [item]), store, storage_settings, [])
    driver.import_()
    driver.run(date(2020, 10, 1))  # K1 10.00
    driver.cancel(draft_of(driver, "K1", date(2020, 10, 1)))
    changed = copy.deepcopy(driver.world)
    changed.items[("C1", TXN, "T1")].amount = D(0)
    driver.import_(changed)
    driver.run(date(2020, 10, 5))  # the line's last run date: nothing to invoice
    assert services.audit(store, storage_settings) == []
