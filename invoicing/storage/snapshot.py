"""A contract's state as of its last commit, and its open work apart from its history (S8).

A run of date D must not read a contract's history (every invoice, detail and commit marker it
ever had) to learn what the contract has already invoiced. So each contract keeps:

* in its own partition of the main table, the row ``N:state``: the ``ContractState`` after its
  latest commit (items with a live or written-off share, not-to-exceed use per line, the shares
  of cancelled drafts still to go out again), compressed. A run reads it with ONE point read;
  its ETag fences the run's commit (below).
* in the *work* table ``<prefix>work``, under the same PartitionKey: a copy of the contract's
  configuration rows and of its **open** items (transactions and milestones with no live or
  written-off share, or with a share to go out again: ``is_open``), with the main table's
  RowKeys. A run reads them with one query of a
  table that holds no history (on Azurite every query scans its whole table; point reads do not).

Invariant: *a valid ``N:state`` implies the work partition holds the configuration and every
open item, as stored*. Extra work rows (an item invoiced by the latest commit but not swept yet)
are harmless: the state says it is invoiced, and the next run sweeps it.

Who keeps it true
-----------------
* **Import** writes every item it creates or changes, and a changed configuration, to both
  tables; a changed configuration (or one it cannot compare) makes ``N:state`` stale (its
  not-to-exceed sums cover only the lines that had a limit), and a brand-new contract gets a
  valid empty state after its rows. Before its first write to a contract, import touches
  ``N:state`` on the ETag it read (S9: a queue worker that loaded the contract before the import
  then fails its commit and is redelivered; a worker that committed meanwhile makes the import
  fail, naming the contract, instead of changing an item just invoiced).
* **The run's commit** writes the new state in its final atomic transaction, conditional on the
  ETag it read *before* loading the contract (a run with several transactions for a contract
  first makes the state stale on that ETag). Anything that changed the state in between (a
  cancel, a credit, an import) changed that ETag: the commit fails, nothing of it lands, and the
  contract is redone from scratch (the next run, or the message's next delivery).
* **Every other change of state** — cancel, adjust (remove, write off), a credit note becoming
  live — makes ``N:state`` stale *in the same atomic transaction* as the change.
* A stale or missing state sends the run the old way: the whole partition in one query, the
  state derived from every invoice (``shares.state_from_invoices``), and the work partition
  rebuilt from it before the commit writes a valid state again.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from azure.core import MatchConditions

from invoicing.model import ItemKey, Share, SourceType
from invoicing.shares import ContractState
from invoicing.storage.ops import Op, clean, create_op, replace_if_op

STATE_KEY = "N:state"
VERSION = 2  # 2: with the committed run dates and the dates with Pending leftovers
CHUNK = 60_000  # bytes per binary property (the service caps one at 64 KiB)
MAX_BYTES = 600_000  # larger states are not kept: such a contract always loads in full

_KIND = {SourceType.TRANSACTION: "T", SourceType.MILESTONE: "M"}
_SOURCE = {v: k for k, v in _KIND.items()}


def stale_entity(pk: str, why: str) -> dict[str, Any]:
    """``N:state`` saying the contract must be loaded in full by its next run."""
    return {"PartitionKey": pk, "RowKey": STATE_KEY, "Valid": False, "Why": why[:200]}


def touch_entity(pk: str, stamp: str) -> dict[str, Any]:
    """A merge that changes ``N:state``'s ETag and nothing else (import's fence, S9)."""
    return {"PartitionKey": pk, "RowKey": STATE_KEY, "Touched": stamp}


class Kept(NamedTuple):
    """What a valid ``N:state`` holds."""

    state: ContractState
    ran: frozenset[date]  # the run dates with a commit marker
    pending: frozenset[date]  # run dates with Pending leftovers a run of them must clean


def state_entity(
    pk: str,
    state: ContractState,
    ran: Iterable[date] = (),
    pending: Iterable[date] = (),
) -> dict[str, Any]:
    """``N:state`` holding ``state``, the run dates committed so far (``ran``: a run reads no
    marker for the others) and the dates with Pending leftovers (a run of one of them reads the
    whole partition, to clean them); a stale one when it is too large to keep."""
    doc = {
        "ran": sorted(d.isoformat() for d in ran),
        "pending": sorted(d.isoformat() for d in pending),
        "invoiced": sorted(_KIND[k] + i for k, i in state.invoiced),
        "nte": {line: str(v) for line, v in sorted(state.nte_used.items())},
        "open": {
            _KIND[k] + i: [[s.customer_id, s.customer_name, str(s.split_percent), str(s.amount)]
                           for s in shares]
            for (k, i), shares in sorted(state.open_shares.items())
        },
    }
    blob = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)
    if len(blob) > MAX_BYTES:
        return stale_entity(pk, f"state of {len(state.invoiced):,} items too large to keep")
    entity: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": STATE_KEY,
        "Valid": True,
        "Version": VERSION,
        "Parts": (len(blob) + CHUNK - 1) // CHUNK,
    }
    for n in range(entity["Parts"]):
        entity[f"S{n}"] = blob[n * CHUNK : (n + 1) * CHUNK]
    return entity


def kept_from(entity: Mapping[str, Any] | None) -> Kept | None:
    """What a valid ``N:state`` holds; None when it is missing, stale, of another version or
    unreadable in any part (the run then loads the contract in full, which is always right)."""
    if not entity or entity.get("Valid") is not True or entity.get("Version") != VERSION:
        return None
    try:
        blob = b"".join(bytes(entity[f"S{n}"]) for n in range(int(entity["Parts"])))
        doc = json.loads(zlib.decompress(blob))
        return Kept(
            ContractState(
                frozenset((_SOURCE[k[0]], k[1:]) for k in doc["invoiced"]),
                {line: Decimal(v) for line, v in doc["nte"].items()},
                {
                    (_SOURCE[k[0]], k[1:]): tuple(
                        Share(c, name, Decimal(pct), Decimal(amount))
                        for c, name, pct, amount in v
                    )
                    for k, v in doc["open"].items()
                },
            ),
            frozenset(map(date.fromisoformat, doc["ran"])),
            frozenset(map(date.fromisoformat, doc["pending"])),
        )
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, zlib.error):
        return None


def state_from(entity: Mapping[str, Any] | None) -> ContractState | None:
    """The state a valid ``N:state`` holds (``kept_from``)."""
    kept = kept_from(entity)
    return None if kept is None else kept.state


def is_open_item_key(row_key: str) -> bool:
    """The RowKeys the work table holds besides configuration: transactions and milestones."""
    return row_key[:2] in ("T:", "M:")


def state_op(pk: str, kept: Kept, etag: str | None) -> Op:
    """The transaction operation writing ``kept``: on the ETag read, or created if there was
    no row (either fails the whole transaction if someone wrote the row meanwhile)."""
    entity = state_entity(pk, kept.state, kept.ran, kept.pending)
    return create_op(entity) if etag is None else replace_if_op(entity, etag)


def item_key(entity: Mapping[str, Any]) -> ItemKey:
    kind = SourceType.TRANSACTION if entity["RowKey"].startswith("T:") else SourceType.MILESTONE
    return kind, entity["Id"]


def work_ops(
    config_rows: Iterable[Mapping[str, Any]],
    item_rows: Iterable[Mapping[str, Any]],
    work_rows: Iterable[Mapping[str, Any]],
    state: ContractState,
) -> tuple[list[Op], list[dict[str, Any]]]:
    """The work-table writes that make a contract's work partition hold its configuration and
    exactly its open items (``is_open``), from its stored rows and the work
    rows it has now; and the item rows it then holds."""
    desired = {e["RowKey"]: clean(e) for e in config_rows}
    items = [clean(e) for e in item_rows if is_open(item_key(e), state)]
    desired.update((e["RowKey"], e) for e in items)
    # every write is on the ETag read (or creates a row that was absent): a work row someone
    # rewrote since (an import, another run) is never overwritten with this older copy, the
    # transaction fails instead. Every row is rewritten, changed or not: its new ETag makes a
    # sweep that read it before (a slower run, a worker) miss it (``sweep_ops``)
    have = {e["RowKey"]: e for e in work_rows}
    ops: list[Op] = []
    for rk, e in desired.items():
        found = have.get(rk)
        ops.append(create_op(e) if found is None else replace_if_op(e, found["_etag"]))
    ops += [_delete_if(e) for rk, e in have.items() if rk not in desired]
    return ops, items


def _delete_if(e: Mapping[str, Any]) -> Op:
    guard = {"etag": e["_etag"], "match_condition": MatchConditions.IfNotModified}
    return ("delete", {"PartitionKey": e["PartitionKey"], "RowKey": e["RowKey"]}, guard)


def sweep_ops(work_items: Iterable[Mapping[str, Any]], state: ContractState) -> list[Op]:
    """Deletes of the work rows read (``work_items``, with their ETags) of the items ``state``
    says are invoiced now, each on the ETag it was read with: a row rewritten since (a full
    read rebuilt it, an import changed it) stays, and its transaction with it."""
    return [
        _delete_if(e) for e in work_items if not is_open(item_key(e), state) and e.get("_etag")
    ]


def is_open(key: ItemKey, state: ContractState) -> bool:
    """An item a later run may still invoice: no share of it live or written off, or a share
    of it to go out again (its draft cancelled, or credited back to the backlog)."""
    return key not in state.invoiced or key in state.open_shares
