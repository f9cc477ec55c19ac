"""R17 and R18 under stress: concurrent runs, SIGKILL at random moments, a failure injected after
every k-th write, a lease broken from outside, a lease held by another run."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import pytest
from azure.storage.blob import BlobLeaseClient

from invoicing import services
from invoicing.cli import main
from invoicing.settings import Settings
from invoicing.storage.errors import LeaseLost, WriteRefused
from invoicing.storage.lease import LOCK_BLOB, Lease
from invoicing.storage.store import Store
from tests.storage.portfolios import END, START, expected, key_log, random_book, stored, workbook
from tests.support.workbooks import HEADERS, Book

ROOT = Path(__file__).resolve().parents[2]


def cli(env: dict[str, str], *args: str, module: str = "invoicing") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def break_lease(store: Store) -> None:
    """What an operator (or the lease's expiry) does to a dead run's lease."""
    blob = store.blobs.get_blob_client(store.lock_container, LOCK_BLOB)
    BlobLeaseClient(blob).break_lease(lease_break_period=0)


def assert_same_as_one_clean_run(store: Store, settings: Settings, data: bytes) -> None:
    invoices, log = stored(store)
    want_invoices, want_log = expected(data)
    assert invoices == want_invoices
    assert key_log(log) == key_log(want_log)
    assert services.audit(store, settings) == []


@pytest.fixture
def medium(store: Store, storage_settings: Settings) -> bytes:
    """A portfolio whose 61-day run takes a few seconds: long enough to be interrupted."""
    data = workbook(random_book(3, contracts=40, transactions=3000))
    services.import_workbook(store, data, storage_settings)
    return data


def test_six_concurrent_cli_runs_each_exit_0_or_3_and_the_result_equals_one_run(
    store, storage_settings, storage_env
):
    data = workbook(random_book(8, contracts=12, transactions=600))
    services.import_workbook(store, data, storage_settings)
    runs = [cli(storage_env, "run", "--from", str(START), "--to", str(END)) for _ in range(6)]
    outcomes = [(p.wait(timeout=120), p.communicate()) for p in runs]
    codes = [code for code, _ in outcomes]
    assert set(codes) <= {0, 3}, outcomes
    assert 0 in codes
    for code, (_, err) in outcomes:
        if code == 3:
            assert "another run holds the lease; nothing done" in err
    assert_same_as_one_clean_run(store, storage_settings, data)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_the_next_run_completes_without_duplicate_or_loss(
    store, storage_settings, storage_env, medium
):
    rnd = random.Random(20201005)
    interrupted = 0
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and interrupted < 5:
        process = cli(storage_env, "run", "--from", str(START), "--to", str(END))
        time.sleep(rnd.uniform(0.6, 2.5))  # the process needs ~0.5 s to start, the run ~4 s
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.communicate()
        entries = services.ledger_entries(store)
        if not entries:
            continue  # killed before it started (a loaded machine starts processes slowly)
        if all(e["state"] == "completed" for e in entries):
            break  # that run got to the end before the kill
        interrupted += 1  # killed mid-run: some date is started but not completed
        break_lease(store)  # the dead run's lease would expire within INVOICE_LEASE_SECONDS
    assert interrupted >= 2, "the kills should land while the run works"
    final = cli(storage_env, "run", "--from", str(START), "--to", str(END))
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    assert_same_as_one_clean_run(store, storage_settings, medium)


def crash_book() -> Book:
    """One contract with a run date too big for one transaction (the Pending path: 60 items split
    between two customers), and two small ones due on several dates (the packed path)."""
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    for cid, customers in (
        ("BIG", [("K1", 50), ("K2", 50)]),
        ("S1", [("K", 100)]),
        ("S2", [("K", 100)]),
    ):
        book["Contracts"].append([cid, f"{cid} name", "EUR", 30])
        for k, split in customers:
            book["Customers"].append([cid, k, f"{k} name", split, None, None])
        book["ContractLines"].append(
            [
                cid,
                "L",
                "Work",
                "Time and material",
                None,
                None,
                "Daily" if cid != "S2" else "Weekly",
                None if cid != "S2" else "Friday",
                date(2020, 10, 1),
                None,
                None,
            ]
        )
    for n in range(60):
        book["Transactions"].append(
            [
                f"B{n:02d}",
                "BIG",
                "L",
                "Time",
                date(2020, 10, 1),
                f"w{n}",
                None,
                None,
                None,
                10 + n,
                "Yes",
            ]
        )
    for n in range(12):
        cid = "S1" if n % 2 else "S2"
        book["Transactions"].append(
            [
                f"S{n:02d}",
                cid,
                "L",
                "Fee",
                date(2020, 10, 1 + n // 2),
                f"s{n}",
                None,
                None,
                None,
                5 + n,
                "Yes",
            ]
        )
    return book


def fresh(settings: Settings) -> tuple[Store, Settings]:
    own = dataclasses.replace(settings, table_prefix="t" + uuid.uuid4().hex[:16])
    return services.open_store(own), own


def test_a_failure_after_every_kth_write_then_a_rerun_gives_the_clean_result(storage_settings):
    data = workbook(crash_book())
    span = (date(2020, 10, 1), date(2020, 10, 10))
    clean, settings = fresh(storage_settings)
    services.import_workbook(clean, data, settings, workers=1)
    before = clean.writes
    services.run_daily(clean, settings, span=span, workers=1)
    writes = clean.writes - before
    want = stored(clean)
    assert len(want[0]) > 8 and writes >= 8
    for k in range(1, writes + 1):
        store, settings = fresh(storage_settings)
        services.import_workbook(store, data, settings)  # the import is not what fails here
        seen = [0]

        def fail_at_k(label: str, seen: list[int] = seen, k: int = k) -> None:
            seen[0] += 1
            if seen[0] == k:
                raise WriteRefused(f"injected failure before write {k} ({label})")

        store.write_hook = fail_at_k
        with pytest.raises(WriteRefused):
            services.run_daily(store, settings, span=span, workers=1)
        store.write_hook = None
        services.run_daily(store, settings, span=span, workers=1)
        assert stored(store) == want, f"after a failure before write {k}"
        assert services.audit(store, settings) == [], f"after a failure before write {k}"


def test_a_failure_during_import_then_a_reimport_gives_the_clean_store(storage_settings):
    data = workbook(random_book(4, contracts=6, transactions=900))
    clean, settings = fresh(storage_settings)
    services.import_workbook(clean, data, settings, workers=1)
    store, settings = fresh(storage_settings)

    def fail(label: str) -> None:
        if store.writes == 4:
            raise WriteRefused("injected")

    store.write_hook = fail
    with pytest.raises(WriteRefused):
        services.import_workbook(store, data, settings, workers=1)
    store.write_hook = None
    services.import_workbook(store, data, settings)

    def strip(rows: dict) -> dict:
        return {k: {p: v for p, v in e.items() if p != "_etag"} for k, e in rows.items()}

    for contract_id, _ in clean.contracts():
        a, b = clean.load(contract_id), store.load(contract_id)
        assert strip(a.transactions) == strip(b.transactions)
        assert a.contract() == b.contract()


def test_a_lease_broken_from_outside_stops_the_run_at_the_next_renewal_within_a_third_of_it(
    store, storage_settings
):
    """R18 as decided for issue 11: a write is fenced locally (no round trip), so an outside break
    is noticed at the first renewal after it, within a third of the lease; no write is cleared
    after that renewal, and the next run finishes the work."""
    data = workbook(random_book(5, contracts=8, transactions=400))
    services.import_workbook(store, data, storage_settings)
    base = store.writes
    leases: list[Lease] = []
    broken: list[tuple[float, int]] = []  # (monotonic time, renewals sent) at the break
    cleared: list[float] = []  # monotonic time of every write cleared after the break

    def break_at_third_write_then_write_slowly(label: str) -> None:
        if not leases:
            assert store.lease is not None
            leases.append(store.lease)
        if broken:
            cleared.append(time.monotonic())
            time.sleep(0.1)  # slow writes: the run outlasts a third of the lease
        elif store.writes - base == 3:
            break_lease(store)
            broken.append((time.monotonic(), leases[0].renewals))

    store.write_hook = break_at_third_write_then_write_slowly
    with pytest.raises(LeaseLost, match="lost the lease"):
        services.run_daily(store, storage_settings, span=(START, END), workers=1)
    lease = leases[0]
    broken_at, renewals_before = broken[0]
    assert lease.lost_at is not None
    # the first renewal after the break noticed it, within a third of the lease (+ its latency)
    assert lease.renewals == renewals_before + 1
    assert lease.lost_at - broken_at <= lease.renew_every + 1.0
    # writes went on, fenced locally, until then; none was cleared after it
    assert cleared and max(cleared) <= lease.lost_at + 0.02
    assert len(cleared) < 127 - 3  # the run (127 writes clean) stopped early
    store.write_hook = None
    services.run_daily(store, storage_settings, span=(START, END))
    assert_same_as_one_clean_run(store, storage_settings, data)


def test_lease_round_trips_follow_the_clock_not_the_writes(store, storage_settings):
    """Issue 11: one renewal per third of the lease, however many batches are written (it was
    one lease PUT per write); the import and the run each hold their own lease."""
    data = workbook(random_book(3, contracts=40, transactions=3000))
    leases: dict[int, tuple[Lease, list[float]]] = {}  # id -> (lease, [first, last] write time)

    def watch(label: str) -> None:
        assert store.lease is not None
        now = time.monotonic()
        leases.setdefault(id(store.lease), (store.lease, [now, now]))[1][1] = now

    store.write_hook = watch
    base = store.writes
    services.import_workbook(store, data, storage_settings)
    services.run_daily(store, storage_settings, span=(START, END), workers=1)
    assert store.writes - base > 500  # many batches: the import's and the run's
    assert len(leases) == 2
    for lease, (first, last) in leases.values():
        elapsed = last - first
        assert lease.renewals <= elapsed / lease.renew_every + 2, (lease.renewals, elapsed)
        # and the thread did keep it renewed: the writes never stopped for want of a renewal
        assert lease.renewals >= int(elapsed / lease.renew_every) - 1, (lease.renewals, elapsed)
        assert lease.lost_at is None
    store.write_hook = None
    assert_same_as_one_clean_run(store, storage_settings, data)


def test_a_cli_run_whose_lease_is_broken_exits_1_with_a_clear_message_and_the_next_run_finishes(
    store, storage_settings, storage_env, medium
):
    # writes slowed so the run outlasts the next renewal (a third of the lease) after the break
    env = storage_env | {"SLOW_WRITE_SECONDS": "0.1"}
    args = ("run", "--from", str(START), "--to", str(END))
    process = cli(env, *args, module="tests.support.slow_writes")
    deadline = time.monotonic() + 30
    while not services.ledger_entries(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    break_lease(store)
    broken_at = time.monotonic()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert time.monotonic() - broken_at < storage_settings.lease_seconds / 3 + 5
    assert "lost the lease" in err and "the next run finishes the work" in err
    assert err.count("\n") == 1  # one line, no traceback
    final = cli(storage_env, "run", "--from", str(START), "--to", str(END))
    assert final.wait(timeout=120) == 0
    final.communicate()
    assert_same_as_one_clean_run(store, storage_settings, medium)


def test_a_held_lease_makes_run_and_import_exit_3_doing_nothing(
    store, storage_settings, monkeypatch, capsys, tmp_path
):
    data = workbook(random_book(6, contracts=2, transactions=20))
    services.import_workbook(store, data, storage_settings)
    other = services.open_store(storage_settings)
    other.take_lease(15, "run")
    try:
        monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection)
        monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
        assert main(["run", "--date", "2020-10-05"]) == 3
        assert "another run holds the lease; nothing done" in capsys.readouterr().err
        path = tmp_path / "in.xlsx"
        path.write_bytes(data)
        assert main(["import", str(path)]) == 3
        assert services.ledger_entries(store) == []
        assert "leased" in store.lease_state()
    finally:
        other.drop_lease()
    assert main(["run", "--date", "2020-10-05"]) == 0
    assert os.environ["INVOICE_TABLE_PREFIX"] == storage_settings.table_prefix
