"""Which run dates a run covers (R19): pure, no store and no clock.

The ledger (S6) gives each run date a state; the store remembers the date of its first daily run.

* A daily run (no date, or ``run --date D`` as if today were D) runs, in order, every date of the
  window [today - catch-up days + 1, today] that has not completed and is on or after the first
  daily run (or that a run started and did not finish). The very first daily run does today only.
* A range run (``--from A --to B``) runs exactly the dates of the range that have not completed.
* A date from the first daily run on that is older than the window and never completed is
  *Missed*, and so is any date a run started and did not finish once it falls out of the window:
  it stays named until someone runs it explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

COMPLETED = "completed"
STARTED = "started"
INCOMPLETE = "incomplete"  # the run finished but some contracts of the date did not commit
MISSED = "missed"


@dataclass(frozen=True, slots=True)
class DateChoice:
    run: tuple[date, ...]  # the dates to run now, in order
    already_done: tuple[date, ...]  # asked for, but completed before
    missed: tuple[date, ...]  # never completed and out of reach of catch-up: named until run


def date_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def choose_dates(
    states: Mapping[date, str],
    *,
    first_daily: date | None,
    today: date,
    catchup_days: int,
    span: tuple[date, date] | None = None,
) -> DateChoice:
    """The dates a run covers. ``states`` is the ledger (run date -> state); ``today`` is the run's
    today (the real one, or D for ``run --date D``); ``span`` is an explicit range."""
    completed = {d for d, state in states.items() if state == COMPLETED}
    window_start = today - timedelta(days=catchup_days - 1)
    if span is not None:
        wanted = date_range(*span)
        run = [d for d in wanted if d not in completed]
        already = [d for d in wanted if d in completed]
    else:
        first = first_daily if first_daily is not None else today
        window = date_range(window_start, today) if window_start <= today else [today]
        run = [
            d for d in window if d not in completed and (d >= first or d in states or d == today)
        ]
        already = [today] if today in completed else []
    missed = missed_dates(states, window_start)
    if span is None and first_daily is not None and first_daily < window_start:
        missed |= set(date_range(first_daily, window_start - timedelta(days=1))) - completed
    return DateChoice(tuple(run), tuple(already), tuple(sorted(missed - set(run))))


def missed_dates(states: Mapping[date, str], window_start: date) -> set[date]:
    """Dates the ledger already calls Missed, and unfinished dates older than the window."""
    return {
        d
        for d, state in states.items()
        if state == MISSED or (state != COMPLETED and d < window_start)
    }
