"""A table spread over several Table Storage tables by partition (the main and work tables).

Why: on Azurite every change to an existing row (a replace, a merge, a delete) costs in
proportion to the rows of its *table* (its in-memory collection walks both of its sorted indexes:
measured 0.15 ms a delete at 10,000 rows, 0.46 ms at 100,000, 1.6 ms at 300,000), so a daily run
on a store with a year of history paid for the history on every ``N:state`` replace and every
swept work row (P6, P7). Spreading each contract's partition over ``shards`` tables by a hash of
its PartitionKey keeps every table a ``1/shards`` of the store. On the real service a write's cost
does not depend on its table's size, and more tables cost nothing: nothing is lost there either.

A contract's partition lives whole in one table (``shard_of``), so an entity-group transaction,
a point read and a partition query go to one table exactly as before; a query that is not of one
partition reads every table and merges their answers in (PartitionKey, RowKey) order, the order a
single table returns. Which layout a store has is decided once, when it is created, and recorded
in its globals table (``Store.ensure_tables``): a store from before shards keeps its one table.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient, UpdateMode

log = logging.getLogger("invoicing.storage")
DEFAULT_SHARDS = 16
MAX_SHARDS = 64
LAYOUT_PK, LAYOUT_RK = "layout", "tables"  # the layout row, in the globals table
# a filter of one partition: it starts so, and has no "or" or parentheses that could widen it
_ONE_PARTITION = re.compile(r"\s*PartitionKey eq @pk(\s|$)")
_WIDENS = re.compile(r"[()]|\bor\b", re.IGNORECASE)


def shard_of(pk: str, shards: int) -> int:
    """The table (0 .. shards-1) that holds partition ``pk``: stable across versions and
    processes (CRC-32 of its UTF-8, not Python's salted ``hash``)."""
    return zlib.crc32(pk.encode()) % shards if shards > 1 else 0


def table_names(base: str, shards: int) -> list[str]:
    """The tables of a layout: ``base`` itself for one (the layout before shards), else
    ``base`` + ``s`` + two digits: ``invoicingworks07``."""
    if shards == 1:
        return [base]
    return [f"{base}s{n:02d}" for n in range(shards)]


def layout_entity(shards: int) -> dict[str, Any]:
    return {"PartitionKey": LAYOUT_PK, "RowKey": LAYOUT_RK, "Shards": shards}


def layout_shards(row: Mapping[str, Any]) -> int:
    """The layout row's table count; a damaged row is an error, never a guess (a wrong count
    would send every contract to a table that does not hold it)."""
    shards = row.get("Shards")
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"the store's layout row says {shards!r} tables: expected 1..{MAX_SHARDS}")
    return shards


def read_layout(
    service: TableServiceClient, globals_: TableClient, bases: Sequence[str], new_shards: int
) -> int:
    """How many tables the store spreads ``bases`` (its main table, then its work table) over.

    The layout row is written *before* any table: its insert settles two first opens racing
    (the second's fails, and it reads the first's), so no table is ever made for a layout that
    lost. It says ``Ready`` once every table exists; until then each open creates the missing
    ones (a first open cut short is finished by the next). No data is written before that, so a
    store with data always has its row. Not a write of the store's data: no lease, no count."""

    def row() -> Mapping[str, Any] | None:
        try:
            return globals_.get_entity(LAYOUT_PK, LAYOUT_RK)
        except ResourceNotFoundError:
            return None

    found = row()
    if found is None:
        shards = _layout_of_tables(service, bases, new_shards)
        with contextlib.suppress(ResourceExistsError):
            globals_.create_entity(layout_entity(shards) | {"Ready": False})
        found = row()
        if found is None:
            raise RuntimeError("the store's layout row could not be written or read back")
    shards = layout_shards(found)
    if found.get("Ready") is not True:
        for base in bases:
            for name in table_names(base, shards):
                with contextlib.suppress(ResourceExistsError):
                    service.create_table(name)
        ready = {"PartitionKey": LAYOUT_PK, "RowKey": LAYOUT_RK, "Ready": True}
        globals_.upsert_entity(ready, mode=UpdateMode.MERGE)
    return shards


def strays(service: TableServiceClient, bases: Sequence[str], shards: int) -> list[str]:
    """The tables outside the layout that hold rows: on a store of several tables, its one-table
    names (``bases``), which only a version from before shards writes (run against this store
    during a rolling upgrade or after a rollback); what they hold is read by nothing here."""
    return [] if shards == 1 else [name for name in bases if _first_row(service, name)]


def _first_row(service: TableServiceClient, name: str) -> bool | None:
    """None when table ``name`` does not exist, else whether it holds a row: asked of the table
    itself (so the service's own rules on the case of names apply, as to every read and write)."""
    try:
        rows = service.get_table_client(name).list_entities(results_per_page=1)
        return next(iter(rows), None) is not None
    except ResourceNotFoundError:
        return None


