"""The bookkeeping rows: the globals table (registry, ledger, invoice index, number counters, the
first daily run) and the per-(contract, run date) commit marker and RunLog parts.

Only ``storage/`` builds or reads table rows; services ask for these by name.

Tables
------
``<prefix>`` holds one partition per contract (PartitionKey = ``encode_key(ContractId)``, see
``keys``); the RowKey prefixes are listed in ``codec`` (configuration ``C``, transactions ``T:``,
milestones ``M:``, invoice headers ``I:``, lines ``L:``, details ``D:``, per-(contract, run date)
commit markers ``R:`` and run logs ``X:``). ``<prefix>globals`` holds:

* ``contracts`` / ``encode_key(ContractId)``: the registry of imported contracts (the run lists
  it instead of scanning the big table); ``Importing`` is set on a contract's row before an
  import's first write and cleared after its last, so a run never invoices a half-imported
  contract (S5a);
* ``ledger`` / ``YYYY-MM-DD``: the run ledger, one entry per run date (started, completed, counts,
  amounts: S6, R19);
* ``counter`` / ``invoice-number``: the legal invoice number sequence (R16), with its pending
  assignment;
* ``daily`` / ``first``: the date of the store's first daily run (R19: catch-up never reaches
  before it);
* ``I<YYYYMMDD><h>`` / ``InvoiceId``: the index InvoiceId -> ContractId (and InvoiceDate), so GET,
  confirm and cancel by id need no scan and a listing of a date range finds its invoices; one
  partition per invoice date and first hex digit of the id's hash (stores from before it also
  have ``I<YYYYMM>`` month partitions, still read);
* ``W<YYYYMMDD>`` / ``ContractId``: the contracts a run wrote a commit marker for on that date
  (a listing's RunLog reads those), with ``daily`` / ``ran-index`` saying from which date on
  every marker has its row;
* ``due:...``: the due-date index (``storage.due``, S8): which contracts have something due on
  which run date, so a run loads only those;
* ``txn:<h>`` / ``TransactionId``: the transaction index TransactionId -> ContractId (W9 across
  uploads by point reads);
* ``work:<batch>...``: a run dispatched on the work queue (S9): its header, the contracts it
  still waits for, those done with their markers' counts, those poisoned or blocked
  (``storage.work``); the ledger entries of its dates name the batch (``Batch``).

Every query value is a parameter (``parameters=``), never pasted into the filter text. Money is
stored as decimal strings. Entity-group transactions are chunked to <= 100 operations (and a few
MB) of one partition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from invoicing.catchup import MISSED, STARTED
from invoicing.model import Invoice, LogEntry, Outcome, Party
from invoicing.storage import codec, values
from invoicing.storage.keys import encode_key

# globals table partitions
REGISTRY = "contracts"
LEDGER = "ledger"
COUNTER_PK = "counter"
COUNTER_RK = "invoice-number"
CREDIT_COUNTER_RK = "credit-note-number"
DAILY_PK, FIRST_DAILY_RK = "daily", "first"  # the date of the store's first daily run (R19)
SELLER_PK = SELLER_RK = "seller"  # W11: the Seller sheet of the latest upload that had one
# layout / tables: how many tables the main and work tables span (``storage.shards``)
# I<YYYYMMDD><h>: InvoiceId -> ContractId, one partition per invoice date and first hex digit of
# the id's hash (16 per day: a day of every contract's invoices is not one hot partition; stores
# from before it also hold I<YYYYMM> partitions, still read)
INDEX_PREFIX = "I"
RAN_PREFIX = "W"  # W<YYYYMMDD> / ContractId: the contracts a run wrote a marker for on that date
RAN_SINCE_RK = "ran-index"  # daily / ran-index: from which run date every marker has its W row

# ledger states (S6, R19): STARTED, COMPLETED, INCOMPLETE, MISSED (defined with the date rules)


# ---- registry ----------------------------------------------------------------------------------


def registry_entity(
    contract_id: str, order: int, importing: str | None = None, *, indexed: bool = False
) -> dict[str, Any]:
    """A contract's registry row; ``importing`` (a timestamp) while an import is unfinished;
    ``Due`` once the due-date index (``storage.due``) holds the contract, so that a run may load
    it only on the dates it has something due (S8)."""
    return {
        "PartitionKey": REGISTRY,
        "RowKey": encode_key(contract_id),
        "ContractId": contract_id,
        "Order": order,
        "Importing": importing,
        "Due": True if indexed else None,
    }


def registry_indexed(row: Mapping[str, Any]) -> bool:
    return bool(row.get("Due")) and not row.get("Importing")


# ---- ledger ------------------------------------------------------------------------------------


def ledger_started(day: date, started: str) -> dict[str, Any]:
    return {"PartitionKey": LEDGER, "RowKey": day.isoformat(), "State": STARTED, "Started": started}


def ledger_missed(day: date, entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """A Missed date (R19); it keeps the Started time of a run that began it, if any."""
    row: dict[str, Any] = {"PartitionKey": LEDGER, "RowKey": day.isoformat(), "State": MISSED}
    if entry is not None and entry.get("Started"):
        row["Started"] = entry["Started"]
    return row


def ledger_finished(
    day: date,
    *,
    state: str,
    started: str,
    finished: str,
    contracts: int,
    counts: Mapping[str, int],
    amounts: Mapping[str, Decimal],
    blocked: Iterable[str] = (),
    failed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    blocked = sorted(blocked)
    failed = dict(sorted((failed or {}).items())[:50])
    return {
        "PartitionKey": LEDGER,
        "RowKey": day.isoformat(),
        "State": state,
        "Started": started,
        "Completed": finished,
        "Contracts": contracts,
        "Invoices": counts.get("Invoices", 0),
        "Held": counts.get("Held", 0),
        "Skipped": counts.get("Skipped", 0),
        "InvoicedLines": counts.get("InvoicedLines", 0),
        "Amounts": json.dumps({c: str(a) for c, a in sorted(amounts.items())}),
        "Blocked": json.dumps(blocked[:100]) if blocked else None,
        "Failed": json.dumps(failed) if failed else None,
    }


def ledger_state(entry: Mapping[str, Any]) -> str:
    return str(entry.get("State"))


def ledger_blocked(entry: Mapping[str, Any]) -> list[str]:
    return list(json.loads(entry.get("Blocked") or "[]"))


def ledger_failed(entry: Mapping[str, Any]) -> dict[str, str]:
    return dict(json.loads(entry.get("Failed") or "{}"))


def ledger_view(day: date, e: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger entry as JSON-able data (S6)."""
    return {
        "date": day.isoformat(),
        "state": e.get("State"),
        "started": e.get("Started"),
        "completed": e.get("Completed"),
        "contracts": e.get("Contracts"),
        "invoices": e.get("Invoices"),
        "held": e.get("Held"),
        "skipped_lines": e.get("Skipped"),
        "amounts": json.loads(e.get("Amounts") or "{}"),
        "unfinished_imports": ledger_blocked(e),
        "failed_contracts": ledger_failed(e),
    }


