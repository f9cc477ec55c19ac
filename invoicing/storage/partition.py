"""One contract's partition as read by one query, grouped by record kind (configuration, items,
invoice headers, lines and details, commit markers, RunLog parts), with what the services ask of
it: its contract, its live and committed invoices, the items on live invoices."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from invoicing.model import Contract, Invoice, SourceType
from invoicing.storage import codec, due, snapshot


@dataclass
class Partition:
    """One contract's partition as read by one query, grouped by record kind."""

    pk: str
    config: dict[str, Any] | None = None
    config_parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    milestones: dict[str, dict[str, Any]] = field(default_factory=dict)
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    markers: dict[date, dict[str, Any]] = field(default_factory=dict)
    logs: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    due_state: dict[str, Any] | None = None  # the ``N:due`` row: what it put in the due index
    state_row: dict[str, Any] | None = None  # the ``N:state`` row (``snapshot``)

    def add(self, e: dict[str, Any]) -> None:
        rk: str = e["RowKey"]
        kind = rk[:2]
        if rk == codec.CONFIG:
            self.config = e
        elif kind == codec.CONFIG_PART:
            self.config_parts[rk] = e
        elif kind == "T:":
            self.transactions[e["Id"]] = e
        elif kind == "M:":
            self.milestones[e["Id"]] = e
        elif kind == "I:":
            self.headers[e["InvoiceId"]] = e
        elif kind == "L:":
            self.lines.setdefault(e["InvoiceId"], []).append(e)
        elif kind == "D:":
            self.details.setdefault(e["InvoiceId"], []).append(e)
        elif kind == "R:":
            self.markers[_yyyymmdd(rk[2:])] = e
        elif kind == "X:":
            self.logs.setdefault(_yyyymmdd(rk[2:10]), []).append(e)
        elif rk == due.STATE_KEY:
            self.due_state = e
        elif rk == snapshot.STATE_KEY:
            self.state_row = e

    def contract(self) -> Contract | None:
        if self.config is None:
            return None
        return codec.contract_from_entities(
            self.config,
            (codec.milestone_from(e) for e in self.milestones.values()),
            (codec.transaction_from(e) for e in self.transactions.values()),
            self.config_parts,
        )

    def config_entities(self) -> list[dict[str, Any]]:
        """The stored configuration entities, ``C`` first (empty when there is none)."""
        if self.config is None:
            return []
        return [self.config, *(self.config_parts[k] for k in sorted(self.config_parts))]

    def invoice(self, invoice_id: str) -> Invoice:
        return codec.invoice_from(
            self.headers[invoice_id],
            self.lines.get(invoice_id, ()),
            self.details.get(invoice_id, ()),
        )

    def live_ids(self) -> list[str]:
        return [i for i, h in self.headers.items() if h.get("Status") in codec.LIVE]

    def live_invoices(self) -> list[Invoice]:
        return [self.invoice(i) for i in self.live_ids()]

    def committed_invoices(self) -> list[Invoice]:
        """Live and cancelled invoices (not Pending): what the contract's state comes from."""
        pending = codec.PENDING
        return [self.invoice(i) for i, h in self.headers.items() if h.get("Status") != pending]

    def live_items(self) -> dict[tuple[SourceType, str], list[str]]:
        """Item -> the live invoices holding it (one per customer share of one run)."""
        out: dict[tuple[SourceType, str], list[str]] = {}
        for invoice_id in sorted(self.live_ids()):
            for d in self.details.get(invoice_id, ()):
                holders = out.setdefault((SourceType(d["SourceType"]), d["SourceId"]), [])
                if invoice_id not in holders:
                    holders.append(invoice_id)
        return out

    def item_amount(self, kind: SourceType, item_id: str) -> Decimal | None:
        """A stored transaction's or milestone's amount; None when it is not stored."""
        rows_of = self.transactions if kind is SourceType.TRANSACTION else self.milestones
        row = rows_of.get(item_id)
        return None if row is None else Decimal(row["Amount"])

    def pending_dates(self) -> set[date]:
        """Run dates with uncommitted (Pending) invoice rows."""
        return {
            codec.day(h["InvoiceDate"])
            for h in self.headers.values()
            if codec.is_pending(h) and not codec.is_credit_note(h)
        }

    def stale_rows(self, run_date: date, keep: set[str]) -> list[dict[str, Any]]:
        """Rows of uncommitted (Pending) invoices of ``run_date`` whose RowKey is not in ``keep``
        (the rows a new plan of that date rewrites)."""
        stale: list[dict[str, Any]] = []
        day = run_date.isoformat()
        for invoice_id, header in self.headers.items():
            # a credit note being made is never a run's leftover (its own steps finish it)
            pending = codec.is_pending(header) and not codec.is_credit_note(header)
            if header.get("InvoiceDate") == day and pending:
                stale.extend(e for e in self.invoice_rows(invoice_id) if e["RowKey"] not in keep)
        return stale

    def invoice_rows(self, invoice_id: str) -> list[dict[str, Any]]:
        """Details, lines, then the header: the safe deletion order."""
        rows = [*self.details.get(invoice_id, ()), *self.lines.get(invoice_id, ())]
        if invoice_id in self.headers:
            rows.append(self.headers[invoice_id])
        return rows


def _yyyymmdd(text: str) -> date:
    return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
