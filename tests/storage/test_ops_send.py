"""``ops.send``: a one-entity transaction goes as that single operation, and fails the way the
transaction would have (callers tell "changed meanwhile" from other errors by its status)."""

from __future__ import annotations

import pytest
from azure.data.tables import TableTransactionError

from invoicing.storage.ops import create_op, delete_op, merge_if_op, replace_if_op, upsert_op
from invoicing.storage.store import changed_meanwhile


def row(value: str) -> dict[str, str]:
    return {"PartitionKey": "p", "RowKey": "r", "Value": value}


def test_a_single_upsert_writes_its_row(store):
    store.transact(store.globals, [upsert_op(row("a"))])
    assert store.get(store.globals, "p", "r")["Value"] == "a"


def test_a_single_create_of_an_existing_row_fails_as_a_transaction_409(store):
    store.transact(store.globals, [create_op(row("a"))])
    with pytest.raises(TableTransactionError) as caught:
        store.transact(store.globals, [create_op(row("b"))])
    assert caught.value.status_code == 409 and changed_meanwhile(caught.value)
    assert store.get(store.globals, "p", "r")["Value"] == "a"


def test_a_single_guarded_replace_on_a_stale_etag_fails_as_a_transaction_412(store):
    store.transact(store.globals, [upsert_op(row("a"))])
    etag = store.get(store.globals, "p", "r")["_etag"]
    store.transact(store.globals, [replace_if_op(row("b"), etag)])
    for op in (replace_if_op(row("c"), etag), merge_if_op(row("c"), etag)):
        with pytest.raises(TableTransactionError) as caught:
            store.transact(store.globals, [op])
        assert caught.value.status_code == 412 and changed_meanwhile(caught.value)
    assert store.get(store.globals, "p", "r")["Value"] == "b"


def test_a_single_guarded_replace_of_a_missing_row_fails_404_and_creates_nothing(store):
    with pytest.raises(TableTransactionError) as caught:
        store.transact(store.globals, [replace_if_op(row("a"), 'W/"datetime\'2020-01-01\'"')])
    assert caught.value.status_code == 404
    assert store.get(store.globals, "p", "r") is None


def test_a_single_delete_of_a_missing_row_still_fails_404(store):
    """Deletes stay batches: the SDK's own single delete would hide the 404."""
    with pytest.raises(TableTransactionError) as caught:
        store.transact(store.globals, [delete_op(row("a"))])
    assert caught.value.status_code == 404
