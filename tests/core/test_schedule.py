"""Invoice schedules (R4, R5): explicit rows and generated frequencies, via python-dateutil."""

from __future__ import annotations

from datetime import date

import pytest

from invoicing.schedule import ScheduleError, generated_schedule, run_dates
from tests.core.builders import D, schedule


def dates(s, start="2020-01-01", end="2022-12-31") -> list[str]:
    return [r.run_date.isoformat() for r in run_dates(s, D(start), D(end))]


def gen(freq, run_day=None, first="2020-10-01", last=None, rrule=None):
    return generated_schedule(freq, run_day, D(first), D(last) if last else None, rrule)


def test_seed_biweekly_monday():
    s = gen("Biweekly", "Monday", "2020-10-05", "2020-11-16")
    assert dates(s) == ["2020-10-05", "2020-10-19", "2020-11-02", "2020-11-16"]


def test_seed_monthly_first_monday():
    s = gen("Monthly", "First Monday", "2020-10-01", "2020-11-30")
    assert dates(s) == ["2020-10-05", "2020-11-02"]


def test_biweekly_starts_at_the_first_run_day_on_or_after_first_run_date():
    s = gen("Biweekly", "Wednesday", "2021-03-04", "2021-04-30")  # a Thursday
    assert dates(s) == ["2021-03-10", "2021-03-24", "2021-04-07", "2021-04-21"]


def test_monthly_day_31_lands_on_the_last_day_of_short_months():
    s = gen("Monthly", "31", "2024-01-01", "2024-06-30")
    assert dates(s, "2024-01-01", "2024-12-31") == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
        "2024-06-30",
    ]


def test_monthly_last_and_last_friday():
    assert dates(gen("Monthly", "Last", "2021-01-01", "2021-03-31")) == [
        "2021-01-31",
        "2021-02-28",
        "2021-03-31",
    ]
    assert dates(gen("Monthly", "Last Friday", "2021-01-01", "2021-03-31")) == [
        "2021-01-29",
        "2021-02-26",
        "2021-03-26",
    ]


def test_weekly_daily_semimonthly_and_quarterly():
    assert dates(gen("Weekly", "Friday", "2021-01-01", "2021-01-20")) == [
        "2021-01-01",
        "2021-01-08",
        "2021-01-15",
    ]
    assert dates(gen("Daily", None, "2021-01-01", "2021-01-03")) == [
        "2021-01-01",
        "2021-01-02",
        "2021-01-03",
    ]
    assert dates(gen("Semimonthly", None, "2021-02-01", "2021-03-31")) == [
        "2021-02-15",
        "2021-02-28",
        "2021-03-15",
        "2021-03-31",
    ]
    assert dates(gen("Quarterly", "30", "2021-02-01", "2021-12-31")) == [
        "2021-02-28",
        "2021-05-30",
        "2021-08-30",
        "2021-11-30",
    ]


def test_first_and_last_run_dates_are_inclusive_and_open_ended_without_last():
    s = gen("Monthly", "1", "2021-01-01")
    assert dates(s, "2021-01-01", "2030-03-01")[-1] == "2030-03-01"
    assert dates(s, "2020-01-01", "2021-02-01") == ["2021-01-01", "2021-02-01"]


def test_rrule_line_uses_first_run_date_as_dtstart():
    s = gen(None, None, "2021-01-01", "2021-04-30", rrule="FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1")
    assert dates(s) == ["2021-01-29", "2021-02-26", "2021-03-26", "2021-04-30"]
    assert s.cutoff_on(date(2021, 1, 29)) == date(2021, 1, 28)


def test_generated_cutoff_is_the_day_before():
    s = gen("Weekly", "Monday", "2020-10-05")
    assert s.cutoff_on(date(2020, 10, 12)) == date(2020, 10, 11)
    assert s.cutoff_on(date(2020, 10, 13)) is None


def test_explicit_rows_default_and_given_cutoffs():
    s = schedule("2021-03-10", "2021-04-10", cutoffs={"2021-04-10": "2021-04-01"})
    assert s.cutoff_on(D("2021-03-10")) == D("2021-03-09")
    assert s.cutoff_on(D("2021-04-10")) == D("2021-04-01")
    assert s.cutoff_on(D("2021-04-09")) is None


@pytest.mark.parametrize(
    ("args", "column", "text"),
    [
        (("Fortnightly", None, "2021-01-01", None, None), "Frequency", "is not one of"),
        (("Weekly", "Funday", "2021-01-01", None, None), "RunDay", "is not a weekday"),
        (("Monthly", "32", "2021-01-01", None, None), "RunDay", "is not a day of the month"),
        (("Semimonthly", "15", "2021-01-01", None, None), "RunDay", "two days of the month"),
        (("Semimonthly", "15, 15", "2021-01-01", None, None), "RunDay", "same day twice"),
        (("Monthly", "1", None, None, None), "FirstRunDate", "is required"),
        (("Monthly", "1", "2021-02-01", "2021-01-01", None), "LastRunDate", "is before"),
        (("Monthly", None, "2021-01-01", None, "FREQ=MONTHLY"), "RRule", "not both"),
        ((None, None, "2021-01-01", None, "FREQ=SECONDLY"), "RRule", "FREQ=DAILY"),
        ((None, None, "2021-01-01", None, "FREQ=MONTHLY;BYDAY=XX"), "RRule", "not a valid"),
        (("Daily", "Monday", "2021-01-01", None, None), "RunDay", "takes no RunDay"),
    ],
)
def test_bad_schedule_definitions_name_the_column(args, column, text):
    freq, run_day, first, last, rrule = args
    with pytest.raises(ScheduleError) as info:
        generated_schedule(
            freq, run_day, D(first) if first else None, D(last) if last else None, rrule
        )
    assert info.value.column == column
    assert text in str(info.value)
