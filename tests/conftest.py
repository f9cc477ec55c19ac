"""Session fixtures: one real Azurite for the whole session (S1), a fresh isolated store per test.

Each test gets its own table prefix (``Settings.table_prefix``), hence its own tables and its own
lock container in the shared Azurite: isolated, and far faster than an Azurite per test.
"""

from __future__ import annotations

import os
import uuid

import pytest

# Two tables per store instead of the default sixteen: a new store costs 33 table creations at
# sixteen (~100 ms each store on Azurite), and two already route every contract (the default is
# tested in tests/storage/test_shards.py). Set before any Settings is read, so subprocesses and
# ``Settings.from_env`` of the tests see it too.
os.environ.setdefault("INVOICE_TABLE_SHARDS", "2")

from invoicing.settings import Settings
from invoicing.storage.azurite import Azurite


@pytest.fixture(scope="session")
def azurite():
    with Azurite() as emulator:
        yield emulator


@pytest.fixture
def storage_settings(azurite: Azurite) -> Settings:
    return Settings(
        storage_connection=azurite.connection_string,
        table_prefix="t" + uuid.uuid4().hex[:16],
        lease_seconds=15,
        table_shards=int(os.environ["INVOICE_TABLE_SHARDS"]),
    )


@pytest.fixture
def store(storage_settings: Settings):
    from invoicing.services import open_store

    return open_store(storage_settings)


@pytest.fixture
def storage_env(storage_settings: Settings) -> dict[str, str]:
    """Environment for ``python -m invoicing`` subprocesses talking to this test's store."""
    env = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage",)}
    env.update(
        INVOICING_STORAGE=storage_settings.storage_connection or "",
        INVOICE_TABLE_PREFIX=storage_settings.table_prefix,
        INVOICE_LEASE_SECONDS=str(storage_settings.lease_seconds),
        PYTHONUNBUFFERED="1",
    )
    return env
