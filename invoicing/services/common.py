"""What every storage-backed use case shares: opening the store, holding the run lease, and
fanning work out over a few threads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from invoicing.settings import Settings
from invoicing.storage.errors import StorageNotConfigured, WriteRefused
from invoicing.storage.store import Store

DEFAULT_WORKERS = 4
Progress = Callable[[int, int], None]


def open_store(settings: Settings) -> Store:
    """The store named by the settings (S2), its tables created if missing."""
    if not settings.storage_connection:
        raise StorageNotConfigured()
    try:
        store = Store(settings.storage_connection, settings.table_prefix, settings.table_shards)
    except ValueError:  # the SDK's "connection string is either blank or malformed"
        raise StorageNotConfigured("the storage connection string is malformed") from None
    store.ensure_tables()
    return store


@contextmanager
def leased(store: Store, settings: Settings, what: str) -> Iterator[None]:
    """Hold the run lease (R18) for the block: import and run exclude each other."""
    store.take_lease(settings.lease_seconds, what)
    store.abort.clear()
    try:
        yield
    finally:
        store.drop_lease()


def parallel(
    fn: Callable[[Any], Any], items: Sequence[Any], workers: int, store: Store
) -> list[Any]:
    """``fn`` over ``items`` on a few threads; the first failure stops the others' writes."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]

    def guarded(item: Any) -> Any:
        if store.abort.is_set():
            raise WriteRefused("stopped: another worker of this operation failed")
        try:
            return fn(item)
        except BaseException:
            store.abort.set()
            raise

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(guarded, item) for item in items]
    errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
    if errors:
        real = [exc for exc in errors if not isinstance(exc, WriteRefused)]
        raise (real or errors)[0]
    return [f.result() for f in futures]


def now_text() -> str:
    """The local time as the ledger and the registry record it."""
    return datetime.now().astimezone().isoformat(timespec="seconds")