def _exists(service: TableServiceClient, name: str) -> bool:
    return _first_row(service, name) is not None


def _whole(service: TableServiceClient, base: str) -> int:
    """How many of ``base``s00, s01, ... exist, counted up to the first one missing."""
    n = 0
    while n < MAX_SHARDS and _exists(service, f"{base}s{n:02d}"):
        n += 1
    return n


def _layout_of_tables(service: TableServiceClient, bases: Sequence[str], new_shards: int) -> int:
    """The layout of a store without a layout row, from the tables it has. None: a new store
    (``new_shards``). Its main table alone (and its work table): a store from before shards,
    one table. A whole set of sNN tables for both: the row was deleted, and those tables are
    the layout whatever INVOICE_TABLE_SHARDS says now. Anything else (both kinds, or sets that
    disagree) is not guessed at: a wrong guess would hide contracts, so the store does not
    open until someone restores the row."""
    main, work = bases
    legacy = _exists(service, main)
    counts = [_whole(service, base) for base in bases]
    if not legacy and counts == [0, 0]:
        return new_shards
    if legacy and counts == [0, 0]:
        return 1
    if not legacy and counts[0] == counts[1] >= 2:
        log.warning("the layout row of %s was missing: its %d tables say it", main, counts[0])
        return counts[0]
    raise ValueError(
        f"the store's layout row ({LAYOUT_PK}/{LAYOUT_RK} in its globals table) is missing and "
        f"its tables do not say one layout (table {main}: {'yes' if legacy else 'no'}; "
        f"{main}sNN: {counts[0]}, {work}sNN: {counts[1]}): restore the row with Shards"
    )


def _key(entity: Mapping[str, Any]) -> tuple[str, str]:
    return str(entity.get("PartitionKey", "")), str(entity.get("RowKey", ""))


class ShardedTable:
    """The ``TableClient`` calls the store makes, routed to the table of the partition. Until
    the store's layout is read (``use``) it refuses every call, so that no code can write to a
    table the layout does not name."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.table_name = base  # what logs and messages name
        self.clients: list[TableClient] = []

    @property
    def shards(self) -> int:
        return len(self.clients)

    def use(self, clients: Sequence[TableClient]) -> None:
        self.clients = list(clients)

    def client(self, pk: str) -> TableClient:
        if not self.clients:
            raise RuntimeError(
                f"the table layout of {self.base} is not read yet (open the store first)"
            )
        return self.clients[shard_of(pk, len(self.clients))]

    def targets(self, query_filter: str, parameters: Mapping[str, Any] | None) -> list[TableClient]:
        """The tables a query must read: the partition's own for ``PartitionKey eq @pk ...``,
        every table otherwise (always correct, only slower)."""
        pk = (parameters or {}).get("pk")
        if (
            isinstance(pk, str)
            and _ONE_PARTITION.match(query_filter)
            and not _WIDENS.search(query_filter)
        ):
            return [self.client(pk)]
        self.client("")  # the not-read-yet check
        return list(self.clients)

    # ---- the TableClient calls ------------------------------------------------------------------

    def get_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> TableEntity:
        return self.client(partition_key).get_entity(partition_key, row_key, **kwargs)

    def upsert_entity(self, entity: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        return self.client(entity["PartitionKey"]).upsert_entity(entity, *args, **kwargs)

    def create_entity(self, entity: Mapping[str, Any], **kwargs: Any) -> Any:
        return self.client(entity["PartitionKey"]).create_entity(entity, **kwargs)

    def update_entity(self, entity: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        return self.client(entity["PartitionKey"]).update_entity(entity, *args, **kwargs)

    def delete_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> None:
        self.client(partition_key).delete_entity(partition_key, row_key, **kwargs)

    def submit_transaction(self, operations: Iterable[Any], **kwargs: Any) -> Any:
        ops = list(operations)
        if not ops:
            return []
        return self.client(ops[0][1]["PartitionKey"]).submit_transaction(ops, **kwargs)

    def query_entities(
        self, query_filter: str, *, parameters: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[TableEntity]:
        found = [
            c.query_entities(query_filter, parameters=dict(parameters or {}), **kwargs)
            for c in self.targets(query_filter, parameters)
        ]
        if len(found) == 1:
            return iter(found[0])
        return heapq.merge(*found, key=_key)

    def list_entities(self, **kwargs: Any) -> Iterator[TableEntity]:
        self.client("")
        return heapq.merge(*(c.list_entities(**kwargs) for c in self.clients), key=_key)


Table = TableClient | ShardedTable  # what the store's reads and writes take
