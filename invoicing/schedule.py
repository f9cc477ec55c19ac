"""Invoice schedules of T&M lines (R4, R5): explicit rows, or generated from a frequency or RRULE.

A schedule answers one question for the engine: is ``day`` a run date, and if so what is its
transaction cut-off? Generated schedules answer it by date arithmetic (python-dateutil) without
expanding the whole series, so open-ended schedules cost nothing. RRULE schedules are checked for
cost when read (L5: at most daily, an occurrence within ten years of FirstRunDate, COUNT resolved
to a last day) and expanded only over the calendar year of the day asked about, one cached bit mask
per (rule, year): never from DTSTART, never towards the year 9999.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE, relativedelta, weekday
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, _iterinfo, rrule, rrulestr

ONE_DAY = timedelta(days=1)


class Frequency(StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"
    BIWEEKLY = "Biweekly"
    SEMIMONTHLY = "Semimonthly"
    MONTHLY = "Monthly"
    QUARTERLY = "Quarterly"


WEEKDAYS: dict[str, weekday] = {
    "monday": MO,
    "tuesday": TU,
    "wednesday": WE,
    "thursday": TH,
    "friday": FR,
    "saturday": SA,
    "sunday": SU,
}
_WEEKDAY_ABBREVIATIONS = {name[:3]: wd for name, wd in WEEKDAYS.items()}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
LAST = "last"


class ScheduleError(ValueError):
    """A schedule definition that cannot be used; ``column`` names the offending input column."""

    def __init__(self, column: str, message: str):
        self.column = column
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    run_date: date
    cutoff: date


@dataclass(frozen=True)
class ExplicitSchedule:
    """Rows written out one by one (W4)."""

    rows: tuple[ScheduleRow, ...]
    _by_date: dict[date, date] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_date", {row.run_date: row.cutoff for row in self.rows})

    def cutoff_on(self, day: date) -> date | None:
        return self._by_date.get(day)


# A day of the month: 1..31, or LAST; an ordinal weekday: (n, weekday) with n in 1..4 or -1.
MonthDay = int | str | tuple[int, weekday]


@dataclass(frozen=True, slots=True)
class GeneratedSchedule:
    """A schedule generated on the line from Frequency/RunDay or an RRULE (W3).

    The cut-off of a generated run date is the day before it.
    """

    first: date
    last: date | None
    frequency: Frequency | None = None
    weekday: weekday | None = None  # Weekly, Biweekly
    month_days: tuple[MonthDay, ...] = ()  # Monthly, Quarterly (one), Semimonthly (two)
    rrule: str | None = None

    def cutoff_on(self, day: date) -> date | None:
        return day - ONE_DAY if self.is_run_date(day) else None

    def is_run_date(self, day: date) -> bool:
        if day < self.first or (self.last is not None and day > self.last):
            return False
        if self.rrule is not None:
            return _rrule_has(self.rrule, self.first, day)
        freq = self.frequency
        if freq is Frequency.DAILY:
            return True
        if freq is Frequency.WEEKLY:
            return day.weekday() == self.weekday.weekday  # type: ignore[union-attr]
        if freq is Frequency.BIWEEKLY:
            anchor = _biweekly_anchor(self.first, self.weekday)  # type: ignore[arg-type]
            return day >= anchor and (day - anchor).days % 14 == 0
        if freq is Frequency.QUARTERLY and (day.month - self.first.month) % 3:
            return False
        return any(_day_in_month(spec, day.year, day.month) == day for spec in self.month_days)


Schedule = ExplicitSchedule | GeneratedSchedule


def run_dates(schedule: Schedule, start: date, end: date) -> Iterator[ScheduleRow]:
    """Every run date of ``schedule`` from ``start`` to ``end`` inclusive, in order."""
    day = start
    while day <= end:
        cutoff = schedule.cutoff_on(day)
        if cutoff is not None:
            yield ScheduleRow(day, cutoff)
        day += ONE_DAY


@lru_cache(maxsize=256)
def _biweekly_anchor(first: date, wd: weekday) -> date:
    """Biweekly starts at the first RunDay on or after FirstRunDate (R5)."""
    return first + relativedelta(weekday=wd(+1))


@lru_cache(maxsize=65536)
def _day_in_month(spec: MonthDay, year: int, month: int) -> date:
    first = date(year, month, 1)
    if spec == LAST:
        return first + relativedelta(day=31)
    if isinstance(spec, int):
        # relativedelta clamps day 29-31 to the month's last day: never skipped (R5).
        return first + relativedelta(day=spec)
    n, wd = spec
    if n == -1:
        return first + relativedelta(day=31, weekday=wd(-1))
    return first + relativedelta(weekday=wd(+n))


# ---- parsing the W3 columns -------------------------------------------------------------------


def parse_weekday(text: str) -> weekday | None:
    key = text.strip().lower()
    return WEEKDAYS.get(key) or _WEEKDAY_ABBREVIATIONS.get(key)


def parse_month_day(text: str) -> MonthDay | None:
    """``"15"``, ``"Last"``, ``"First Monday"``, ``"Last Friday"``; None when not understood."""
    words = text.strip().lower().split()
    if len(words) == 1:
        word = words[0]
        if word == LAST:
            return LAST
        if re.fullmatch(r"\d{1,2}(\.0+)?", word):
            day = int(float(word))
            return day if 1 <= day <= 31 else None
        return None
    if len(words) == 2 and words[0] in ORDINALS:
        wd = parse_weekday(words[1])
        if wd is not None:
            return (ORDINALS[words[0]], wd)
    return None


def generated_schedule(
    frequency: str | None,
    run_day: str | None,
    first: date | None,
    last: date | None,
    rrule: str | None,
) -> GeneratedSchedule:
    """Build a generated schedule from the line's columns, or raise ``ScheduleError``."""
    if first is None:
        raise ScheduleError("FirstRunDate", "FirstRunDate is required to generate a schedule")
    if last is not None and last < first:
        raise ScheduleError("LastRunDate", f"LastRunDate {last} is before FirstRunDate {first}")
    if rrule:
        if frequency:
            raise ScheduleError("RRule", "give either Frequency or RRule, not both")
        return GeneratedSchedule(first=first, last=last, rrule=_checked_rrule(rrule, first))
    freq = _parse_frequency(frequency or "")
    day_text = (run_day or "").strip()
    if freq is Frequency.DAILY:
        if day_text:
            raise ScheduleError("RunDay", "a Daily schedule takes no RunDay")
        return GeneratedSchedule(first=first, last=last, frequency=freq)
    if freq in (Frequency.WEEKLY, Frequency.BIWEEKLY):
        wd = parse_weekday(day_text) if day_text else WEEKDAYS[list(WEEKDAYS)[first.weekday()]]
        if wd is None:
            raise ScheduleError("RunDay", f'RunDay "{day_text}" is not a weekday such as "Monday"')
        return GeneratedSchedule(first=first, last=last, frequency=freq, weekday=wd)
    if freq is Frequency.SEMIMONTHLY:
        parts = [p for p in re.split(r"[,;]", day_text or "15, Last")]
        specs = [parse_month_day(p) for p in parts]
        if len(parts) != 2 or any(s is None or isinstance(s, tuple) for s in specs):
            raise ScheduleError(
                "RunDay", f'RunDay "{day_text}" must be two days of the month such as "15, Last"'
            )
        if _month_day_key(specs[0]) == _month_day_key(specs[1]):  # type: ignore[arg-type]
            raise ScheduleError("RunDay", f'RunDay "{day_text}" names the same day twice')
        return GeneratedSchedule(
            first=first,
            last=last,
            frequency=freq,
            month_days=tuple(specs),  # type: ignore[arg-type]
        )
    spec = parse_month_day(day_text) if day_text else first.day
    if spec is None:
        raise ScheduleError(
            "RunDay",
            f'RunDay "{day_text}" is not a day of the month (1-31 or Last) '
            'or an ordinal weekday such as "First Monday"',
        )
    return GeneratedSchedule(first=first, last=last, frequency=freq, month_days=(spec,))


