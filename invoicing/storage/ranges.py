"""The store's reads of a date range (listings, exports, documents: S8): the invoice index of
the range's invoice dates, the contracts with a commit marker in it, and those rows only, never a
contract's whole history. A mixin of ``Store``, which provides ``query``, ``get`` and
``partition_rows``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any, Protocol

from invoicing.storage import codec, rows
from invoicing.storage.keys import encode_key
from invoicing.storage.partition import Partition
from invoicing.storage.shards import Table


class TableReads(Protocol):
    """What the range reads need of the store (``Store`` provides it)."""

    table: Table
    globals: Table

    def query(
        self,
        client: Table,
        text: str,
        parameters: Mapping[str, Any],
        select: list[str] | None = None,
    ) -> list[dict[str, Any]]: ...

    def get(self, client: Table, pk: str, rk: str) -> dict[str, Any] | None: ...

    def partition_rows(
        self, pk: str, lo: str | None = None, hi: str | None = None
    ) -> list[dict[str, Any]]: ...


class RangeReads:
    """A mixin of ``Store``: each method reads through the ``TableReads`` its ``self`` is."""

    def indexed_invoices(self: TableReads, lo: date, hi: date) -> list[dict[str, Any]]:
        """Invoice index rows (ContractId, InvoiceDate, RowKey) of invoice dates lo..hi: the
        per-day partitions of the range, and the month partitions older stores hold."""
        select = ["RowKey", "ContractId", "InvoiceDate"]
        first, last = rows.index_range(lo, hi)
        found = self.query(
            self.globals,
            "PartitionKey ge @lo and PartitionKey lt @hi",
            {"lo": first, "hi": last},
            select=select,
        )
        if (hi.year - lo.year) * 12 + hi.month - lo.month <= 24:
            months = {(lo.year, lo.month)}
            day = lo
            while (day.year, day.month) != (hi.year, hi.month):
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                months.add((day.year, day.month))
            for year, month in sorted(months):
                found += self.query(
                    self.globals,
                    "PartitionKey eq @pk",
                    {"pk": f"{rows.INDEX_PREFIX}{year:04d}{month:02d}"},
                    select=select,
                )
        else:  # a long range: the month partitions within it come with one range query
            found += [
                r
                for r in self.query(
                    self.globals,
                    "PartitionKey ge @lo and PartitionKey lt @hi",
                    {"lo": f"{rows.INDEX_PREFIX}{lo:%Y%m}", "hi": first},
                    select=select,
                )
            ]
        seen: set[str] = set()
        out = []
        for r in found:
            if r["RowKey"] in seen or not r.get("InvoiceDate"):
                continue
            if lo <= codec.day(r["InvoiceDate"]) <= hi:
                seen.add(r["RowKey"])
                out.append(r)
        return out

    def ran_contracts(self: TableReads, lo: date, hi: date) -> set[str] | None:
        """The contracts with a commit marker on a date of lo..hi (the W index), or None when
        the store holds markers older than that index covers (then every contract may)."""
        since = self.get(self.globals, rows.DAILY_PK, rows.RAN_SINCE_RK)
        if since is None or lo < date.fromisoformat(since["Date"]):
            return None
        first, last = rows.ran_range(lo, hi)
        return {
            r["ContractId"]
            for r in self.query(
                self.globals,
                "PartitionKey ge @lo and PartitionKey lt @hi",
                {"lo": first, "hi": last},
                select=["ContractId"],
            )
        }

    def load_range(
        self: TableReads,
        contract_id: str,
        invoice_ids: Iterable[str],
        span: tuple[date, date] | None,
    ) -> Partition:
        """The rows of the given invoices (details, lines, header), and the markers and RunLog
        parts of the dates of ``span``: range queries over those keys only, not the history."""
        pk = encode_key(contract_id)
        part = Partition(pk)
        groups: dict[str, list[str]] = {}
        for invoice_id in invoice_ids:
            key = encode_key(invoice_id)
            groups.setdefault(invoice_id.rsplit("-", 2)[0], []).append(key)
        wanted = set(invoice_ids)
        for keys in groups.values():
            low, high = min(keys), max(keys)
            for kind in ("D:", "I:", "L:"):
                for e in self.partition_rows(pk, f"{kind}{low}", f"{kind}{high}~"):
                    if e.get("InvoiceId") in wanted:
                        part.add(e)
        if span is not None:
            lo, hi = span
            for first, last in (
                (codec.marker_key(lo), codec.marker_key(hi) + "~"),
                (f"X:{lo:%Y%m%d}", f"X:{hi:%Y%m%d}:~"),
            ):
                for e in self.partition_rows(pk, first, last):
                    part.add(e)
        return part

    def invoice_index(self: TableReads) -> dict[str, str]:
        """The whole invoice index: encoded InvoiceId -> ContractId."""
        prefix = rows.INDEX_PREFIX
        return {
            row["RowKey"]: row["ContractId"]
            for row in self.query(
                self.globals,
                "PartitionKey ge @lo and PartitionKey lt @hi",
                {"lo": prefix, "hi": chr(ord(prefix) + 1)},
            )
        }
