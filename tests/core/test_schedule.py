"""Invoice schedules (R4, R5): explicit rows and generated frequencies, via python-dateutil."""

from __future__ import annotations

import random
import sys
from datetime import date, datetime, time, timedelta

import pytest
from dateutil.rrule import _iterinfo, rrulestr

from invoicing.schedule import GeneratedSchedule, ScheduleError, generated_schedule, run_dates
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


# ---- RRule cost (L5): at most daily, an occurrence within ten years, bounded expansion ----------

HOSTILE_TIMES = (
    "FREQ=DAILY;BYHOUR="
    + ",".join(map(str, range(24)))
    + ";BYMINUTE="
    + ",".join(map(str, range(60)))
    + ";BYSECOND="
    + ",".join(map(str, range(60)))
)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("FREQ=HOURLY", "runs more often than daily"),
        ("FREQ=MINUTELY;INTERVAL=15", "runs more often than daily"),
        ("FREQ=SECONDLY", "runs more often than daily"),
        (HOSTILE_TIMES, "has BYHOUR, BYMINUTE, BYSECOND: a schedule runs at most daily"),
        ("FREQ=DAILY;BYHOUR=9", "has BYHOUR: a schedule runs at most daily"),
        ("FREQ=WEEKLY;byminute=30", "has BYMINUTE: a schedule runs at most daily"),
        ("FREQ=MONTHLY;BYSECOND=0", "has BYSECOND: a schedule runs at most daily"),
    ],
)
def test_an_rrule_that_runs_more_often_than_daily_is_refused(rule, text):
    with pytest.raises(ScheduleError) as info:
        gen(None, None, "2020-01-01", None, rule)
    assert info.value.column == "RRule"
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("rule", "first"),
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "2020-01-01"),
        ("FREQ=WEEKLY;BYMONTH=2;BYMONTHDAY=30", "2020-01-01"),
        ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", "2020-01-01"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "2020-01-01"),
        ("FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31", "1999-05-05"),
        # Feb 29 on a Monday: 2016, then 2044 (28 years on)
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "2016-03-01"),
        ("FREQ=DAILY;UNTIL=20191231", "2020-01-01"),  # ends before it starts
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "9997-03-01"),  # the calendar ends first
    ],
)
def test_an_rrule_without_an_occurrence_within_ten_years_of_its_start_is_refused(rule, first):
    with pytest.raises(ScheduleError) as info:
        gen(None, None, first, None, rule)
    assert info.value.column == "RRule"
    assert str(info.value) == (
        f'RRule "{rule}" has no occurrence within ten years of FirstRunDate {first}'
    )


def test_an_rrule_whose_first_occurrence_is_within_ten_years_is_accepted():
    s = gen(None, None, "2016-01-01", None, "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO")
    assert dates(s, "2016-01-01", "2016-12-31") == ["2016-02-29"]
    s = gen(None, None, "2034-03-01", None, "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO")
    assert dates(s, "2034-01-01", "2044-12-31") == ["2044-02-29"]  # 9 years 11 months on
    assert dates(s, "2045-01-01", "2072-12-31") == ["2072-02-29"]  # later ones are kept


def test_rrule_count_ends_the_schedule_at_its_last_occurrence():
    s = gen(None, None, "2021-01-15", None, "FREQ=MONTHLY;COUNT=3")
    assert dates(s, "2021-01-01", "2030-12-31") == ["2021-01-15", "2021-02-15", "2021-03-15"]
    s = gen(None, None, "2021-01-01", None, "FREQ=WEEKLY;BYDAY=MO,FR;COUNT=4")
    assert dates(s) == ["2021-01-01", "2021-01-04", "2021-01-08", "2021-01-11"]
    s = gen(None, None, "2021-01-01", None, "FREQ=MONTHLY;COUNT=121")  # the last: ten years on
    assert dates(s, "2020-01-01", "2040-12-31")[-1] == "2031-01-01"


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("FREQ=MONTHLY;COUNT=122", "has COUNT=122, more occurrences than it has within ten years"),
        ("FREQ=MONTHLY;COUNT=5;UNTIL=20221231", "has both COUNT and UNTIL"),
        ("FREQ=YEARLY;BYEASTER=0", "BYEASTER, which is not part of RFC 5545"),
        ("FREQ=MONTHLY;BYMONTHDAY=" + ",".join(["1"] * 600), "characters long; at most 1,000"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a whole number from 1"),
        ("FREQ=WEEKLY;INTERVAL=-2", "INTERVAL must be a whole number from 1"),
        ("FREQ=WEEKLY;COUNT=0", "COUNT must be a whole number from 1"),
        ("BYDAY=MO", "needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY"),
    ],
)
def test_rrules_the_schedule_cannot_bound_are_refused(rule, text):
    with pytest.raises(ScheduleError) as info:
        gen(None, None, "2021-01-01", None, rule)
    assert info.value.column == "RRule"
    assert text in str(info.value)


def test_rrule_messages_name_the_rule_as_typed_and_shorten_a_long_one():
    with pytest.raises(ScheduleError) as info:
        gen(None, None, "2020-01-01", None, HOSTILE_TIMES)
    message = str(info.value)
    assert message.startswith(f'RRule "{HOSTILE_TIMES[:77]}..." has BYHOUR')
    assert len(message) < 250


