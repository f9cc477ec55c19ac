"""Invoice schedules of T&M lines (R4, R5): explicit rows, or generated from a frequency or RRULE.

A schedule answers one question for the engine: is ``day`` a run date, and if so what is its
transaction cut-off? Generated schedules answer it by date arithmetic (python-dateutil) without
expanding the whole series, so open-ended schedules cost nothing; RRULE schedules are expanded one
calendar year at a time and cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE, relativedelta, weekday
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrulestr

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
            return day in _rrule_year(self.rrule, self.first, day.year)
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


@lru_cache(maxsize=4096)
def _rrule_year(text: str, first: date, year: int) -> frozenset[date]:
    rule = rrulestr(text, dtstart=datetime(first.year, first.month, first.day))
    start = datetime(year, 1, 1)
    end = datetime(year, 12, 31, 23, 59, 59)
    return frozenset(moment.date() for moment in rule.between(start, end, inc=True))


# ---- parsing the W3 columns -------------------------------------------------------------------

_ALLOWED_RRULE_FREQ = {DAILY, WEEKLY, MONTHLY, YEARLY}
_RRULE_FREQ_NAMES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")


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


def _checked_rrule(text: str, first: date) -> str:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "\n" in body or "DTSTART" in body.upper():
        raise ScheduleError(
            "RRule", "RRule holds one RRULE without DTSTART (FirstRunDate is DTSTART)"
        )
    upper = body.upper()
    if "WKST=" not in upper:
        # rrule's default week start is a process-global calendar setting; pin it (REFERENCE).
        body = f"{body};WKST=MO"
    match = re.search(r"FREQ=([A-Z]+)", upper)
    if not match or match.group(1) not in _RRULE_FREQ_NAMES:
        raise ScheduleError("RRule", f'RRule "{text}" needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY')
    try:
        rule = rrulestr(body, dtstart=datetime(first.year, first.month, first.day))
    except (ValueError, TypeError) as exc:
        raise ScheduleError(
            "RRule", f'RRule "{text}" is not a valid RFC 5545 RRULE ({exc})'
        ) from None
    if rule._freq not in _ALLOWED_RRULE_FREQ:  # type: ignore[attr-defined]
        raise ScheduleError("RRule", f'RRule "{text}" needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY')
    return body