def first_daily_entity(day: date) -> dict[str, Any]:
    return {"PartitionKey": DAILY_PK, "RowKey": FIRST_DAILY_RK, "Date": day.isoformat()}


# ---- seller ------------------------------------------------------------------------------------

_PARTY_FIELDS = ("name", "street", "city", "postal_code", "country_code", "vat_id", "email", "iban")


def seller_entity(seller: Party) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": SELLER_PK, "RowKey": SELLER_RK}
    entity.update({name: getattr(seller, name) for name in _PARTY_FIELDS})
    return entity


def seller_from(entity: Mapping[str, Any]) -> Party:
    return Party(**{name: entity.get(name) or "" for name in _PARTY_FIELDS})


# ---- transaction index (W9 across uploads) -----------------------------------------------------

TXN_PREFIX = "txn:"  # txn:<2 hex digits of SHA-256(TransactionId)>: 256 partitions


def txn_index_pk(transaction_id: str) -> str:
    digest = hashlib.sha256(transaction_id.encode("utf-8", "surrogatepass")).hexdigest()
    return TXN_PREFIX + digest[:2]


def txn_index_entity(transaction_id: str, contract_id: str) -> dict[str, Any]:
    """TransactionId -> the contract that stores it (a TransactionId never moves: W9)."""
    return {
        "PartitionKey": txn_index_pk(transaction_id),
        "RowKey": encode_key(transaction_id),
        "TransactionId": transaction_id,
        "ContractId": contract_id,
    }