def _month_day_key(spec: MonthDay) -> int:
    return 31 if spec == LAST else spec  # type: ignore[return-value]


def _parse_frequency(text: str) -> Frequency:
    key = text.strip().lower().replace("-", "").replace(" ", "")
    for freq in Frequency:
        if freq.value.lower() == key:
            return freq
    names = ", ".join(f.value for f in Frequency)
    raise ScheduleError("Frequency", f'Frequency "{text}" is not one of {names}')


# ---- RRULE schedules: validated for cost, expanded only over the dates asked about (L5) ---------
#
# dateutil's own iterator cannot be bounded: ``until`` and ``count`` are checked only when a
# candidate date matches, so a rule that never matches again (``FREQ=DAILY;BYMONTH=2;
# BYMONTHDAY=30``) scans day by day to the year 9999 whatever ``until`` or ``between`` says.
# ``_occurrences`` therefore walks the rule's periods (its years, months, weeks or days, every
# INTERVAL-th from DTSTART's) itself, only those that meet the window asked about, and lets
# dateutil's ``_iterinfo`` masks decide which days of a period match, exactly as ``rrule._iter``
# does for rules of at most daily frequency (one occurrence a day, at DTSTART's midnight).

MAX_RRULE_CHARS = 1000
RRULE_HORIZON = relativedelta(years=10)  # an RRule must occur within ten years of FirstRunDate
_ALLOWED_RRULE_FREQ = {DAILY, WEEKLY, MONTHLY, YEARLY}
_SUB_DAILY = ("HOURLY", "MINUTELY", "SECONDLY")
_TIME_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: rrule
    first: date
    until: date | None  # the last day it may occur on: its UNTIL, or its COUNT-th occurrence


