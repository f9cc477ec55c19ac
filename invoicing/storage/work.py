"""The bookkeeping of a dispatched run (S9): which contracts a batch of run dates still waits
for, which have committed (with their commit markers' counts), and which cannot be invoiced.

A *batch* is one dispatch: the run dates it covers and one queue message per contract (the
contract over all the batch's dates, in order, like an inline run plans it). In ``<prefix>globals``:

* ``work:<batch>`` / ``batch``: the header: its dates, the registered contracts (the ledger's
  count), the batches it takes over (``Supersedes``) and ``Sealed`` once every work row below is
  written (messages are sent only after that: an unsealed batch never had any);
* ``work:<batch>:q`` / ``encode_key(ContractId)``: a contract still to commit;
* ``work:<batch>:d`` / ``encode_key(ContractId)``: a contract that committed, with the counts
  of its commit markers per date (the ledger sums them when the batch is done);
* ``work:<batch>`` / ``p:<encoded ContractId>``: a contract the batch cannot invoice: ``poisoned``
  (its message failed ``maxDequeueCount`` times, with the reason) or ``blocked`` (its import
  never finished, S5a). Its dates stay incomplete and the ledger names it.

Each contract writes one done row and deletes one queued row, a worker's contracts together in
one transaction each (one partition per kind and batch: at 100,000 contracts in a 10-minute run
that is ~170 entities/s per partition, far below the service's ~2,000/s). A worker writes its
contracts' done rows, then deletes their queued rows (a crash in between leaves
both: the redelivered message writes the same done row again), then checks whether any queued row
is left; the first to find none writes the ledger entries of the dates that still name the
batch. The ledger entries of the batch's dates name it (``Batch``), so that the next run takes
the unfinished work over (a new batch of its own, pointing the dates at it) instead of loading
every contract again, and a late worker of a superseded batch never writes the ledger.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError

from invoicing.catchup import COMPLETED
from invoicing.storage import rows
from invoicing.storage.keys import encode_key
from invoicing.storage.ops import delete_op, upsert_op
from invoicing.storage.store import Store

PREFIX = "work:"
HEADER_RK = "batch"
PROBLEM = "p:"
POISONED, BLOCKED = "poisoned", "blocked"
PART_CHARS = 30_000  # a property holds ~32K characters: longer texts go over several
COUNT_KEYS = ("Invoices", "Held", "Skipped", "InvoicedLines")


def new_batch(now: datetime) -> str:
    """A batch id: sortable by when it was made, unique."""
    return f"{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"


def _pk(batch: str, kind: str = "") -> str:
    return f"{PREFIX}{batch}:{kind}" if kind else f"{PREFIX}{batch}"


def _days(text: str | None) -> list[date]:
    return [date.fromisoformat(d) for d in json.loads(text or "[]")]


def _split(name: str, text: str) -> dict[str, str]:
    """``text`` over properties ``name0``, ``name1``, ... of at most PART_CHARS characters."""
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    return {f"{name}{n}": part for n, part in enumerate(parts)}


def _join(name: str, row: Mapping[str, Any]) -> str:
    out, n = [], 0
    while f"{name}{n}" in row:
        out.append(str(row[f"{name}{n}"]))
        n += 1
    return "".join(out)


# ---- rows --------------------------------------------------------------------------------------


def header_entity(
    batch: str,
    dates: Iterable[date],
    *,
    contracts: int,
    started: str,
    supersedes: Iterable[str] = (),
    sealed: bool = False,
) -> dict[str, Any]:
    return {
        "PartitionKey": _pk(batch),
        "RowKey": HEADER_RK,
        "Dates": json.dumps([d.isoformat() for d in dates]),
        "Contracts": contracts,
        "Started": started,
        "Supersedes": json.dumps(sorted(set(supersedes))),
        "Sealed": sealed,
    }


def queued_entity(batch: str, contract_id: str) -> dict[str, Any]:
    return {
        "PartitionKey": _pk(batch, "q"),
        "RowKey": encode_key(contract_id),
        "ContractId": contract_id,
    }


def problem_entity(
    batch: str, contract_id: str, kind: str, reason: str, dates: Iterable[date]
) -> dict[str, Any]:
    return {
        "PartitionKey": _pk(batch),
        "RowKey": PROBLEM + encode_key(contract_id),
        "ContractId": contract_id,
        "Kind": kind,
        "Reason": reason[:1000],
        "Dates": json.dumps([d.isoformat() for d in dates]),
    }


def done_entity(
    batch: str, contract_id: str, markers: Mapping[date, Mapping[str, Any]]
) -> dict[str, Any]:
    """A contract of the batch committed: the counts of its commit marker per date."""
    counts = {
        d.isoformat(): [*(int(m.get(k) or 0) for k in COUNT_KEYS), m.get("Amounts") or "{}"]
        for d, m in sorted(markers.items())
    }
    return {
        "PartitionKey": _pk(batch, "d"),
        "RowKey": encode_key(contract_id),
        "ContractId": contract_id,
        **_split("Markers", json.dumps(counts, separators=(",", ":"))),
    }


def done_markers(row: Mapping[str, Any]) -> dict[date, dict[str, Any]]:
    """A done row's counts per date, in the shape of a commit marker (``rows.marker_counts``)."""
    out: dict[date, dict[str, Any]] = {}
    for day, values in json.loads(_join("Markers", row) or "{}").items():
        marker: dict[str, Any] = dict(zip(COUNT_KEYS, values[:4], strict=True))
        marker["Amounts"] = values[4]
        out[date.fromisoformat(day)] = marker
    return out