# ---- invoice index -----------------------------------------------------------------------------


def index_pk(invoice_id: str) -> str | None:
    """``I<YYYYMMDD><h>`` from ``INV-YYYYMMDD-<hex>`` (or ``CN-...``); None when the id cannot
    be one of ours."""
    parts = invoice_id.split("-")
    if len(parts) < 3 or len(parts[-2]) != 8 or not parts[-2].isdigit():
        return None
    bucket = parts[-1][:1].lower()
    return INDEX_PREFIX + parts[-2] + (bucket if bucket in "0123456789abcdef" and bucket else "0")


def legacy_index_pk(invoice_id: str) -> str | None:
    """``I<YYYYMM>``: where stores from before the per-day index put the id."""
    pk = index_pk(invoice_id)
    return None if pk is None else pk[:7]


def index_range(lo: date, hi: date) -> tuple[str, str]:
    """[lower, upper) PartitionKeys of the per-day index partitions of invoice dates lo..hi."""
    return f"{INDEX_PREFIX}{lo:%Y%m%d}", f"{INDEX_PREFIX}{hi:%Y%m%d}~"


def ran_entity(contract_id: str, day: date) -> dict[str, Any]:
    return {
        "PartitionKey": f"{RAN_PREFIX}{day:%Y%m%d}",
        "RowKey": encode_key(contract_id),
        "ContractId": contract_id,
    }


def ran_range(lo: date, hi: date) -> tuple[str, str]:
    return f"{RAN_PREFIX}{lo:%Y%m%d}", f"{RAN_PREFIX}{hi:%Y%m%d}~"


def ran_since_entity(day: date) -> dict[str, Any]:
    return {"PartitionKey": DAILY_PK, "RowKey": RAN_SINCE_RK, "Date": day.isoformat()}


def index_entity(inv: Invoice) -> dict[str, Any]:
    return {
        "PartitionKey": index_pk(inv.invoice_id),
        "RowKey": encode_key(inv.invoice_id),
        "ContractId": inv.contract_id,
        "InvoiceDate": inv.invoice_date.isoformat(),
    }


# ---- invoice number counter (R16) --------------------------------------------------------------


def counter_entity(
    last: int, pending: tuple[int, str, str] | None = None, *, series: str = COUNTER_RK
) -> dict[str, Any]:
    """A number series' counter: the last number taken and, while one is being stamped, the
    pending assignment (number, InvoiceId or CreditNoteId, ContractId)."""
    entity: dict[str, Any] = {
        "PartitionKey": COUNTER_PK,
        "RowKey": series,
        "Last": codec.int64(last),
    }
    if pending is not None:
        entity.update(
            PendingSeq=codec.int64(pending[0]),
            PendingInvoice=pending[1],
            PendingContract=pending[2],
        )
    return entity


def counter_last(counter: Mapping[str, Any] | None) -> int:
    return (codec.plain_int(counter.get("Last")) if counter else 0) or 0


def counter_pending(counter: Mapping[str, Any]) -> tuple[int, str, str] | None:
    seq = codec.plain_int(counter.get("PendingSeq"))
    if seq is None:
        return None
    return seq, counter["PendingInvoice"], counter["PendingContract"]


