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