def ledger_batch(entry: Mapping[str, Any] | None) -> str | None:
    """The batch a ledger entry's date was dispatched in, if any."""
    return None if entry is None else entry.get("Batch") or None


def with_batch(entry: Mapping[str, Any], batch: str) -> dict[str, Any]:
    """A ledger entry (``rows.ledger_started`` / ``ledger_finished``) naming its batch."""
    return {**entry, "Batch": batch}


# ---- reads and writes --------------------------------------------------------------------------


class Header:
    """A batch's header row, read."""

    def __init__(self, row: Mapping[str, Any]):
        self.dates = _days(row.get("Dates"))
        self.contracts = int(row.get("Contracts") or 0)
        self.started = str(row.get("Started") or "")
        self.supersedes: list[str] = list(json.loads(row.get("Supersedes") or "[]"))
        self.sealed = bool(row.get("Sealed"))


def header(store: Store, batch: str) -> Header | None:
    row = store.get(store.globals, _pk(batch), HEADER_RK)
    return None if row is None else Header(row)


def write_header(store: Store, entity: Mapping[str, Any]) -> None:
    store.upsert(store.globals, entity, "work-header")


def write_rows(store: Store, entities: Iterable[Mapping[str, Any]]) -> None:
    store.submit(store.globals, [upsert_op(e) for e in entities], "work-rows", workers=4)


def queued(store: Store, batch: str) -> list[str]:
    """The ContractIds the batch still waits for."""
    return [
        r["ContractId"]
        for r in store.query(
            store.globals, "PartitionKey eq @pk", {"pk": _pk(batch, "q")}, select=["ContractId"]
        )
    ]


def any_queued(store: Store, batch: str) -> bool:
    """Whether the batch still waits for some contract: the first row found, not all of them."""
    pages = store.globals.query_entities(
        "PartitionKey eq @pk", parameters={"pk": _pk(batch, "q")}, select=["RowKey"],
        results_per_page=1,
    ).by_page()
    # a page can be empty and still carry a continuation: the first row, not the first page
    return any(next(iter(page), None) is not None for page in pages)


def problems(store: Store, batch: str) -> list[dict[str, Any]]:
    return store.query(
        store.globals,
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        {"pk": _pk(batch), "lo": PROBLEM, "hi": PROBLEM[:-1] + chr(ord(PROBLEM[-1]) + 1)},
    )


def done(store: Store, batch: str) -> list[dict[str, Any]]:
    return store.query(store.globals, "PartitionKey eq @pk", {"pk": _pk(batch, "d")})


def record_done(
    store: Store, batch: str, markers: Mapping[str, Mapping[date, Mapping[str, Any]]]
) -> None:
    """Contracts of the batch committed (ContractId -> its markers per date): their done rows
    first, then their queued rows deleted."""
    store.submit(
        store.globals,
        [upsert_op(done_entity(batch, c, m)) for c, m in markers.items()],
        "work-done",
    )
    _delete(store, [queued_entity(batch, c) for c in markers])


