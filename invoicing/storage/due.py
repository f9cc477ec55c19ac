"""The due-date index (S8): which contracts have something due on which run date.

Import maintains it so that a run of date D loads only the contracts with a line due on D
instead of every partition. It lives in the globals table:

* ``due:D<YYYYMMDD>`` / ``encode_key(ContractId)``: the contract has an explicit schedule run
  date or a milestone date (of any line: a superset is harmless) on that day. These dates are
  finite: they are rows of the workbook. The dates of a contract's uncommitted (Pending) invoice
  rows are added too, so that a run still finds and cleans them after an import moved the
  schedule away.
* ``due:P`` / ``<pattern>``: every distinct *pattern* of the generated schedules (a generated
  schedule stripped of its first and last run dates, see ``pattern_of``), with the schedule doc
  of a representative that answers "is D a run date of this pattern".
* ``due:G<pattern>`` / ``encode_key(ContractId)``: the contracts with a line on that pattern and
  the spans [first, last] of those lines.

So a run of D reads the pattern rows (a handful: schedules repeat across contracts), the contract
rows of the patterns that hit D and of D's explicit partition: rows read follow what is due, not
what is stored, and an unbounded schedule costs one row per contract, never one per date.

The contract's partition keeps what it put in the index (row ``N:due``), so the next import
removes what the new configuration no longer needs. A contract whose registry row does not say
``Due`` (imported before the index existed, or with its import unfinished) is loaded by every
run, as before: the index can only narrow what is certainly not due.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from invoicing.model import BillingMethod, Contract
from invoicing.schedule import ExplicitSchedule, Frequency, GeneratedSchedule
from invoicing.storage import codec
from invoicing.storage.keys import encode_key

PREFIX = "due:"
PATTERNS = PREFIX + "P"
STATE_KEY = "N:due"  # in the contract's partition: what the contract put in the index
_EPOCH = date(1, 1, 1)


def date_pk(day: date) -> str:
    return f"{PREFIX}D{day:%Y%m%d}"


def pattern_pk(pattern: str) -> str:
    return f"{PREFIX}G{pattern}"


@dataclass(frozen=True)
class DueIndex:
    """One contract's index: explicit dates, and per pattern its spans (first, last or None)."""

    dates: frozenset[date]
    patterns: Mapping[str, tuple[tuple[date, date | None], ...]]
    docs: Mapping[str, dict[str, Any]]  # pattern -> representative schedule doc

    def state_doc(self) -> dict[str, Any]:
        """What the contract put in the index, spans included (a moved FirstRunDate must
        rewrite its rows)."""
        return {
            "dates": sorted(d.isoformat() for d in self.dates),
            "patterns": {
                key: [[a.isoformat(), b.isoformat() if b else None] for a, b in spans]
                for key, spans in sorted(self.patterns.items())
            },
        }


def pattern_of(schedule: GeneratedSchedule) -> tuple[str, GeneratedSchedule]:
    """(pattern key, representative) of a generated schedule.

    The representative has the same run dates as ``schedule`` on every day within
    [schedule.first, schedule.last]: only what the rule's arithmetic reads of ``first`` is kept
    (nothing for Daily, Weekly, Monthly and Semimonthly; the month modulo 3 for Quarterly; the
    anchor modulo 14 days for Biweekly; everything for an RRULE, expanded from its start)."""
    if schedule.rrule is not None:
        rep = replace(schedule, last=None)
    elif schedule.frequency is Frequency.BIWEEKLY:
        anchor = schedule.first
        assert schedule.weekday is not None
        while anchor.weekday() != schedule.weekday.weekday:
            anchor += timedelta(days=1)
        rep = replace(
            schedule, first=_EPOCH + timedelta(days=(anchor - _EPOCH).days % 14), last=None
        )
    elif schedule.frequency is Frequency.QUARTERLY:
        rep = replace(schedule, first=date(1, (schedule.first.month - 1) % 3 + 1, 1), last=None)
    else:
        rep = replace(schedule, first=_EPOCH, last=None)
    doc = codec.schedule_doc(rep)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20], rep


