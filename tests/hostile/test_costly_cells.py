"""SPEC L4, L5 through the real command line and HTTP handlers, each run in a fresh child process
so its peak memory is its own: workbooks of ten lines with a hostile schedule cell each, a
Quantity × UnitPrice over the limit and a 20,000-emoji description are refused with exit 2 / 422
and nothing written; the costliest schedules that are accepted preview one date and 1,096 days.

Memory is asserted with a generous bound (the hostile RRule took 1.78 GB before the fix); time is
only bounded by a kill switch, never asserted (P: timing belongs in the benchmark and the notes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.core.test_schedule import HOSTILE_TIMES
from tests.support.children import run_measured
from tests.support.workbooks import Book, add, minimal_rows, put, xlsx

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_MB = 200  # generous: a preview of these workbooks needs about 40
KILL_AFTER = 120.0  # seconds; never hang the suite
ONE_DATE = ["--date", "2020-10-05"]
THREE_YEARS = ["--from", "2020-01-01", "--to", "2022-12-31"]  # 1,096 days


def ten_lines(rule: str, *, vary_start: bool = True) -> Book:
    """The minimal book plus ten T&M lines with ``rule``, each from its own FirstRunDate (so no
    cache shares the work between them)."""
    book = minimal_rows()
    for n in range(10):
        add(
            book,
            "ContractLines",
            ContractId="C1",
            LineId=f"R{n}",
            BillingMethod="Time and material",
            FirstRunDate=date(2020, 1, 1 + n if vary_start else 1),
            RRule=rule,
        )
    return book


def overflow() -> Book:
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", 99999999999999)
    return put(book, "Transactions", 2, "UnitPrice", 99999999999999)


REFUSED: dict[str, tuple[Book, str]] = {
    "rrule_times_of_day": (ten_lines(HOSTILE_TIMES), "a schedule runs at most daily"),
    "rrule_never_matches": (
        ten_lines("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"),
        "has no occurrence within ten years",
    ),
    "rrule_secondly": (ten_lines("FREQ=SECONDLY"), "runs more often than daily"),
    "rrule_count_forever": (ten_lines("FREQ=DAILY;COUNT=999999999"), "has COUNT=999999999"),
    "quantity_times_price": (overflow(), "Transactions!H2: Quantity × UnitPrice"),
    "emoji_description": (
        put(minimal_rows(), "Transactions", 2, "Description", "🙂" * 20_000),
        "Transactions!F2: text is 40,000 characters (UTF-16 units) long; at most 32,767",
    ),
}


def costly_but_valid() -> Book:
    """The dearest schedules the checks let through, ten lines of each."""
    book = minimal_rows()
    rules = [
        ("FREQ=DAILY", date(1900, 1, 1)),  # 120 years before the dates run
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", date(2016, 1, 1)),  # next: 2044
        ("FREQ=DAILY;COUNT=3650", date(2015, 6, 1)),
        ("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,WE,FR;BYSETPOS=-1", date(2019, 12, 30)),
        ("FREQ=YEARLY;BYWEEKNO=1,53;BYDAY=MO,TU,WE,TH,FR,SA,SU", date(2019, 1, 1)),
    ]
    for rule, first in rules:
        for n in range(10):
            add(
                book,
                "ContractLines",
                ContractId="C1",
                LineId=f"{rule[:12]}-{n}",
                BillingMethod="Time and material",
                FirstRunDate=first + timedelta(days=n),
                RRule=rule,
            )
    return book


def run_child(args: list[str], env_extra: dict[str, str], workdir: Path) -> tuple:
    """Run ``python ARGS`` in a child; (exit code, seconds, peak RSS MB of that child alone,
    stdout, stderr): ``tests.support.children``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    env.pop("AzureWebJobsStorage", None)
    if "INVOICING_STORAGE" not in env_extra:
        env.pop("INVOICING_STORAGE", None)
    return run_measured([sys.executable, *args], env, ROOT, workdir / "child.json", KILL_AFTER)


def test_the_runner_measures_the_child_alone(tmp_path):
    """A parent holding 150 MB runs a child through the runner: the child reports its own size.
    (The parent is a child process too: a test process that grew would pass its size on to the
    children other tests measure.)"""
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from tests.hostile.test_costly_cells import run_child\n"
        "ballast = bytearray(150 * 1024 * 1024); ballast[::4096] = b'x' * len(ballast[::4096])\n"
        "small = run_child(['-c', 'pass'], {}, Path(sys.argv[1]))\n"
        "big = run_child(['-c', 'b = bytearray(120 << 20); b[::4096] = b\"x\" * len(b[::4096])'],"
        " {}, Path(sys.argv[1]))\n"
        "print(small[0], small[2], big[0], big[2])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=KILL_AFTER,
    )
    assert done.returncode == 0, done.stderr
    small_code, small_rss, big_code, big_rss = done.stdout.split()
    assert small_code == "0" and float(small_rss) < 60
    assert big_code == "0" and float(big_rss) > 120


@pytest.mark.parametrize("span", [ONE_DATE, THREE_YEARS], ids=["one_date", "1096_days"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_costly_cell_is_refused_by_preview_with_exit_2_in_bounded_memory(case, span, tmp_path):
    book, problem = REFUSED[case]
    path = tmp_path / f"{case}.xlsx"
    path.write_bytes(xlsx(book))
    output = tmp_path / "out.xlsx"
    code, _seconds, rss, _out, err = run_child(
        ["-m", "invoicing", "preview", str(path), *span, "-o", str(output)], {}, tmp_path
    )
    assert code == 2, err
    assert problem in err and "Traceback" not in err
    assert not output.exists()
    assert rss < RSS_LIMIT_MB


@pytest.mark.parametrize("span", [ONE_DATE, THREE_YEARS], ids=["one_date", "1096_days"])
def test_the_costliest_accepted_schedules_preview_in_bounded_memory(span, tmp_path):
    path = tmp_path / "costly.xlsx"
    path.write_bytes(xlsx(costly_but_valid()))
    output = tmp_path / "out.xlsx"
    code, _seconds, rss, out, err = run_child(
        ["-m", "invoicing", "preview", str(path), *span, "-o", str(output)], {}, tmp_path
    )
    assert code == 0, err
    assert output.exists() and "invoice(s)" in out
    assert rss < RSS_LIMIT_MB


@pytest.mark.parametrize("case", ["rrule_times_of_day", "emoji_description"])
def test_a_costly_cell_is_422_over_http_for_preview_and_import_and_nothing_is_written(
    case, tmp_path, storage_settings
):
    book, problem = REFUSED[case]
    path = tmp_path / f"{case}.xlsx"
    path.write_bytes(xlsx(book))
    storage = {
        "INVOICING_STORAGE": storage_settings.storage_connection or "",
        "INVOICE_TABLE_PREFIX": storage_settings.table_prefix,
    }
    code, _seconds, rss, out, err = run_child(
        ["-m", "tests.hostile.http_child", str(path)], storage, tmp_path
    )
    assert code == 0, err
    answers = json.loads(out.strip().splitlines()[-1])
    for name in ("preview", "imports"):
        assert answers[name]["status"] == 422, answers[name]
        assert problem.split(": ", 1)[-1] in answers[name]["body"]
    assert answers["peak_rss_mb"] < RSS_LIMIT_MB and rss < RSS_LIMIT_MB
    from invoicing.services import open_store

    assert open_store(storage_settings).contracts() == []