def record_problems(
    store: Store, batch: str, problems: Iterable[tuple[str, str, str]], dates: Iterable[date]
) -> None:
    """Contracts the batch cannot invoice, as (ContractId, kind, reason): their problem rows,
    then their queued rows deleted (so the batch can finish, incomplete, naming them)."""
    problems = list(problems)
    days = list(dates)
    store.submit(
        store.globals,
        [upsert_op(problem_entity(batch, c, kind, reason, days)) for c, kind, reason in problems],
        "work-problem",
    )
    _delete(store, [queued_entity(batch, c) for c, _, _ in problems])


def clear_problems(store: Store, batch: str, contract_ids: Iterable[str]) -> None:
    """Problem rows a previous delivery left for contracts that have now committed."""
    _delete(
        store,
        [{"PartitionKey": _pk(batch), "RowKey": PROBLEM + encode_key(c)} for c in contract_ids],
    )


def _delete(store: Store, entities: list[Mapping[str, Any]]) -> None:
    """Delete rows, in transactions when they are all there (the usual case); one by one, a row
    already gone being fine, when one is missing (a duplicate delivery deleted it first)."""
    try:
        store.submit(store.globals, [delete_op(e) for e in entities], "work-clear")
    except HttpResponseError as exc:
        if exc.status_code != 404:
            raise
        for e in entities:
            store.delete_if_present(store.globals, e["PartitionKey"], e["RowKey"], "work-clear")


# A queue message lives at most 7 days (Azure Storage Queues' default time-to-live, which we
# keep): a batch older than that can get no delivery any more, so its rows may go.
KEEP_FINISHED = timedelta(days=7)


def batch_started(batch: str) -> datetime | None:
    """When the batch was made (its id begins with it, local time), or None for another id."""
    try:
        return datetime.strptime(batch[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None


def finished_batches(
    store: Store, ledger: Mapping[date, Mapping[str, Any]], now: datetime
) -> list[str]:
    """Batches made more than ``KEEP_FINISHED`` before ``now`` (local time) every date of which
    is Completed in the ledger: nothing reads their rows any more (a batch that took one over
    finished before its dates completed). A batch with a date still incomplete, poisoned or
    blocked, is kept: its rows are what the ledger, ``health`` and ``audit`` name; and so is
    every batch that a kept batch took over (its supersedes list is transitive).

    A taker before what it took over, so that a sweep cut short leaves the taken batch (a late
    delivery of it writes no ledger: its dates name the taker) rather than the taker without
    the done rows it sums. The order is by what each took over (transitive, so a taker's list
    is longer than that of any batch it took over), not by the ids: an id is the local time to
    the second, which two batches can share and a clock set back can reverse."""
    cutoff = now - KEEP_FINISHED
    found: list[tuple[int, str]] = []
    kept: set[str] = set()
    for row in store.query(
        store.globals,
        "PartitionKey ge @lo and PartitionKey lt @hi and RowKey eq @rk",
        {"lo": PREFIX, "hi": PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1), "rk": HEADER_RK},
        select=["PartitionKey", "Dates", "Supersedes"],
    ):
        batch = row["PartitionKey"][len(PREFIX) :]
        started = batch_started(batch)
        days = _days(row.get("Dates"))
        took = json.loads(row.get("Supersedes") or "[]")
        if (
            started is not None
            and started <= cutoff
            and all(rows.ledger_state(ledger.get(d) or {}) == COMPLETED for d in days)
        ):
            found.append((len(took), batch))
        else:  # what it took over stays too: its finish sums their done rows (a late delivery)
            kept.update(took)
    return [b for _, b in sorted(found, reverse=True) if b not in kept]


def delete_batch(store: Store, batch: str) -> int:
    """Every row of the batch, its header last (a sweep cut short finds the batch again);
    the number of rows deleted."""
    deleted = 0
    for pk in (_pk(batch, "q"), _pk(batch, "d"), _pk(batch)):
        keys = store.query(store.globals, "PartitionKey eq @pk", {"pk": pk}, select=["RowKey"])
        entities = [{"PartitionKey": pk, "RowKey": r["RowKey"]} for r in keys]
        entities.sort(key=lambda e: e["RowKey"] == HEADER_RK)
        if entities:
            _delete(store, entities)
            deleted += len(entities)
    return deleted


def importing(store: Store, contract_id: str) -> str | None:
    """When the contract's unfinished import started (S5a), or None: one point read of its
    registry row."""
    row = store.get(store.globals, rows.REGISTRY, encode_key(contract_id))
    return None if row is None else (row.get("Importing") or None)
