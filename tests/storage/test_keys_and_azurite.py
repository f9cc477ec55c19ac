"""Key encoding (S3) and the Azurite fixture itself (S1): nothing left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from invoicing.storage.azurite import Azurite
from invoicing.storage.keys import MAX_ENCODED, decode_key, encode_key

FORBIDDEN = set("/\\#?'\"%+ ") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}


@given(st.text(min_size=1, max_size=200))
def test_any_id_encodes_to_a_safe_key_that_decodes_back(text):
    key = encode_key(text)
    assert not FORBIDDEN & set(key)
    assert key.isascii()
    if not key.startswith("~H"):
        assert decode_key(key) == text


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_distinct_ids_never_share_a_key(a, b):
    if a != b:
        assert encode_key(a) != encode_key(b)


def test_ids_too_long_for_a_key_are_hashed_deterministically():
    long_id = "é" * 1000
    assert encode_key(long_id) == encode_key(long_id)
    assert len(encode_key(long_id)) <= MAX_ENCODED
    assert encode_key(long_id) != encode_key(long_id + "x")
    assert encode_key("A/B #1?") == "A~2FB~20~231~3F"


def test_azurite_stops_its_whole_process_group_and_removes_its_folder():
    azurite = Azurite().start()
    pid, folder = azurite.pid, azurite.folder
    assert pid and folder and Path(folder).is_dir()
    assert "TableEndpoint=http://127.0.0.1:" in azurite.connection_string
    azurite.stop()
    assert not Path(folder).exists()
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        pass
    else:  # pragma: no cover - the assertion below reports it
        os.killpg(pid, signal.SIGKILL)
        raise AssertionError("Azurite's process group outlived stop()")


def test_an_in_memory_azurite_keeps_nothing_on_disk_and_gets_the_heap_asked_for():
    from azure.data.tables import TableServiceClient

    with Azurite(in_memory=True, heap_mb=1536) as azurite:
        table = TableServiceClient.from_connection_string(azurite.connection_string)
        client = table.create_table("memory")
        client.upsert_entity({"PartitionKey": "p", "RowKey": "r", "Value": "kept"})
        assert client.get_entity("p", "r")["Value"] == "kept"
        assert azurite.folder is not None
        assert os.listdir(azurite.folder) == []  # no __azurite_db_table__.json rewritten
        with open(f"/proc/{azurite.pid}/environ", "rb") as environ:
            assert b"--max-old-space-size=1536" in environ.read()
