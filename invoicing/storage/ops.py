"""Table operations as the store batches them: upserts, guarded replaces and deletes, chunked into
entity-group transactions of at most 100 operations and a few MB of one partition."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableTransactionError, UpdateMode

from invoicing.storage.shards import Table

MAX_BATCH_OPS = 100
MAX_BATCH_BYTES = 3_000_000  # the service caps a transaction's payload at 4 MiB
Op = tuple[Any, ...]


def entity_size(entity: Mapping[str, Any]) -> int:
    return len(json.dumps({k: str(v) for k, v in entity.items()})) + 64


def chunks(ops: Sequence[Op]) -> Iterable[list[Op]]:
    """Split ops into transactions of <= 100 operations and <= MAX_BATCH_BYTES."""
    current: list[Op] = []
    size = 0
    for op in ops:
        op_size = entity_size(op[1])
        if current and (len(current) >= MAX_BATCH_OPS or size + op_size > MAX_BATCH_BYTES):
            yield current
            current, size = [], 0
        current.append(op)
        size += op_size
    if current:
        yield current


def upsert_op(entity: Mapping[str, Any]) -> Op:
    return ("upsert", clean(entity), {"mode": UpdateMode.REPLACE})


def replace_if_op(entity: Mapping[str, Any], etag: str) -> Op:
    """Replace ``entity`` in a transaction only if unchanged since read (the whole transaction
    fails otherwise: ``TableTransactionError``)."""
    guard = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    return ("update", clean(entity), {"mode": UpdateMode.REPLACE, **guard})


def delete_op(entity: Mapping[str, Any]) -> Op:
    return ("delete", {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"]})


def clean(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if not k.startswith("_") and v is not None}


def create_op(entity: Mapping[str, Any]) -> Op:
    """Insert ``entity`` in a transaction only if its row does not exist (the whole transaction
    fails otherwise)."""
    return ("create", clean(entity))


def merge_if_op(entity: Mapping[str, Any], etag: str) -> Op:
    """Merge ``entity``'s properties in a transaction only if the row is unchanged since read."""
    guard = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    return ("update", clean(entity), {"mode": UpdateMode.MERGE, **guard})


def merge_op(entity: Mapping[str, Any]) -> Op:
    """Merge ``entity``'s properties into its row, creating it if missing."""
    return ("upsert", clean(entity), {"mode": UpdateMode.MERGE})


def send(client: Table, ops: Sequence[Op]) -> None:
    """Send one atomic transaction. A single upsert, insert or update goes as that one
    operation, not as a batch: a one-entity write is atomic by itself, and the SDK's multipart
    batch costs ~8 ms of client CPU against ~2 ms (most index and fence writes are one entity).
    Its errors about the entity are raised as a transaction's would be (``TableTransactionError``,
    same status), so callers keep one contract; a missing table stays the SDK's own error, as a
    batch gives it. Deletes always go as batches: the SDK's single delete hides a 404, which
    callers read as "the row changed meanwhile".

    The SDK retries it as it retries a batch, and no more (``retry_read=0``): a connection that
    failed before the request went out, or a 500/503/504 answer, is retried; an answer lost
    after the request went out is not. A batch is a POST, which the SDK never resends then, but
    a single upsert or update is a PUT, which it would resend by itself, without the lease
    check every write needs (R18), and a guarded PUT that had landed would come back as a 412,
    "changed meanwhile", for a write that succeeded. ``Store.transact`` decides those retries,
    as for batches."""
    if len(ops) == 1 and ops[0][0] in ("upsert", "create", "update"):
        kind, entity, *rest = ops[0]
        options = {**(rest[0] if rest else {}), "retry_read": 0}
        try:
            if kind == "upsert":
                client.upsert_entity(entity, **options)
            elif kind == "create":
                client.create_entity(entity, retry_read=0)
            else:
                client.update_entity(entity, **options)
        except HttpResponseError as exc:
            headers = getattr(exc.response, "headers", None) or {}
            if headers.get("x-ms-error-code") == "TableNotFound":
                raise
            raise TableTransactionError(message=exc.message, response=exc.response) from exc
        return
    client.submit_transaction(list(ops))
