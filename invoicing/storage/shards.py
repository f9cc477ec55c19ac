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
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient

DEFAULT_SHARDS = 16
MAX_SHARDS = 64
LAYOUT_PK, LAYOUT_RK = "layout", "tables"  # the layout row, in the globals table
_ONE_PARTITION = re.compile(r"\s*PartitionKey eq @pk(\s|$)")


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
    """How many tables the store spreads ``bases`` (its main table first) over, creating them
    first when the store has no layout yet: a store that already has its main table (made
    before shards) keeps its one table; a new one gets ``new_shards``. The layout row is written
    after the tables, so a store that has one has all of them, and two first opens racing agree
    (the second's insert fails and it reads the first's). Not a write of the store's data: no
    lease, no write count."""

    def row() -> Mapping[str, Any] | None:
        try:
            return globals_.get_entity(LAYOUT_PK, LAYOUT_RK)
        except ResourceNotFoundError:
            return None

    found = row()
    if found is not None:
        return layout_shards(found)
    legacy = any(True for _ in service.query_tables("TableName eq @n", parameters={"n": bases[0]}))
    shards = 1 if legacy else new_shards
    for base in bases:
        for name in table_names(base, shards):
            with contextlib.suppress(ResourceExistsError):
                service.create_table(name)
    try:
        globals_.create_entity(layout_entity(shards))
    except ResourceExistsError:
        found = row()
        return layout_shards(found) if found is not None else shards
    return shards


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
        if isinstance(pk, str) and _ONE_PARTITION.match(query_filter):
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