def _occurrences(rule: rrule, lo: date, hi: date) -> Iterator[date]:
    """Every occurrence of ``rule`` from ``lo`` to ``hi`` inclusive, in order, ignoring COUNT.

    Visits only the rule's periods that meet [lo, hi], so its cost is bounded by the window
    whatever the rule (the filters below are ``rrule._iter``'s, with the rule's single time).
    """
    first = rule._dtstart.date()  # type: ignore[attr-defined]
    if rule._until is not None:  # type: ignore[attr-defined]
        hi = min(hi, rule._until.date())  # type: ignore[attr-defined]
    lo = max(lo, first)
    if lo > hi:
        return
    freq: int = rule._freq  # type: ignore[attr-defined]
    interval: int = rule._interval  # type: ignore[attr-defined]
    wkst: int = rule._wkst  # type: ignore[attr-defined]
    bymonth = rule._bymonth  # type: ignore[attr-defined]
    byweekno = rule._byweekno  # type: ignore[attr-defined]
    byyearday = rule._byyearday  # type: ignore[attr-defined]
    byweekday = rule._byweekday  # type: ignore[attr-defined]
    byeaster = rule._byeaster  # type: ignore[attr-defined]
    bymonthday = rule._bymonthday  # type: ignore[attr-defined]
    bynmonthday = rule._bynmonthday  # type: ignore[attr-defined]
    bysetpos = rule._bysetpos  # type: ignore[attr-defined]
    lo_ord, hi_ord = lo.toordinal(), hi.toordinal()
    ii = _iterinfo(rule)

    # The period to start from: the rule's period that holds ``lo``, or the last one before it.
    if freq == YEARLY:
        k = (lo.year - first.year) // interval
    elif freq == MONTHLY:
        k = ((lo.year - first.year) * 12 + lo.month - first.month) // interval
    elif freq == WEEKLY:
        week0 = first - timedelta(days=(first.weekday() - wkst) % 7)
        k = (lo - week0).days // (7 * interval)
    else:
        k = (lo - first).days // interval
    while True:
        # period k: its first day and the day indexes (into its year's masks) it spans
        try:
            if freq == YEARLY:
                start = date(first.year + k * interval, 1, 1)
            elif freq == MONTHLY:
                months = first.month - 1 + k * interval
                start = date(first.year + months // 12, months % 12 + 1, 1)
            elif freq == WEEKLY:
                start = first if k == 0 else week0 + timedelta(days=7 * interval * k)
            else:
                start = first + timedelta(days=interval * k)
        except (ValueError, OverflowError):  # past the year 9999
            return
        if start.toordinal() > hi_ord:
            return
        k += 1
        ii.rebuild(start.year, start.month if freq != YEARLY else first.month)
        base = ii.yearordinal
        if freq == YEARLY:
            days: range = range(ii.yearlen)
        elif freq == MONTHLY:
            days = range(ii.mrange[start.month - 1], ii.mrange[start.month])
        elif freq == WEEKLY:
            i = start.toordinal() - base
            end = i + 1
            while end - i < 7 and ii.wdaymask[end] != wkst:
                end += 1
            days = range(i, end)
        else:
            i = start.toordinal() - base
            days = range(i, i + 1)
        if base + days.stop - 1 < lo_ord:
            continue
        kept = [
            i
            for i in days
            if not (
                (bymonth and ii.mmask[i] not in bymonth)
                or (byweekno and not ii.wnomask[i])
                or (byweekday and ii.wdaymask[i] not in byweekday)
                or (ii.nwdaymask and not ii.nwdaymask[i])
                or (byeaster and not ii.eastermask[i])
                or (
                    (bymonthday or bynmonthday)
                    and ii.mdaymask[i] not in bymonthday
                    and ii.nmdaymask[i] not in bynmonthday
                )
                or (
                    byyearday
                    and (
                        (
                            i < ii.yearlen
                            and i + 1 not in byyearday
                            and -ii.yearlen + i not in byyearday
                        )
                        or (
                            i >= ii.yearlen
                            and i + 1 - ii.yearlen not in byyearday
                            and -ii.nextyearlen + i - ii.yearlen not in byyearday
                        )
                    )
                )
            )
        ]
        if bysetpos and kept:
            picked = set()
            for pos in bysetpos:
                n = pos - 1 if pos > 0 else pos
                if -len(kept) <= n < len(kept):
                    picked.add(kept[n])
            kept = sorted(picked)
        for i in kept:
            ordinal = base + i
            if ordinal > hi_ord:
                return
            if ordinal >= lo_ord:
                yield date.fromordinal(ordinal)


def _shown_rule(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


class _Refused(ValueError):
    """Why an RRule cannot be used; the caller names the rule."""


def _checked_rrule(text: str, first: date) -> str:
    """The RRule cell as stored (without ``RRULE:``, with an explicit WKST), checked for syntax
    and cost (L5), or ``ScheduleError``."""
    body = text.strip()
    if len(body) > MAX_RRULE_CHARS:
        raise ScheduleError(
            "RRule", f"RRule is {len(body):,} characters long; at most {MAX_RRULE_CHARS:,}"
        )
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "\n" in body or "DTSTART" in body.upper():
        raise ScheduleError(
            "RRule", "RRule holds one RRULE without DTSTART (FirstRunDate is DTSTART)"
        )
    if "WKST=" not in body.upper():
        # rrule's default week start is a process-global calendar setting; pin it (REFERENCE).
        body = f"{body};WKST=MO"
    try:
        _compiled(body, first)
    except _Refused as exc:
        raise ScheduleError("RRule", f'RRule "{_shown_rule(text.strip())}" {exc}') from None
    return body


@lru_cache(maxsize=1024)
def _compiled(body: str, first: date) -> _Rule:
    """Parse and check an RRule body (as ``_checked_rrule`` stores it), or raise ``_Refused``.
    Cached: the engine asks about the same few rules for every contract."""
    names = {part.partition("=")[0].strip().upper() for part in body.split(";")}
    freq_match = re.search(r"(?:^|;)\s*FREQ\s*=\s*([A-Za-z]+)", body)
    freq_name = freq_match.group(1).upper() if freq_match else ""
    if freq_name in _SUB_DAILY:
        raise _Refused(
            "runs more often than daily; a schedule needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY"
        )
    if freq_name not in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        raise _Refused("needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY")
    timed = [name for name in _TIME_PARTS if name in names]
    if timed:
        raise _Refused(
            f"has {', '.join(timed)}: a schedule runs at most daily, so BYHOUR, BYMINUTE and "
            "BYSECOND are not allowed"
        )
    if "BYEASTER" in names:
        raise _Refused("has BYEASTER, which is not part of RFC 5545")
    if "COUNT" in names and "UNTIL" in names:
        raise _Refused("has both COUNT and UNTIL (RFC 5545 allows one or the other)")
    try:
        rule = rrulestr(body, dtstart=datetime(first.year, first.month, first.day))
    except (ValueError, TypeError, OverflowError) as exc:
        raise _Refused(f"is not a valid RFC 5545 RRULE ({exc})") from None
    if not isinstance(rule, rrule) or rule._freq not in _ALLOWED_RRULE_FREQ:  # type: ignore[attr-defined]
        raise _Refused("needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY")
    interval: int = rule._interval  # type: ignore[attr-defined]
    if interval < 1:
        raise _Refused(f"has INTERVAL={interval}: INTERVAL must be a whole number from 1")
    # Cost (L5): the rule must occur within ten years of its start. The look is bounded by the
    # ten years (``_occurrences``), never a scan to the year 9999.
    horizon = _ten_years_after(first)
    if next(_occurrences(rule, first, horizon), None) is None:
        raise _Refused(f"has no occurrence within ten years of FirstRunDate {first}")
    until = rule._until.date() if rule._until is not None else None  # type: ignore[attr-defined]
    count: int | None = rule._count  # type: ignore[attr-defined]
    if count is not None and count < 1:
        raise _Refused(f"has COUNT={count}: COUNT must be a whole number from 1")
    if count is not None:
        # Resolve COUNT to the day of its last occurrence once, so that no later question has
        # to count from DTSTART; the occurrences must end within the ten years.
        until = None
        for n, day in enumerate(_occurrences(rule, first, horizon), start=1):
            if n == count:
                until = day
                break
        if until is None:
            raise _Refused(
                f"has COUNT={count}, more occurrences than it has within ten years of "
                f"FirstRunDate {first}; end it with UNTIL or LastRunDate instead"
            )
    return _Rule(rule, first, until)


def _ten_years_after(first: date) -> date:
    try:
        return first + RRULE_HORIZON
    except (ValueError, OverflowError):
        return date.max


@lru_cache(maxsize=1024)
def _usable(body: str, first: date) -> _Rule | None:
    """The checked rule, or None for a stored rule that no longer passes the checks (stored
    before they existed): such a line has no run dates until its workbook is imported again."""
    try:
        return _compiled(body, first)
    except _Refused:
        return None


@lru_cache(maxsize=4096)
def _rrule_year(body: str, first: date, year: int) -> int:
    """The rule's run dates in ``year`` as a bit mask (bit n: the year's day n, from 0)."""
    compiled = _usable(body, first)
    if compiled is None:
        return 0
    jan1 = date(year, 1, 1)
    hi = date(year, 12, 31)
    if compiled.until is not None:
        hi = min(hi, compiled.until)
    base = jan1.toordinal()
    mask = 0
    for day in _occurrences(compiled.rule, jan1, hi):
        mask |= 1 << (day.toordinal() - base)
    return mask


def _rrule_has(body: str, first: date, day: date) -> bool:
    """Is ``day`` an occurrence of the stored RRule ``body`` with DTSTART ``first``?"""
    mask = _rrule_year(body, first, day.year)
    return bool(mask >> (day.toordinal() - date(day.year, 1, 1).toordinal()) & 1)