def contract_index(contract: Contract, extra_dates: Iterable[date] = ()) -> DueIndex:
    """Where ``contract`` (its lines, and its milestones: stored and uploaded) is due."""
    dates: set[date] = set(extra_dates)
    patterns: dict[str, list[tuple[date, date | None]]] = {}
    docs: dict[str, dict[str, Any]] = {}
    dates.update(m.date for m in contract.milestones)
    for line in contract.lines:
        if line.billing_method is BillingMethod.FIXED_PRICE:
            continue  # due on its milestones' dates (above)
        schedule = line.schedule
        if isinstance(schedule, ExplicitSchedule):
            dates.update(row.run_date for row in schedule.rows)
        elif isinstance(schedule, GeneratedSchedule):
            key, rep = pattern_of(schedule)
            docs[key] = codec.schedule_doc(rep)
            span = (schedule.first, schedule.last)
            if span not in patterns.setdefault(key, []):
                patterns[key].append(span)
    return DueIndex(
        frozenset(dates), {k: tuple(sorted(v, key=_span_key)) for k, v in patterns.items()}, docs
    )


def _span_key(span: tuple[date, date | None]) -> tuple[date, date]:
    return span[0], span[1] or date.max


def index_entities(contract_id: str, index: DueIndex) -> list[dict[str, Any]]:
    """The globals rows of a contract's index (pattern rows included: shared, idempotent)."""
    rk = encode_key(contract_id)
    out: list[dict[str, Any]] = [
        {"PartitionKey": date_pk(d), "RowKey": rk, "ContractId": contract_id}
        for d in sorted(index.dates)
    ]
    spans = index.state_doc()["patterns"]
    for key in sorted(index.patterns):
        out.append(
            {
                "PartitionKey": pattern_pk(key),
                "RowKey": rk,
                "ContractId": contract_id,
                "Spans": json.dumps(spans[key]),
            }
        )
        out.append(
            {
                "PartitionKey": PATTERNS,
                "RowKey": key,
                "Schedule": json.dumps(index.docs[key], sort_keys=True),
            }
        )
    return out


def stale_keys(
    contract_id: str, old: Mapping[str, Any] | None, new: DueIndex
) -> list[tuple[str, str]]:
    """(PartitionKey, RowKey) of the contract's rows the previous index had and ``new`` has not."""
    if old is None:
        return []
    rk = encode_key(contract_id)
    keys = [
        (date_pk(codec.day(d)), rk) for d in old.get("dates", ()) if codec.day(d) not in new.dates
    ]
    keys += [(pattern_pk(p), rk) for p in old.get("patterns", {}) if p not in new.patterns]
    return keys


def state_entity(pk: str, index: DueIndex) -> dict[str, Any]:
    return {"PartitionKey": pk, "RowKey": STATE_KEY, **codec.pack(index.state_doc(), "due index")}


def state_from(entity: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if entity is None:
        return None
    try:
        doc = codec.unpack(entity)
    except (ValueError, KeyError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def representative(doc_text: str) -> GeneratedSchedule:
    schedule = codec.schedule_from_doc(json.loads(doc_text))
    assert isinstance(schedule, GeneratedSchedule)
    return schedule


def spans_hit(spans_text: str, days: Iterable[date]) -> bool:
    return bool(days_in_spans(spans_text, days))


def days_in_spans(spans_text: str, days: Iterable[date]) -> list[date]:
    """Those of ``days`` inside one of the stored spans (``[[from, to or null], ...]``)."""
    spans = [
        (codec.day(a), codec.day(b) if b else date.max) for a, b in json.loads(spans_text or "[]")
    ]
    return [d for d in days if any(a <= d <= b for a, b in spans)]
