"""``ops.send``: a one-entity transaction goes as that single operation, and fails the way the
transaction would have (callers tell "changed meanwhile" from other errors by its status)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableTransactionError

from invoicing.storage.ops import (
    create_op,
    delete_op,
    merge_if_op,
    replace_if_op,
    send,
    upsert_op,
)
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


class AnswerLostOnce(RequestsTransport):
    """A transport whose first PUT reaches the service and then loses its answer, as a
    connection reset after the write would; it counts the PUTs sent."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        response = super().send(request, **kwargs)
        if request.method == "PUT":
            self.puts += 1
            if self.puts == 1:
                raise ServiceResponseError("connection reset after the write (injected)")
        return response


def test_a_single_write_whose_answer_is_lost_is_not_resent_behind_the_lease_check(
    store, storage_settings
):
    """The SDK would resend a PUT by itself, skipping the lease check, and a guarded one that
    had landed would then fail 412 as if someone changed the row: the error reaches the store,
    whose own retry (upserts only, after a lease check) decides."""
    store.transact(store.globals, [upsert_op(row("a"))])
    etag = store.get(store.globals, "p", "r")["_etag"]
    transport = AnswerLostOnce()
    client = TableClient.from_connection_string(
        storage_settings.storage_connection, store.globals.table_name, transport=transport
    )
    with pytest.raises(ServiceResponseError):
        send(client, [replace_if_op(row("b"), etag)])
    assert transport.puts == 1
    assert store.get(store.globals, "p", "r")["Value"] == "b"  # it had landed


def test_a_single_write_to_a_missing_table_fails_as_a_batch_would(store, storage_settings):
    client = TableClient.from_connection_string(
        storage_settings.storage_connection, store.globals.table_name + "gone"
    )
    with pytest.raises(ResourceNotFoundError) as caught:
        send(client, [upsert_op(row("a"))])
    assert not isinstance(caught.value, TableTransactionError)
