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
from typing import Any

from invoicing.model import ItemKey, Share, SourceType
from invoicing.shares import ContractState
from invoicing.storage.ops import Op, clean, create_op, delete_op, replace_if_op, upsert_op

STATE_KEY = "N:state"
VERSION = 1
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


def state_entity(
    pk: str, state: ContractState, ran: Iterable[date] = ()
) -> dict[str, Any]:
    """``N:state`` holding ``state`` and the run dates committed so far (``ran``: a run needs
    no marker read for the others); a stale one when the state is too large to keep."""
    doc = {
        "ran": sorted(d.isoformat() for d in ran),
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


def ran_from(entity: Mapping[str, Any] | None) -> frozenset[date]:
    """The run dates a valid ``N:state`` says have their commit marker (empty otherwise)."""
    doc = _doc(entity)
    return frozenset() if doc is None else frozenset(map(date.fromisoformat, doc["ran"]))


def _doc(entity: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not entity or entity.get("Valid") is not True or entity.get("Version") != VERSION:
        return None
    try:
        blob = b"".join(bytes(entity[f"S{n}"]) for n in range(int(entity["Parts"])))
        doc = json.loads(zlib.decompress(blob))
    except (KeyError, ValueError, TypeError, zlib.error):
        return None
    return doc if isinstance(doc, dict) else None


def state_from(entity: Mapping[str, Any] | None) -> ContractState | None:
    """The state a valid ``N:state`` holds; None when it is missing, stale or unreadable (the
    run then loads the contract in full, which is always right)."""
    doc = _doc(entity)
    if doc is None:
        return None
    try:
        return ContractState(
            frozenset((_SOURCE[k[0]], k[1:]) for k in doc["invoiced"]),
            {line: Decimal(v) for line, v in doc["nte"].items()},
            {
                (_SOURCE[k[0]], k[1:]): tuple(
                    Share(c, name, Decimal(pct), Decimal(amount)) for c, name, pct, amount in v
                )
                for k, v in doc["open"].items()
            },
        )
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def is_open_item_key(row_key: str) -> bool:
    """The RowKeys the work table holds besides configuration: transactions and milestones."""
    return row_key[:2] in ("T:", "M:")


def state_op(pk: str, state: ContractState, ran: Iterable[date], etag: str | None) -> Op:
    """The transaction operation writing ``state``: on the ETag read, or created if there was
    no row (either fails the whole transaction if someone wrote the row meanwhile)."""
    entity = state_entity(pk, state, ran)
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
    have = {e["RowKey"]: clean(e) for e in work_rows}
    ops = [upsert_op(e) for rk, e in desired.items() if have.get(rk) != e]
    ops += [delete_op(e) for rk, e in have.items() if rk not in desired]
    return ops, items


def sweep_ops(work_items: Iterable[Mapping[str, Any]], state: ContractState) -> list[Op]:
    """Deletes of the work rows (among ``work_items``, the ones there) of items ``state`` says
    are invoiced now."""
    return [delete_op(e) for e in work_items if not is_open(item_key(e), state)]


def is_open(key: ItemKey, state: ContractState) -> bool:
    """An item a later run may still invoice: no share of it live or written off, or a share
    of it to go out again (its draft cancelled, or credited back to the backlog)."""
    return key not in state.invoiced or key in state.open_shares
