"""The Table Storage store (S3, S4, S6) and the crash-safe commit protocol of the daily run (R17).

Tables: see ``storage.rows`` (what each partition of ``<prefix>globals`` holds).

The commit protocol of a run (per contract C and run date D)
------------------------------------------------------------
Invoice ids are deterministic (``engine.invoice_id``), so any retry writes the same rows.
An invoice is *live* when its header's status is Draft or Confirmed; a header written but not yet
committed has status ``Pending`` and is not live: whatever it holds is free to be planned again.

1. The ledger entry of every date to run is written ``started`` before any contract is touched.
2. Only the contracts the due-date index names for the dates are read (S8: a contract with no
   line due on a date writes nothing for it). C's partition is read once (one query). A date D
   whose marker ``R:D`` exists is done: skipped.
   (Contracts go in rounds of 100: each round is planned, then indexed in bulk, then committed.)
   First C's ``N:state`` row is read (one point read; ``storage.snapshot``). When it is valid it
   is the contract's state (items on live invoices, amount used per not-to-exceed line, shares
   to go out again), and only C's open work is read: its work-table partition (configuration
   and open items) and the markers of the dates to run, never its history. Otherwise the whole
   partition is read, the state comes from its invoices through
   ``engine.state_from_invoices`` (Pending leftovers are ignored), and the work partition is
   rebuilt from it before step 5.
3. Each remaining date is planned in memory, in order (``engine.plan_contract``), each plan's
   state feeding the next. A date with no due line writes nothing at all.
4. Index entries (InvoiceId -> ContractId) of the planned invoices are upserted, in bulk for the
   round, before any of them is committed (harmless if the run stops before its commit: an index
   entry whose header is missing or Pending answers "not found").
5. Dates are then committed in date order. A date whose rows (headers, lines, details, marker,
   RunLog parts) fit in one entity-group transaction, with no leftover to clean, is written as
   ONE transaction with its headers already Draft: atomic, so it is the commit. Consecutive small
   dates share a transaction (still atomic as a whole). A larger date goes through:
   a. delete the Pending leftovers of (C, D) that the new plan does not contain (details and lines
      first, headers last, so a line or detail row never outlives its header);
   b. upsert the headers as Pending, then lines and details (chunks of <= 100);
   c. one final transaction flips the headers to Draft and writes the marker ``R:D`` (and the
      RunLog parts when they fit; otherwise they were written before step c): the commit point.
   A header never carries more than 50 customers (the reader caps customers per contract), so the
   final transaction always fits. C's new ``N:state`` goes in C's last transaction, conditional
   on the ETag read in step 2 (with several transactions, the first write makes it stale on that
   ETag and the last is conditional on the new one): if anything changed C's state meanwhile (a
   cancel, a credit, an import, another worker) the commit fails whole and C is redone. Then the
   work rows of the items now invoiced are swept.
6. After every contract, the ledger entries are written ``completed`` with their counts.

A crash anywhere leaves each (C, D) either committed (marker + Draft headers, atomically) or not
(no marker; maybe Pending rows). The next run redoes every started-but-not-completed date before
later ones; committed (C, D) are skipped, the others are re-planned from the live state and
overwrite/delete their leftovers, giving the same invoices as one clean run.

Every write passes ``Store.before_write()``: the lease check (a run that lost its lease stops before
its next write) and, for tests only, ``write_hook`` (a seam that counts writes and can fail the
k-th one to simulate a crash).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from invoicing.model import Party
from invoicing.storage import codec, due, rows, snapshot
from invoicing.storage.errors import WriteRefused
from invoicing.storage.keys import encode_key
from invoicing.storage.lease import Lease, lock_blob
from invoicing.storage.ops import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from invoicing.storage.ops import MAX_BATCH_OPS as MAX_BATCH_OPS
from invoicing.storage.ops import Op as Op
from invoicing.storage.ops import chunks as chunks
from invoicing.storage.ops import clean as _clean
from invoicing.storage.ops import delete_op as delete_op
from invoicing.storage.ops import entity_size as entity_size
from invoicing.storage.ops import replace_if_op as replace_if_op
from invoicing.storage.ops import send
from invoicing.storage.ops import upsert_op as upsert_op
from invoicing.storage.partition import Partition as Partition
from invoicing.storage.ranges import RangeReads
from invoicing.storage.shards import DEFAULT_SHARDS, ShardedTable, Table, read_layout, strays
from invoicing.storage.shards import table_names as table_names


class Store(RangeReads):
    """The tables and the lock blob of one deployment (``prefix``), and the write discipline."""

    def __init__(self, connection: str, prefix: str = "invoicing", shards: int = DEFAULT_SHARDS):
        self.connection = connection
        self.prefix = prefix
        self.new_shards = shards  # the layout of a store created by ``ensure_tables``
        # azure-core's default retries (10, backing off up to 120 s) could send a write cleared
        # by the lease check long after the lease might have expired (R18): a few short ones,
        # and ``transact`` retries an idempotent transaction itself, after a new lease check
        self.service = TableServiceClient.from_connection_string(
            connection, retry_total=3, retry_backoff_factor=0.5, retry_backoff_max=4
        )
        # the contracts' partitions, each whole in one of the layout's tables (``shards``)
        self.table = ShardedTable(prefix)
        self.globals: TableClient = self.service.get_table_client(prefix + "globals")
        # each contract's configuration and open items, apart from its history (``snapshot``)
        self.work = ShardedTable(prefix + "work")
        # The blob SDK's default retry waits 15 s, then 18 s, ... (84 s to give up on a refused
        # connection): far longer than a lease lives. A few short retries fit inside one.
        self.blobs = BlobServiceClient.from_connection_string(
            connection,
            retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3),
            connection_timeout=10,
        )
        self.lock_container = f"{prefix.lower()}-locks"
        self.lease: Lease | None = None
        # Test seam: called with a label before every write; raising simulates a crash there.
        self.write_hook: Callable[[str], None] | None = None
        self.abort = threading.Event()  # set when a worker failed: the others stop writing
        self._writes = 0
        self._count_lock = threading.Lock()
        # the store's own request counts (S8 tests and the benchmark assert on them)
        self.reads = 0  # entities returned by queries and point reads
        self.queries = 0  # queries and point reads sent
        self.loads: list[str] = []  # ContractIds whose partition ``load`` read, in order

    # ---- setup ---------------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create the globals table if missing, then read the store's layout (``shards``),
        creating its tables when it has none."""
        with contextlib.suppress(ResourceExistsError):
            self.service.create_table(self.prefix + "globals")
        bases = (self.table.base, self.work.base)
        shards = read_layout(self.service, self.globals, bases, self.new_shards)
        for sharded in (self.table, self.work):
            names = table_names(sharded.base, shards)
            sharded.use([self.service.get_table_client(n) for n in names])

    def stray_tables(self) -> list[str]:
        """Tables outside the store's layout that hold rows (``shards.strays``)."""
        return strays(self.service, (self.table.base, self.work.base), self.table.shards)

    def take_lease(self, seconds: int, what: str) -> Lease:
        blob = lock_blob(self.blobs, self.lock_container)
        lease = Lease(blob, seconds, what).acquire()
        self.lease = lease
        return lease

    def drop_lease(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()

    def lease_state(self) -> str:
        """``leased`` when some run holds the lock blob's lease now, else ``available``."""
        try:
            props = self.blobs.get_blob_client(
                self.lock_container, "daily-run"
            ).get_blob_properties()
        except ResourceNotFoundError:
            return "available"
        return str(props.lease.state or "available")

    # ---- writes --------------------------------------------------------------------------------

    @property
    def writes(self) -> int:
        return self._writes

    def before_write(self, label: str) -> None:
        if self.abort.is_set():
            raise WriteRefused("stopped: another worker of this run failed")
        if self.lease is not None:
            self.lease.check()
        with self._count_lock:
            self._writes += 1
        if self.write_hook is not None:
            self.write_hook(label)

    def transact(self, client: Table, ops: Sequence[Op], label: str = "batch") -> None:
        """One atomic entity-group transaction (one partition, <= 100 ops)."""
        if not ops:
            return
        if len(ops) > MAX_BATCH_OPS:
            raise ValueError(f"{len(ops)} operations do not fit one transaction")
        self.before_write(label)
        idempotent = all(op[0] == "upsert" for op in ops)
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                send(client, ops)
                return
            except (ServiceRequestError, ServiceResponseError, HttpResponseError) as exc:
                transient = not isinstance(exc, HttpResponseError) or exc.status_code in (
                    500,
                    503,
                )
                if not (idempotent and transient) or attempt == TRANSIENT_RETRIES:
                    raise
                # an upsert-only transaction writes the same rows again: safe to retry, after
                # the same lease check as any write (R18)
                time.sleep(0.2 * 2**attempt)
                self.before_write(label + "-retry")

    def submit(
        self, client: Table, ops: Iterable[Op], label: str = "batch", *, workers: int = 1
    ) -> None:
        """Chunked transactions, in order; each op's entity must carry its PartitionKey.

        Operations are grouped per partition keeping their order within a partition; each
        chunk is atomic, the whole is not.
        """
        by_pk: dict[str, list[Op]] = {}
        for op in ops:
            by_pk.setdefault(op[1]["PartitionKey"], []).append(op)
        if workers > 1 and len(by_pk) > 1:  # partitions are independent: a few at a time

            def one(pk_ops: list[Op]) -> None:
                for chunk in chunks(pk_ops):
                    self.transact(client, chunk, label)

            _threads(one, list(by_pk.values()), workers)
            return
        for pk_ops in by_pk.values():
            for chunk in chunks(pk_ops):
                self.transact(client, chunk, label)

    def upsert(self, client: Table, entity: Mapping[str, Any], label: str = "upsert") -> None:
        self.before_write(label)
        client.upsert_entity(_clean(entity), mode=UpdateMode.REPLACE)

    def replace_if(
        self,
        client: Table,
        entity: Mapping[str, Any],
        etag: str,
        label: str,
        *,
        stale_state: str | None = None,
    ) -> Mapping[str, Any]:
        """Replace ``entity`` only if unchanged since read (``ResourceModifiedError`` otherwise).

        ``stale_state`` (a reason): the change alters what the contract has invoiced, so its
        ``N:state`` is made stale in the same atomic transaction (``snapshot``)."""
        if stale_state is not None:
            stale = snapshot.stale_entity(entity["PartitionKey"], stale_state)
            try:
                self.transact(client, [replace_if_op(entity, etag), upsert_op(stale)], label)
            except TableTransactionError as exc:
                if changed_meanwhile(exc):
                    raise ResourceModifiedError(str(exc)) from exc
                raise
            return {}
        self.before_write(label)
        return client.update_entity(
            _clean(entity),
            mode=UpdateMode.REPLACE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )

    def create(
        self, client: Table, entity: Mapping[str, Any], label: str = "create"
    ) -> Mapping[str, Any]:
        self.before_write(label)
        return client.create_entity(_clean(entity))

    # ---- reads ---------------------------------------------------------------------------------

    def query(
        self,
        client: Table,
        text: str,
        parameters: Mapping[str, Any],
        select: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        found = [
            dict(e) | {"_etag": e.metadata.get("etag")}
            for e in client.query_entities(text, parameters=dict(parameters), select=select)
        ]
        sent = len(client.targets(text, parameters)) if isinstance(client, ShardedTable) else 1
        with self._count_lock:
            self.queries += sent
            self.reads += len(found)
        return found

    def get(self, client: Table, pk: str, rk: str) -> dict[str, Any] | None:
        with self._count_lock:
            self.queries += 1
        try:
            e = client.get_entity(pk, rk)
        except ResourceNotFoundError:
            return None
        with self._count_lock:
            self.reads += 1
        return dict(e) | {"_etag": e.metadata.get("etag")}

    def partition_rows(
        self, pk: str, lo: str | None = None, hi: str | None = None
    ) -> list[dict[str, Any]]:
        text = "PartitionKey eq @pk"
        params: dict[str, Any] = {"pk": pk}
        if lo is not None:
            text += " and RowKey ge @lo"
            params["lo"] = lo
        if hi is not None:
            text += " and RowKey lt @hi"
            params["hi"] = hi
        return self.query(self.table, text, params)

    def load(self, contract_id: str, *, with_log: bool = False) -> Partition:
        """A contract's partition in one query; its RunLog (the ``X:`` parts, and the logs
        inline in the markers) only when asked."""
        pk = encode_key(contract_id)
        part = Partition(pk)
        with self._count_lock:
            self.loads.append(contract_id)
        for e in self.partition_rows(pk, hi=None if with_log else "X"):
            if not with_log and e["RowKey"].startswith("R:"):
                e = rows.without_log(e)
            part.add(e)
        return part

    def state_row(self, contract_id: str) -> dict[str, Any] | None:
        """The contract's ``N:state`` row (with its ETag): one point read (``snapshot``)."""
        return self.get(self.table, encode_key(contract_id), snapshot.STATE_KEY)

    def importing(self, contract_id: str) -> bool:
        """Whether the contract's registry row says an import of it is under way or never
        finished (S5a): one point read."""
        row = self.get(self.globals, rows.REGISTRY, encode_key(contract_id))
        return bool(row and row.get("Importing"))

    def work_rows(self, contract_id: str) -> list[dict[str, Any]]:
        """The contract's work partition: its configuration and open items (``snapshot``)."""
        return self.query(self.work, "PartitionKey eq @pk", {"pk": encode_key(contract_id)})

    def load_open(self, contract_id: str, committed: Sequence[date]) -> Partition | None:
        """What a run needs of a contract whose ``N:state`` is valid: the work partition (one
        query of a table without history) and the commit markers of ``committed`` (the run's
        dates the state says were committed: point reads, usually none), never its invoices.
        None when one of those markers is missing (the state cannot be trusted then)."""
        pk = encode_key(contract_id)
        part = Partition(pk)
        with self._count_lock:
            self.loads.append(contract_id)
        for e in self.work_rows(contract_id):
            part.add(e)
        for d in sorted(set(committed)):
            marker = self.get(self.table, pk, codec.marker_key(d))
            if marker is None:
                return None
            part.add(marker)
        return part

    def load_invoices(self, contract_id: str, log_span: tuple[date, date] | None) -> Partition:
        """Invoice rows (details, headers, lines), markers and the RunLog parts of a date span.

        One query per contract (fewer round trips beat skipping the item rows it also returns:
        on Azurite every query costs a scan of the table).
        """
        pk = encode_key(contract_id)
        part = Partition(pk)
        lo = hi = ""
        if log_span is not None:
            lo, hi = f"X:{log_span[0]:%Y%m%d}", f"X:{log_span[1]:%Y%m%d}:~"
        for e in self.partition_rows(pk, lo="D:"):
            kind = e["RowKey"][:2]
            if kind in ("T:", "M:") or (kind == "X:" and not lo <= e["RowKey"] <= hi):
                continue
            part.add(e)
        return part

    def contracts(self) -> list[tuple[str, int]]:
        """Every imported contract as (ContractId, Order), in import order."""
        return sorted(
            ((r["ContractId"], int(r.get("Order") or 0)) for r in self.registry()),
            key=lambda r: r[1],
        )

    def transaction_keys(self) -> list[tuple[str, str]]:
        """(PartitionKey, RowKey) of every stored transaction: one keys-only scan."""
        lo, hi = codec.TRANSACTION_KEYS
        return [
            (row["PartitionKey"], row["RowKey"])
            for row in self.query(
                self.table,
                "RowKey ge @lo and RowKey lt @hi",
                {"lo": lo, "hi": hi},
                select=["PartitionKey", "RowKey"],
            )
        ]

    def transaction_owners(
        self, transaction_ids: Iterable[str], workers: int = 4
    ) -> dict[str, str]:
        """TransactionId -> its ContractId in the transaction index, for the ids stored there.

        Point reads when there are few ids; otherwise one query per index partition the ids
        fall in (256 at most: a bulk upload into a young store costs a few hundred queries)."""
        ids = sorted(set(transaction_ids))
        if not ids:
            return {}
        found: dict[str, str] = {}
        if len(ids) <= POINT_LOOKUPS:

            def one(tid: str) -> tuple[str, str | None]:
                row = self.get(self.globals, rows.txn_index_pk(tid), encode_key(tid))
                return tid, None if row is None else row["ContractId"]

            for tid, owner in _threads(one, ids, workers):
                if owner is not None:
                    found[tid] = owner
            return found
        wanted = set(ids)
        buckets = sorted({rows.txn_index_pk(t) for t in ids})

        def bucket(pk: str) -> list[dict[str, Any]]:
            return self.query(
                self.globals,
                "PartitionKey eq @pk",
                {"pk": pk},
                select=["TransactionId", "ContractId"],
            )

        for found_rows in _threads(bucket, buckets, workers):
            for row in found_rows:
                if row["TransactionId"] in wanted:
                    found[row["TransactionId"]] = row["ContractId"]
        return found

    def invoice_entities(
        self, contract_id: str, invoice_id: str
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
        """One invoice's header (None if absent), lines and details, by point and range reads."""
        pk = encode_key(contract_id)
        header = self.get(self.table, pk, codec.header_key(invoice_id))
        if header is None:
            return None, [], []
        lines = self.partition_rows(pk, *codec.line_keys(invoice_id))
        details = self.partition_rows(pk, *codec.detail_keys(invoice_id))
        return header, lines, details

    def header(self, contract_id: str, invoice_id: str) -> dict[str, Any] | None:
        """One invoice header (with its ETag), by point read."""
        return self.get(self.table, encode_key(contract_id), codec.header_key(invoice_id))

    def counter_row(self, series: str = rows.COUNTER_RK) -> dict[str, Any] | None:
        """A number series' counter as stored (None before its first number): one point read,
        which is also how health (H2) checks that storage answers."""
        return self.get(self.globals, rows.COUNTER_PK, series)

    def counter(self, series: str = rows.COUNTER_RK) -> dict[str, Any]:
        """A number series' counter (invoices, credit notes), created (at 0) if missing."""
        row = self.get(self.globals, rows.COUNTER_PK, series)
        if row is not None:
            return row
        with contextlib.suppress(ResourceExistsError):  # another confirm created it first
            self.create(self.globals, rows.counter_entity(0, series=series), "counter-create")
        row = self.get(self.globals, rows.COUNTER_PK, series)
        assert row is not None
        return row

    def registry(self) -> list[dict[str, Any]]:
        """Registry rows: ContractId, Order, and ``Importing`` while its import is unfinished."""
        return self.query(self.globals, "PartitionKey eq @pk", {"pk": rows.REGISTRY})

    def due_contracts(self, days: Sequence[date]) -> set[str]:
        """The ContractIds the due-date index (``due``) says have something due on one of
        ``days``."""
        return set().union(*self.due_by_date(days).values())

    def due_by_date(self, days: Iterable[date]) -> dict[date, set[str]]:
        """For each of ``days``, the ContractIds the due-date index (``due``) says have
        something due on it, in as few queries as the days allow: one range query per stretch
        of consecutive days, the patterns, and the members of the patterns that hit one of the
        days (so that a dispatch of 60 dates does not query 60 times)."""
        wanted = sorted(set(days))
        found: dict[date, set[str]] = {d: set() for d in wanted}
        by_pk = {due.date_pk(d): d for d in wanted}
        for lo, hi in _stretches(wanted):
            for row in self.query(
                self.globals,
                "PartitionKey ge @lo and PartitionKey le @hi",
                {"lo": due.date_pk(lo), "hi": due.date_pk(hi)},
                select=["PartitionKey", "ContractId"],
            ):
                day = by_pk.get(row["PartitionKey"])
                if day is not None:
                    found[day].add(row["ContractId"])
        patterns = self.query(self.globals, "PartitionKey eq @pk", {"pk": due.PATTERNS})
        for row in patterns:
            rep = due.representative(row["Schedule"])
            hits = [d for d in wanted if rep.is_run_date(d)]
            if not hits:
                continue
            for member in self.query(
                self.globals,
                "PartitionKey eq @pk",
                {"pk": due.pattern_pk(row["RowKey"])},
                select=["ContractId", "Spans"],
            ):
                for d in due.days_in_spans(member.get("Spans") or "[]", hits):
                    found[d].add(member["ContractId"])
        return found

    def delete_if_present(self, client: Table, pk: str, rk: str, label: str) -> None:
        self.before_write(label)
        with contextlib.suppress(ResourceNotFoundError):
            client.delete_entity(pk, rk)

    def unfinished_imports(self) -> dict[str, str]:
        """ContractId -> when its unfinished import started (S5a)."""
        return {r["ContractId"]: r["Importing"] for r in self.registry() if r.get("Importing")}

    def seller(self) -> Party | None:
        """The seller of the latest upload that had a Seller sheet (W11), if any."""
        row = self.get(self.globals, rows.SELLER_PK, rows.SELLER_RK)
        return None if row is None else rows.seller_from(row)

    def first_daily_run(self) -> date | None:
        row = self.get(self.globals, rows.DAILY_PK, rows.FIRST_DAILY_RK)
        return None if row is None else date.fromisoformat(row["Date"])

    def note_first_daily_run(self, day: date) -> date:
        """Record ``day`` as the store's first daily run unless one is recorded (R19)."""
        with contextlib.suppress(ResourceExistsError):
            self.create(self.globals, rows.first_daily_entity(day), "first-daily-run")
        first = self.first_daily_run()
        return day if first is None else first

    def ledger(self) -> dict[date, dict[str, Any]]:
        found = self.query(self.globals, "PartitionKey eq @pk", {"pk": rows.LEDGER})
        return {date.fromisoformat(r["RowKey"]): r for r in found}

    def index_lookup(self, invoice_id: str) -> str | None:
        pk = rows.index_pk(invoice_id)
        if pk is None:
            return None
        row = self.get(self.globals, pk, encode_key(invoice_id))
        if row is None:  # indexed before the per-day partitions
            row = self.get(self.globals, pk[:7], encode_key(invoice_id))
        return None if row is None else row["ContractId"]

    def note_ran_index(self, fresh: bool, today: date) -> None:
        """Record from which run date every marker has its W row (once): any date when the
        store has never run (``fresh``), else the dates after today (markers committed before
        could not be of a later date: a run never runs a future date)."""
        if self.get(self.globals, rows.DAILY_PK, rows.RAN_SINCE_RK) is not None:
            return
        since = date.min if fresh else today + timedelta(days=1)
        with contextlib.suppress(ResourceExistsError):
            self.create(self.globals, rows.ran_since_entity(since), "ran-index-since")



TRANSIENT_RETRIES = 3  # an upsert-only transaction that met a reset connection or a 500/503
POINT_LOOKUPS = 2000


def changed_meanwhile(exc: TableTransactionError) -> bool:
    """A transaction failed on its ETag condition (412) or on a create that found its row
    (409): someone changed the rows meanwhile, not a problem with its content."""
    code = getattr(exc, "status_code", None)
    text = str(exc)
    return (
        code in (409, 412)
        or "UpdateConditionNotSatisfied" in text
        or "EntityAlreadyExists" in text
    )  # up to this many ids, the transaction index is read by point reads


def _threads(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _stretches(days: Sequence[date]) -> list[tuple[date, date]]:
    """Sorted days as (first, last) stretches of consecutive days."""
    out: list[tuple[date, date]] = []
    for d in days:
        if out and (d - out[-1][1]).days == 1:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out

