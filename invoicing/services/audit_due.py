"""Audit of the due-date index (S7, S8): a wrong "not due" would skip billing silently.

A run of date D loads only the contracts the index (``storage.due``) names for D, so for every
contract the registry marks indexed this check recomputes, from what the store holds of it (its
configuration rows, its milestone rows, the dates of its Pending invoice rows), what the index
must hold, and compares it with what the index holds (the date rows, the pattern membership rows
with their spans, the pattern rows themselves) and with the contract's ``N:due`` record (what its
last import put in the index, which the next import uses to remove stale rows).

* *missing* (the dangerous way): a date or a pattern span the configuration needs and the index
  does not give, named with the first run date a run would skip the contract on;
* *extra*: rows nothing explains (a run loads the contract for nothing; no import removes them);
* a ``N:due`` record that disagrees with the rows.

Cost: a fixed number of queries whatever the number of contracts and dates (the registry, the
whole index in one range of the globals table, and one scan of each of the contracts' tables,
``storage.shards``, for the configuration, milestone, ``N:due`` and Pending header rows only),
each paged by the SDK.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from invoicing.model import BillingMethod, Contract
from invoicing.schedule import ExplicitSchedule, GeneratedSchedule
from invoicing.storage import codec, due, rows
from invoicing.storage.keys import encode_key
from invoicing.storage.store import Store

Span = tuple[date, date]  # inclusive; an open end is date.max
HORIZON = timedelta(days=3700)  # a generated schedule runs at least once in ten years (L5)
_DATE_PREFIX = due.PREFIX + "D"
_GROUP_PREFIX = due.PREFIX + "G"


@dataclass
class Held:
    """What the index holds for one contract (RowKey = its encoded id)."""

    contract_id: str
    dates: set[date] = field(default_factory=set)
    patterns: dict[str, list[Span]] = field(default_factory=dict)


@dataclass
class Stored:
    """What the contracts table holds of one contract that the index depends on."""

    config: list[dict[str, Any]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)
    pending: set[date] = field(default_factory=set)
    state: dict[str, Any] | None = None


def due_index_agrees(store: Store, note: str = "") -> list[str]:
    """S8: every indexed contract is in the due index exactly where its configuration is due."""
    registry = store.registry()
    by_key = {encode_key(r["ContractId"]): r["ContractId"] for r in registry}
    indexed = {encode_key(r["ContractId"]) for r in registry if rows.registry_indexed(r)}
    held, pattern_rows, odd = read_index(store)
    stored = read_contracts(store)
    found = list(odd)
    for rk in sorted(set(held) - set(by_key)):
        found.append(
            f"the due index names {held[rk].contract_id!r}, which is not a registered contract "
            "(extra rows: a run loads nothing for them) (S8)"
        )
    for rk in sorted(indexed, key=lambda k: by_key[k]):
        part = stored.get(rk)
        contract = _contract(part)
        if part is None or contract is None:
            continue  # no readable configuration: the contract checks report it
        mine = held.get(rk) or Held(by_key[rk])
        found.extend(contract_findings(contract, part, mine, pattern_rows))
    return [f + note for f in found]


def read_index(store: Store) -> tuple[dict[str, Held], dict[str, str], list[str]]:
    """The whole index in one range query: per contract RowKey what it holds, the pattern rows
    (key -> schedule document text), and rows that cannot be read."""
    held: dict[str, Held] = {}
    patterns: dict[str, str] = {}
    odd: list[str] = []
    found = store.query(
        store.globals,
        "PartitionKey ge @lo and PartitionKey lt @hi",
        {"lo": due.PREFIX, "hi": due.PREFIX[:-1] + chr(ord(due.PREFIX[-1]) + 1)},
    )
    for row in found:
        pk, rk = row["PartitionKey"], row["RowKey"]
        try:
            if pk == due.PATTERNS:
                patterns[rk] = row["Schedule"]
                continue
            entry = held.setdefault(rk, Held(row.get("ContractId") or rk))
            if pk.startswith(_DATE_PREFIX):
                text = pk[len(_DATE_PREFIX) :]
                entry.dates.add(date(int(text[:-4]), int(text[-4:-2]), int(text[-2:])))
            elif pk.startswith(_GROUP_PREFIX):
                entry.patterns[pk[len(_GROUP_PREFIX) :]] = _spans(json.loads(row["Spans"]))
            else:
                raise ValueError("not a due-index partition")
        except (ValueError, KeyError, TypeError) as exc:
            odd.append(f"due index row {pk}/{rk} cannot be read ({exc}) (S8)")
    return held, patterns, odd


def read_contracts(store: Store) -> dict[str, Stored]:
    """Per contract partition, its configuration, milestone, ``N:due`` and Pending header rows:
    one scan of the contracts table that returns only those rows."""
    c_lo, c_hi = codec.CONFIG_KEYS
    text = (
        "( RowKey ge @c_lo and RowKey lt @c_hi ) or ( RowKey ge @m_lo and RowKey lt @m_hi ) "
        "or RowKey eq @state or ( RowKey ge @i_lo and RowKey lt @i_hi and Status eq @pending )"
    )
    params = {
        "c_lo": c_lo,
        "c_hi": c_hi,
        "m_lo": "M:",
        "m_hi": "M;",
        "state": due.STATE_KEY,
        "i_lo": "I:",
        "i_hi": "I;",
        "pending": codec.PENDING,
    }
    out: dict[str, Stored] = {}
    for row in store.query(store.table, text, params):
        part = out.setdefault(row["PartitionKey"], Stored())
        rk = row["RowKey"]
        if rk == due.STATE_KEY:
            part.state = due.state_from(row)
        elif rk.startswith("M:"):
            part.milestones.append(row)
        elif codec.is_header_key(rk):
            if codec.is_pending(row) and not codec.is_credit_note(row):
                part.pending.add(codec.day(row["InvoiceDate"]))
        else:
            part.config.append(row)
    return out


def _contract(part: Stored | None) -> Contract | None:
    if part is None:
        return None
    try:
        contract = codec.contract_from_config_rows(part.config)
        milestones = tuple(codec.milestone_from(e) for e in part.milestones)
    except (ValueError, KeyError, TypeError):
        return None
    return None if contract is None else dataclasses.replace(contract, milestones=milestones)


# ---- one contract ----------------------------------------------------------------------------


def contract_findings(
    contract: Contract, part: Stored, held: Held, pattern_rows: Mapping[str, str]
) -> list[str]:
    """What differs between the index a contract needs and the one it has, precisely named."""
    cid = contract.contract_id
    want = due.contract_index(contract, part.pending)
    reps = _representatives(held, pattern_rows)

    def found_on(day: date) -> bool:  # would a run of ``day`` load the contract?
        if day in held.dates:
            return True
        return any(
            rep is not None and rep.is_run_date(day) and _within(day, held.patterns[key])
            for key, rep in reps.items()
        )

    found: list[str] = []
    for day in sorted(want.dates - held.dates):
        why = ", ".join(_reasons(contract, part.pending, day))
        if found_on(day):
            found.append(
                f"contract {cid}: run date {day} ({why}) has no date row in the due index "
                "(a pattern still finds it) (S8)"
            )
        else:
            found.append(
                f"contract {cid}: run date {day} ({why}) is missing from the due index: "
                f"a run of {day} would skip it (S8)"
            )
    state = part.state
    state_dates = {codec.day(d) for d in (state or {}).get("dates", ())}
    for day in sorted(held.dates - want.dates - state_dates):
        found.append(
            f"contract {cid}: the due index names it for run date {day}, which neither its "
            f"configuration nor its N:due record has (extra: a run of {day} loads it for "
            "nothing; no import removes the row) (S8)"
        )
    for key in sorted(want.patterns):
        found.extend(_pattern_findings(contract, want, key, held, pattern_rows, found_on))
    for key in sorted(set(held.patterns) - set(want.patterns)):
        found.append(
            f"contract {cid}: the due index puts it in pattern {key} for "
            f"{_show(held.patterns[key])}, which none of its lines has (extra: runs on that "
            "pattern's dates load it for nothing) (S8)"
        )
    found.extend(_state_findings(cid, state, held, want))
    return found


def _pattern_findings(
    contract: Contract,
    want: due.DueIndex,
    key: str,
    held: Held,
    pattern_rows: Mapping[str, str],
    found_on: Callable[[date], bool],
) -> list[str]:
    cid = contract.contract_id
    lines = ", ".join(_lines_on(contract, key))
    wanted = _wanted(want, key)
    expected_doc = json.dumps(want.docs[key], sort_keys=True)
    rep = due.representative(expected_doc)
    problems: list[str] = []
    row = pattern_rows.get(key)
    if row is None:
        problems.append(f"pattern row {key} is missing")
    elif json.loads(row) != json.loads(expected_doc):
        problems.append(f"pattern row {key} holds another schedule ({row[:120]})")
    spans = held.patterns.get(key)
    if spans is None:
        problems.append(f"it is not a member of pattern {key}")
        gaps = wanted
    else:
        gaps = _minus(wanted, spans) if not problems else wanted
        if spans != wanted:
            problems.append(
                f"pattern {key} holds it for {_show(spans)}, its lines run {_show(wanted)}"
            )
    if not problems:
        return []
    out = []
    skipped = _first(lambda d: rep.is_run_date(d) and not found_on(d), gaps)
    what = f"contract {cid}: line {lines} ({_describe(rep, wanted)}): " + "; ".join(problems)
    if skipped is not None:
        out.append(f"{what}: missing from the due index: a run of {skipped} would skip it (S8)")
    elif spans is not None:
        extra = _minus(spans, wanted)
        if extra:
            out.append(f"{what} (extra: runs in {_show(extra)} load it for nothing) (S8)")
        else:
            out.append(f"{what} (no run date is affected) (S8)")
    else:
        out.append(f"{what} (no run date is affected) (S8)")
    return out


def _state_findings(
    cid: str, state: Mapping[str, Any] | None, held: Held, want: due.DueIndex
) -> list[str]:
    """The ``N:due`` record against the rows (what the next import's clean-up relies on)."""
    if state is None:
        return [
            f"contract {cid} is marked indexed but has no N:due record of what it put in the due "
            "index: the next import cannot remove its stale rows (S8)"
        ]
    found = []
    dates = {codec.day(d) for d in state.get("dates", ())}
    for day in sorted(held.dates - dates):
        if day in want.dates:  # needed, but not recorded: a later import would leave it behind
            found.append(
                f"contract {cid}: the due index row of run date {day} is not in its N:due "
                "record: no later import would remove it (S8)"
            )
    for day in sorted(dates - held.dates - want.dates):
        found.append(
            f"contract {cid}: its N:due record lists run date {day}, for which the due index "
            "has no row (S8)"
        )
    patterns = {k: _spans(v) for k, v in (state.get("patterns") or {}).items()}
    for key in sorted(set(patterns) | set(held.patterns)):
        mine, there = patterns.get(key), held.patterns.get(key)
        if mine == there or (there is None and key in want.patterns):
            continue  # equal, or missing from the index: reported as such above
        if mine is None:
            if key in want.patterns:
                found.append(
                    f"contract {cid}: its membership of due-index pattern {key} is not in its "
                    "N:due record: no later import would remove it (S8)"
                )
        elif there is None:
            found.append(
                f"contract {cid}: its N:due record lists pattern {key} ({_show(mine)}), of which "
                "the due index holds no membership row (S8)"
            )
        elif there == _wanted(want, key):
            found.append(
                f"contract {cid}: its N:due record has pattern {key} for {_show(mine)}, the due "
                f"index for {_show(there)} (S8)"
            )
    return found


# ---- helpers ---------------------------------------------------------------------------------


def _representatives(
    held: Held, pattern_rows: Mapping[str, str]
) -> dict[str, GeneratedSchedule | None]:
    out: dict[str, GeneratedSchedule | None] = {}
    for key in held.patterns:
        text = pattern_rows.get(key)
        try:
            out[key] = None if text is None else due.representative(text)
        except (ValueError, KeyError, TypeError, AssertionError):
            out[key] = None
    return out


def _reasons(contract: Contract, pending: set[date], day: date) -> list[str]:
    why = [
        f"schedule row of line {line.line_id}"
        for line in contract.lines
        if line.billing_method is not BillingMethod.FIXED_PRICE
        and isinstance(line.schedule, ExplicitSchedule)
        and line.schedule.cutoff_on(day) is not None
    ]
    why += [
        f"milestone {m.milestone_id} of line {m.line_id}"
        for m in contract.milestones
        if m.date == day
    ]
    if day in pending:
        why.append("its Pending invoice rows of that date")
    return why or ["nothing"]


def _lines_on(contract: Contract, key: str) -> list[str]:
    return [
        line.line_id
        for line in contract.lines
        if line.billing_method is not BillingMethod.FIXED_PRICE
        and isinstance(line.schedule, GeneratedSchedule)
        and due.pattern_of(line.schedule)[0] == key
    ]


def _describe(rep: GeneratedSchedule, spans: Sequence[Span]) -> str:
    if rep.rrule is not None:
        rule = f"RRule {rep.rrule}"
    else:
        rule = str(rep.frequency.value if rep.frequency else "?")
    return f"{rule}, {_show(spans)}"


def _wanted(want: due.DueIndex, key: str) -> list[Span]:
    return sorted((a, b or date.max) for a, b in want.patterns.get(key, ()))


def _spans(doc: Iterable[Sequence[Any]]) -> list[Span]:
    return sorted((codec.day(a), codec.day(b) if b else date.max) for a, b in doc)


def _show(spans: Sequence[Span]) -> str:
    return ", ".join(f"{a} to {'open end' if b == date.max else b}" for a, b in spans) or "nothing"


def _within(day: date, spans: Sequence[Span]) -> bool:
    return any(a <= day <= b for a, b in spans)


def _minus(spans: Sequence[Span], minus: Sequence[Span]) -> list[Span]:
    """The days of ``spans`` that no span of ``minus`` covers, as spans."""
    out: list[Span] = []
    for a, b in sorted(spans):
        parts = [(a, b)]
        for c, d in minus:
            nxt = []
            for x, y in parts:
                if d < x or c > y:
                    nxt.append((x, y))
                    continue
                if c > x:
                    nxt.append((x, c - timedelta(days=1)))
                if d < y:
                    nxt.append((d + timedelta(days=1), y))
            parts = nxt
        out.extend(parts)
    return out


def _first(test: Callable[[date], bool], spans: Sequence[Span]) -> date | None:
    """The first day of ``spans`` that passes ``test``, looking at most ``HORIZON`` into each."""
    for a, b in sorted(spans):
        end = min(b, a + HORIZON) if a <= date.max - HORIZON else b
        day = a
        while day <= end:
            if test(day):
                return day
            if day == date.max:
                break
            day += timedelta(days=1)
    return None