def _calls_of(function, action):
    """How many times the Python ``function`` is entered while ``action()`` runs (a measure of
    the work done, independent of the machine's speed)."""
    code = function.__code__
    calls = 0

    def profile(frame, event, _arg):
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(profile)
    try:
        result = action()
    finally:
        sys.setprofile(None)
    return calls, result


def test_a_run_date_question_expands_only_the_year_asked_about():
    """L5: never from DTSTART, never towards 9999. dateutil rebuilds its masks once per month it
    walks; asking about one date of a daily rule that started 120 years earlier, or about one date
    of a never-matching rule stored before the checks existed, walks about a year."""
    rebuild = _iterinfo.rebuild
    old = GeneratedSchedule(first=D("1900-01-01"), last=None, rrule="FREQ=DAILY;WKST=MO")
    calls, cutoff = _calls_of(rebuild, lambda: old.cutoff_on(D("2020-10-05")))
    assert cutoff == D("2020-10-04")
    assert calls <= 400  # walking from 1900 would be ~1,450 month rebuilds
    never = GeneratedSchedule(
        first=D("2020-01-01"), last=None, rrule="FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;WKST=MO"
    )
    calls, cutoff = _calls_of(rebuild, lambda: never.cutoff_on(D("2020-10-05")))
    assert cutoff is None
    assert calls <= 4_000  # the ten-year look; dateutil's own scan to 9999 is ~96,000
    timed = GeneratedSchedule(first=D("2020-01-01"), last=None, rrule=HOSTILE_TIMES)
    calls, cutoff = _calls_of(rebuild, lambda: timed.cutoff_on(D("2020-10-05")))
    assert cutoff is None and calls == 0  # stored before the checks: now no run dates


def _random_rule(rnd: random.Random) -> str:
    freq = rnd.choice(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"])
    parts = [f"FREQ={freq}"]
    days = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    if rnd.random() < 0.5:
        parts.append(f"INTERVAL={rnd.choice([1, 2, 3, 5, 7, 13])}")
    if rnd.random() < 0.3:
        parts.append("BYMONTH=" + ",".join(map(str, rnd.sample(range(1, 13), rnd.randint(1, 4)))))
    if rnd.random() < 0.4:
        if freq in ("MONTHLY", "YEARLY") and rnd.random() < 0.5:
            chosen = [f"{rnd.choice([1, 2, 3, -1])}{d}" for d in rnd.sample(days, 2)]
        else:
            chosen = rnd.sample(days, rnd.randint(1, 3))
        parts.append("BYDAY=" + ",".join(chosen))
    if rnd.random() < 0.3:
        picks = rnd.sample([*range(1, 32), -1, -2], rnd.randint(1, 3))
        parts.append("BYMONTHDAY=" + ",".join(map(str, picks)))
    if freq == "YEARLY" and rnd.random() < 0.2:
        parts.append("BYWEEKNO=" + ",".join(map(str, rnd.sample([*range(1, 54), -1], 2))))
    if rnd.random() < 0.15:
        parts.append("BYYEARDAY=" + ",".join(map(str, rnd.sample([*range(1, 367), -1], 3))))
    if rnd.random() < 0.25:
        parts.append("BYSETPOS=" + ",".join(map(str, rnd.sample([1, 2, 3, -1, -2], 2))))
    if rnd.random() < 0.3:
        parts.append("WKST=" + rnd.choice(["MO", "SU", "WE"]))
    if rnd.random() < 0.15:
        parts.append(f"COUNT={rnd.randint(1, 40)}")
    elif rnd.random() < 0.15:
        parts.append(f"UNTIL={date(2021, 1, 1) + timedelta(days=rnd.randint(0, 1500)):%Y%m%d}")
    return ";".join(parts)


def test_bounded_rrule_expansion_gives_dateutils_own_occurrences():
    """The schedule walks the rule's periods itself (dateutil's iterator cannot be bounded); over
    seeded random rules and windows it gives exactly what ``rrule`` itself gives. Compared only
    where dateutil finds a later occurrence within a year (else dateutil itself scans to 9999)."""
    rnd = random.Random(9)
    compared = 0
    for _ in range(600):
        text = _random_rule(rnd)
        first = date(2018, 1, 1) + timedelta(days=rnd.randint(0, 1500))
        try:
            s = gen(None, None, first.isoformat(), None, text)
        except ScheduleError:
            continue
        lo = first + timedelta(days=rnd.randint(-60, 1500))
        hi = lo + timedelta(days=rnd.randint(0, 700))
        rule = rrulestr(s.rrule, dtstart=datetime(first.year, first.month, first.day))
        if not dates(
            s, (hi + timedelta(days=1)).isoformat(), (hi + timedelta(days=366)).isoformat()
        ):
            continue  # no later occurrence soon: dateutil's between would scan on and on
        expected = [
            d.date().isoformat()
            for d in rule.between(datetime.combine(lo, time()), datetime.combine(hi, time()), True)
        ]
        assert dates(s, lo.isoformat(), hi.isoformat()) == expected, (text, first, lo, hi)
        compared += 1
    assert compared > 250