# ---- per (contract, run date): commit marker and RunLog parts ----------------------------------


def marker_entity(
    pk: str, run_date: date, invoices: Iterable[Invoice], log: Iterable[LogEntry], log_parts: int
) -> dict[str, Any]:
    """The (contract, run date) commit marker, with the date's counts (summed into the ledger)."""
    invoices, log = list(invoices), list(log)
    amounts: dict[str, Decimal] = {}
    for inv in invoices:
        amounts[inv.currency] = amounts.get(inv.currency, Decimal(0)) + inv.amount
    return {
        "PartitionKey": pk,
        "RowKey": codec.marker_key(run_date),
        "Date": run_date.isoformat(),
        "Invoices": len(invoices),
        "Amounts": json.dumps({c: str(a) for c, a in sorted(amounts.items())}),
        "Held": sum(1 for e in log if e.outcome is Outcome.HELD),
        "Skipped": sum(1 for e in log if e.outcome is Outcome.SKIPPED),
        "InvoicedLines": sum(1 for e in log if e.outcome is Outcome.INVOICED),
        "LogParts": log_parts,
    }


def marker_counts(marker: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, Decimal]]:
    """(counts, amounts per currency) of a marker."""
    counts = {
        k: int(marker.get(k) or 0) for k in ("Invoices", "Held", "Skipped", "InvoicedLines")
    }
    amounts = {c: Decimal(a) for c, a in json.loads(marker.get("Amounts") or "{}").items()}
    return counts, amounts


def log_entities(pk: str, run_date: date, log: Iterable[LogEntry]) -> list[dict[str, Any]]:
    """A date's RunLog rows packed into as few entities as they fit."""
    return [
        {
            "PartitionKey": pk,
            "RowKey": codec.log_key(run_date, n),
            "Date": run_date.isoformat(),
            **e,
        }
        for n, e in enumerate(codec.pack_chunks(codec.log_rows(log), "the run log"))
    ]


def with_inline_log(
    marker: Mapping[str, Any], logs: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The marker and the RunLog entities to write for a date: a log that packs into one entity
    (almost every date) goes into the marker itself (``LogInline``), so that a commit writes one
    row per (contract, date) fewer and the partition's history holds half the rows it would (on
    Azurite every write costs in proportion to the rows of its table). Readers follow the
    marker: a marker without ``LogInline`` counts its ``X:`` parts as before."""
    if len(logs) != 1:
        return dict(marker), logs
    packed = {name: logs[0][name] for name in values.packed_names(logs[0])}
    return {**marker, **packed, "LogParts": 0, "LogInline": True}, []


def without_log(marker: dict[str, Any]) -> dict[str, Any]:
    """The marker without an inline RunLog (a read that does not want the logs holds none of
    them in memory: a full load of a contract with a long history)."""
    if marker.get("LogInline") is not True:
        return marker
    packed = set(values.packed_names(marker))
    return {k: v for k, v in marker.items() if k not in packed}


def log_from_parts(
    run_date: date,
    contract_id: str,
    marker: Mapping[str, Any],
    parts: Iterable[Mapping[str, Any]],
) -> list[LogEntry]:
    """The RunLog of a committed (contract, run date): in the marker itself (``LogInline``), or
    in the ``X:`` parts, of which the marker says how many count."""
    if marker.get("LogInline") is True:
        if "Parts" not in marker:
            raise ValueError(f"the marker of {run_date} was read without its RunLog")
        return codec.log_from(run_date, contract_id, codec.unpack(marker))
    count = codec.plain_int(marker.get("LogParts")) or 0
    chosen = sorted(parts, key=lambda e: e["RowKey"])[:count]
    rows = [row for p in chosen for row in codec.unpack(p)]
    return codec.log_from(run_date, contract_id, rows)
