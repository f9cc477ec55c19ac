"""S9 fan-out on a real Azurite queue: a run with INVOICE_DISPATCH=queue enqueues one message per
contract, ``worker`` processes (1, 2, 4 of them, killed at random moments or not) invoice exactly
what one inline run invoices; a message delivered twice changes nothing; a contract whose message
keeps failing lands on the poison queue and stays named by the ledger, health and audit while the
others are invoiced, and the next run takes over only the unfinished work."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import signal
import time
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from invoicing import services
from invoicing.catchup import COMPLETED
from invoicing.cli import main
from invoicing.services import dispatch
from invoicing.settings import QUEUE, Settings, SettingsError, queue_host
from invoicing.storage import work
from invoicing.storage.keys import encode_key
from invoicing.storage.queue import WorkQueue, read_body
from invoicing.storage.store import Store
from tests.storage.portfolios import END, START, expected, key_log, random_book, stored, workbook
from tests.storage.test_crashes_and_concurrency import assert_same_as_one_clean_run, cli


def queued_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, dispatch=QUEUE, queue_name="q" + uuid.uuid4().hex[:12])


def queue_env(env: dict[str, str], settings: Settings) -> dict[str, str]:
    return {**env, "INVOICE_DISPATCH": QUEUE, "INVOICE_QUEUE": settings.queue_name}


def imported(store: Store, settings: Settings, seed: int, contracts: int, txns: int) -> bytes:
    data = workbook(random_book(seed, contracts=contracts, transactions=txns))
    services.import_workbook(store, data, settings)
    return data


def ledger_figures(store: Store) -> list[dict]:
    entries = services.ledger_entries(store)
    return [{k: v for k, v in e.items() if k != "completed"} for e in entries]


def all_completed(store: Store) -> bool:
    entries = services.ledger_entries(store)
    return bool(entries) and all(e["state"] == "completed" for e in entries)


def workers(env: dict[str, str], count: int, *extra: str) -> list[tuple[int, str, str]]:
    started = [cli(env, "worker", "--idle-seconds", "3", *extra) for _ in range(count)]
    return [(p.wait(timeout=240), *p.communicate()) for p in started]


# ---- settings and host.json ---------------------------------------------------------------------


def test_dispatch_and_queue_settings_are_validated():
    assert Settings().dispatch == "inline" and Settings().queue_name == "invoicing-work"
    env = {"INVOICING_STORAGE": "x", "INVOICE_DISPATCH": "queue", "INVOICE_QUEUE": "work-1"}
    assert Settings.from_env(env).dispatch == QUEUE
    for name, value in (
        ("INVOICE_DISPATCH", "threads"),
        ("INVOICE_QUEUE", "Work"),
        ("INVOICE_QUEUE", "a--b"),
        ("INVOICE_QUEUE", "x" * 57),  # its poison queue would be over 63 characters
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({**env, name: value})
    # H11's trigger connection is INVOICING_STORAGE: queue mode on AzureWebJobsStorage alone
    # would enqueue where no trigger listens
    with pytest.raises(SettingsError, match="INVOICING_STORAGE"):
        Settings.from_env({"AzureWebJobsStorage": "x", "INVOICE_DISPATCH": "queue"})


def test_host_json_holds_the_queue_settings_the_worker_uses():
    host = queue_host()
    assert host.max_dequeue_count == 5
    assert host.visibility_seconds == 30 and host.batch_size == 16 and host.new_batch_threshold == 8


def test_a_message_body_round_trips_and_anything_else_is_refused():
    body = '{"contract": "A/B 契約", "dates": ["2020-10-01", "2020-10-02"], "batch": "b"}'
    job = read_body(body)
    assert job.contract == "A/B 契約" and job.dates == (date(2020, 10, 1), date(2020, 10, 2))
    for bad in ("nope", "{}", '{"contract": "", "dates": []}', '{"contract": "A", "dates": ["x"]}'):
        with pytest.raises(ValueError, match="not a work message"):
            read_body(bad)
    with pytest.raises(ValueError, match="in order"):
        read_body('{"contract": "A", "dates": ["2020-10-02", "2020-10-01"]}')


# ---- fan-out equals inline ----------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 4])
def test_queue_dispatch_with_concurrent_worker_processes_gives_the_invoices_of_an_inline_run(
    count, store, storage_settings, storage_env
):
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 30 + count, contracts=8, txns=400)
    summary = services.run_daily(store, settings, span=(START, END))
    assert isinstance(summary, services.DispatchSummary)
    assert summary.queued > 0 and summary.dispatched
    every_date = {START + timedelta(days=i) for i in range((END - START).days + 1)}
    assert set(summary.dispatched) | set(summary.completed_at_once) == every_date
    assert not all_completed(store)  # nothing is invoiced before a worker runs
    # two messages at a time, so that every worker gets some of the 8 contracts
    outcomes = workers(queue_env(storage_env, settings), count, "--batch", "2")
    assert [code for code, _, _ in outcomes] == [0] * count, outcomes
    handled = [int(out.split(": ")[1].split(" message")[0]) for _, out, _ in outcomes]
    assert sum(handled) == summary.queued
    assert sum(1 for n in handled if n) >= min(count, 2), handled  # they did work side by side
    assert all_completed(store)
    assert_same_as_one_clean_run(store, settings, data)


def test_a_run_in_queue_mode_says_what_it_enqueued(
    store, storage_settings, cli_env, monkeypatch, capsys
):
    settings = queued_settings(storage_settings)
    imported(store, settings, 40, contracts=3, txns=60)
    monkeypatch.setenv("INVOICE_DISPATCH", QUEUE)
    monkeypatch.setenv("INVOICE_QUEUE", settings.queue_name)
    assert main(["run", "--from", str(START), "--to", str(END)]) == 0
    out = capsys.readouterr().out
    assert f"on queue {settings.queue_name} as batch" in out and "queued 3 contract(s)" in out
    assert main(["worker", "--idle-seconds", "0.5"]) == 0
    assert "3 message(s), 3 done, 0 failed" in capsys.readouterr().out
    assert all_completed(store)


def test_a_message_delivered_twice_changes_nothing(store, storage_settings):
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 41, contracts=5, txns=300)
    queue = services.open_queue(settings)
    services.run_daily(store, settings, span=(START, END), queue=queue)
    pending = services.audit(store, settings)  # dispatched, not invoiced yet: audit says so
    assert any("dispatched on the work queue" in v and "5 contract(s) not committed" in v
               for v in pending)
    deliveries = queue.receive(60, max_messages=32)
    assert len(deliveries) == 5
    for delivery in deliveries:  # every message twice, the second while the first is done
        for _ in range(2):
            services.process_message(store, settings, delivery.body, 1)
    assert all_completed(store)
    assert_same_as_one_clean_run(store, settings, data)
    ledger = ledger_figures(store)
    writes = store.writes
    again = services.process_message(store, settings, deliveries[0].body, 1)  # a late redelivery
    assert again.ledger_written  # the batch is done: the same figures written again
    assert ledger_figures(store) == ledger
    assert store.writes - writes <= 4  # its done row, two deletes, the ledger: no invoice row
    assert_same_as_one_clean_run(store, settings, data)


def test_work_committed_but_not_recorded_fails_its_messages_and_the_redelivery_records_it(
    store, storage_settings
):
    """A storage error after the commits, while recording them in the batch: every message of
    the group fails (nothing is lost: the redelivery skips the committed dates and records)."""
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 47, contracts=3, txns=120)
    queue = services.open_queue(settings)
    services.run_daily(store, settings, span=(START, END), queue=queue)
    messages = [(d.body, 1) for d in queue.receive(60, max_messages=32)]

    def reset_connection(label: str) -> None:
        if label == "work-done":
            raise ConnectionResetError("injected: the connection was reset")

    store.write_hook = reset_connection
    first = dispatch.process_messages(store, settings, messages, workers=2)
    assert all(isinstance(r, services.WorkFailed) and "retried" in str(r) for r in first)
    assert not all_completed(store)
    store.write_hook = None
    again = dispatch.process_messages(store, settings, [(b, 2) for b, _ in messages])
    assert all(isinstance(r, services.WorkDone) for r in again)
    assert sum(r.ledger_written for r in again) == 3  # one group: all three see it written
    assert all_completed(store)
    assert_same_as_one_clean_run(store, settings, data)


@pytest.mark.slow
def test_workers_sigkilled_at_random_moments_then_a_drain_ends_with_a_clean_audit(
    store, storage_settings, storage_env
):
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 42, contracts=24, txns=1800)
    services.run_daily(store, settings, span=(START, END))
    env = queue_env(storage_env, settings)
    rnd = random.Random(20201006)
    interrupted = 0
    for _ in range(5):
        if all_completed(store):
            break
        pair = [cli(env, "worker", "--visibility-seconds", "2", "--idle-seconds", "2")
                for _ in range(2)]
        time.sleep(rnd.uniform(1.0, 3.0))  # start-up ~0.7 s, then a contract every ~0.2 s
        for process in pair:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            process.communicate()
        interrupted += not all_completed(store)  # killed while some contract was still to do
    assert interrupted >= 2, "the kills should land while they work"
    (code, out, err), = workers(env, 1, "--visibility-seconds", "2")
    assert code == 0, (out, err)
    assert all_completed(store)
    assert_same_as_one_clean_run(store, settings, data)


@pytest.mark.slow
def test_an_import_racing_the_workers_ends_with_a_clean_audit_and_every_date_completed(
    store, storage_settings, storage_env
):
    """S9: a worker never interleaves with an import of the same contract (the N:state fence:
    the loser's commit or import fails and is retried); whatever the interleaving, nothing is
    invoiced twice and every date completes."""
    settings = queued_settings(storage_settings)
    imported(store, settings, 46, contracts=10, txns=600)
    more = workbook(random_book(46, contracts=10, transactions=800))  # the same + 200 items
    services.run_daily(store, settings, span=(START, END))
    env = queue_env(storage_env, settings)
    pair = [
        cli(env, "worker", "--visibility-seconds", "2", "--idle-seconds", "3") for _ in range(2)
    ]
    time.sleep(1.2)  # the workers are committing
    for attempt in range(10):  # an import that met a worker's commit fails, naming it: again
        try:
            services.import_workbook(store, more, settings)
            break
        except Exception as exc:
            assert attempt < 9, exc
            time.sleep(0.3)
    for process in pair:
        process.wait(timeout=240)
        process.communicate()
    (code, out, err), = workers(env, 1, "--visibility-seconds", "2")
    assert code == 0, (out, err)
    assert all_completed(store)
    assert services.audit(store, settings) == []


# ---- poison -------------------------------------------------------------------------------------


def break_configuration(store: Store, contract_id: str) -> list[tuple[Any, dict]]:
    """Damage a contract's stored configuration (its JSON document) wherever a copy of it is
    kept (the main table, and the work table of open items when there is one); returns the
    originals (table, entity) to put back."""
    pk = encode_key(contract_id)
    originals = []
    for table in (store.table, store.work):
        client = table.client(pk)
        try:
            original = dict(client.get_entity(pk, "C"))
        except ResourceNotFoundError:
            continue
        originals.append((client, original))
        client.upsert_entity(
            {"PartitionKey": pk, "RowKey": "C", "P0": "{broken"}, UpdateMode.MERGE
        )
    assert originals
    return originals


def restore(store: Store, originals: list[tuple[Any, dict]]) -> None:
    for client, entity in originals:
        client.upsert_entity(entity, UpdateMode.REPLACE)


def test_a_poison_message_names_its_contract_while_the_others_are_invoiced_then_a_run_finishes_it(
    store, storage_settings, cli_env, monkeypatch, capsys
):
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 43, contracts=4, txns=200)
    want, want_log = expected(data)
    broken = sorted({i.contract_id for i in want})[0]
    original = break_configuration(store, broken)
    monkeypatch.setenv("INVOICE_DISPATCH", QUEUE)
    monkeypatch.setenv("INVOICE_QUEUE", settings.queue_name)
    first = services.run_daily(store, settings, span=(START, END))
    assert main(["worker", "--visibility-seconds", "1", "--idle-seconds", "3"]) == 1
    out, err = capsys.readouterr()
    assert "moved to " + settings.queue_name + "-poison" in err + out
    queue = WorkQueue(settings.storage_connection or "", settings.queue_name)
    poisoned = [read_body(text) for text in queue.peek_poison()]
    assert [job.contract for job in poisoned] == [broken]
    # the others are invoiced; the broken contract's dates stay incomplete and named
    invoices, _ = stored(store)
    assert invoices == [i for i in want if i.contract_id != broken]
    entries = services.ledger_entries(store)
    assert entries and all(e["state"] == "incomplete" for e in entries)
    assert all(broken in e["failed_contracts"] for e in entries)
    report = services.health_report(store)
    assert report["status"] == "attention" and len(report["incomplete_dates"]) == len(entries)
    assert set(report["failed_contracts"]) == set(report["incomplete_dates"])
    assert all(list(named) == [broken] for named in report["failed_contracts"].values())
    violations = services.audit(store, settings)
    assert any(f"contract {broken} failed" in v and str(START) in v for v in violations)
    assert main(["audit"]) == 4
    capsys.readouterr()
    # fixed: the next run takes over the unfinished batch and queues that contract alone
    restore(store, original)
    second = services.run_daily(store, settings, span=(START, END))
    assert isinstance(second, services.DispatchSummary)
    assert second.taken_over == [first.batch] and second.queued == 1
    assert main(["worker", "--idle-seconds", "0.5"]) == 0
    assert all_completed(store)
    assert_same_as_one_clean_run(store, settings, data)
    assert key_log(stored(store)[1]) == key_log(want_log)


def test_a_worker_on_a_contract_whose_import_is_unfinished_fails_and_is_retried(
    store, storage_settings
):
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 44, contracts=2, txns=60)
    queue = services.open_queue(settings)
    services.run_daily(store, settings, span=(START, END), queue=queue)
    received = queue.receive(60, max_messages=32)
    first, second = sorted(received, key=lambda d: read_body(d.body).contract)
    job = read_body(first.body)
    row = store.get(store.globals, "contracts", encode_key(job.contract))
    assert row is not None
    store.globals.upsert_entity({**{k: v for k, v in row.items() if k != "_etag"},
                                 "Importing": "2020-12-01T00:00:00+00:00"})
    with pytest.raises(services.WorkFailed, match=r"import .* has not finished"):
        services.process_message(store, settings, first.body, 1)
    assert not services.list_invoices(store, None, None, None, job.contract)[0]
    store.globals.upsert_entity({k: v for k, v in row.items() if k != "_etag"}, UpdateMode.REPLACE)
    for delivery in (second, first):  # the redelivery after the import finished
        services.process_message(store, settings, delivery.body, 2)
    assert all_completed(store)
    assert_same_as_one_clean_run(store, settings, data)


def test_a_run_with_nothing_due_completes_its_dates_at_once(store, storage_settings):
    settings = queued_settings(storage_settings)
    imported(store, settings, 45, contracts=2, txns=40)
    queue = services.open_queue(settings)
    span = (date(2020, 1, 1), date(2020, 1, 3))  # before every schedule and milestone
    summary = services.run_daily(store, settings, span=span, queue=queue)
    assert isinstance(summary, dispatch.DispatchSummary)
    assert summary.queued == 0 and len(summary.completed_at_once) == 3
    assert queue.receive(1, max_messages=32) == []
    assert all_completed(store)
    assert json.loads(json.dumps(summary.as_dict(), default=str))["dispatch"] == "queue"
    assert work.new_batch(datetime(2030, 1, 4)).startswith("20300104")


# ---- finished batches are swept -----------------------------------------------------------------


def batch_rows(store: Store, batch: str) -> list[dict]:
    """Every row of a batch: its header and problem rows, its queued and its done rows."""
    return store.query(
        store.globals,
        "PartitionKey ge @lo and PartitionKey lt @hi",
        {"lo": work.PREFIX + batch, "hi": work.PREFIX + batch + ";"},  # ";" follows ":"
    )


def test_a_finished_batch_is_swept_a_week_later_and_a_late_delivery_then_records_nothing(
    store, storage_settings
):
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 44, contracts=4, txns=200)
    queue = services.open_queue(settings)
    summary = services.run_daily(store, settings, span=(START, END), queue=queue)
    deliveries = queue.receive(60, max_messages=32)
    for delivery in deliveries:
        services.process_message(store, settings, delivery.body, 1)
    assert all_completed(store) and summary.batch
    kept = len(batch_rows(store, summary.batch))
    assert kept >= 1 + len(deliveries)  # the header and a done row per contract
    now = datetime.now().astimezone()
    soon = services.run_daily(store, settings, span=(START, END), queue=queue, now=now)
    assert soon.swept == [] and len(batch_rows(store, summary.batch)) == kept
    later = now + work.KEEP_FINISHED + timedelta(hours=1)
    swept = services.run_daily(store, settings, span=(START, END), queue=queue, now=later)
    assert swept.swept == [summary.batch] and swept.as_dict()["batches_swept"] == swept.swept
    assert batch_rows(store, summary.batch) == []
    assert all_completed(store)
    ledger = ledger_figures(store)
    late = services.process_message(store, settings, deliveries[0].body, 2)
    assert not late.ledger_written and late.invoices == 0
    assert batch_rows(store, summary.batch) == []  # nothing written back into the swept batch
    assert ledger_figures(store) == ledger
    assert_same_as_one_clean_run(store, settings, data)
    assert services.audit(store, settings) == []


def test_a_batch_with_an_incomplete_date_is_never_swept(store, storage_settings):
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 43, contracts=4, txns=200)
    broken = sorted({i.contract_id for i in expected(data)[0]})[0]
    break_configuration(store, broken)
    queue = services.open_queue(settings)
    summary = services.run_daily(store, settings, span=(START, END), queue=queue)
    limit = queue_host().max_dequeue_count
    for delivery in queue.receive(60, max_messages=32):
        with contextlib.suppress(services.WorkFailed):
            services.process_message(store, settings, delivery.body, limit)
    entries = services.ledger_entries(store)
    assert entries and all(e["state"] == "incomplete" for e in entries)
    kept = batch_rows(store, summary.batch or "")
    far = datetime.now().astimezone() + timedelta(days=60)
    again = services.run_daily(store, settings, span=(START, END), queue=queue, now=far)
    assert again.swept == []
    assert summary.batch and len(batch_rows(store, summary.batch)) >= len(kept)
    report = services.health_report(store)
    assert all(list(named) == [broken] for named in report["failed_contracts"].values())


def test_a_batch_taken_over_is_kept_while_the_batch_that_took_it_over_is_kept(
    store, storage_settings
):
    """The batch that took one over sums the done rows of both when a late delivery makes it
    finish again: sweeping the old one first would rewrite the ledger with part of its counts."""
    settings = queued_settings(storage_settings)
    data = imported(store, settings, 43, contracts=4, txns=200)
    broken = sorted({i.contract_id for i in expected(data)[0]})[0]
    original = break_configuration(store, broken)
    queue = services.open_queue(settings)
    first = services.run_daily(store, settings, span=(START, END), queue=queue)
    limit = queue_host().max_dequeue_count
    for delivery in queue.receive(60, max_messages=32):
        with contextlib.suppress(services.WorkFailed):
            services.process_message(store, settings, delivery.body, limit)
    restore(store, original)
    time.sleep(1.1)  # batch ids carry the second they were made: the next one is younger
    second = services.run_daily(store, settings, span=(START, END), queue=queue)
    assert isinstance(second, services.DispatchSummary) and second.taken_over == [first.batch]
    (late,) = queue.receive(60, max_messages=32)
    services.process_message(store, settings, late.body, 1)
    assert all_completed(store)
    ledger = ledger_figures(store)
    assert first.batch and second.batch and work.batch_started(second.batch)
    # the first batch is past the week and completed, the second is not past it yet
    now = work.batch_started(second.batch) + work.KEEP_FINISHED - timedelta(seconds=0.5)
    assert dispatch.sweep_batches(store, now) == []
    assert batch_rows(store, first.batch)
    services.process_message(store, settings, late.body, 2)  # a late delivery of the second
    assert ledger_figures(store) == ledger
    later = now + timedelta(seconds=1)
    order = work.finished_batches(store, store.ledger(), later)
    assert order == [second.batch, first.batch]  # the taker first
    work.delete_batch(store, order[0])  # a sweep cut short after its first batch
    services.process_message(store, settings, late.body, 3)  # of a swept batch: records nothing
    assert ledger_figures(store) == ledger
    assert dispatch.sweep_batches(store, later) == [first.batch]
    assert_same_as_one_clean_run(store, settings, data)
    assert services.audit(store, settings) == []


def test_a_sweep_deletes_a_taker_before_what_it_took_over_whatever_their_ids(store):
    """Batch ids are local wall-clock seconds plus a random suffix: a taker made in the same
    second, or after the clock went back (DST fall-back, NTP step), can sort before the batch
    it took over; the sweep must still delete the taker first."""
    day = date(2026, 10, 24)
    taken = "20261025015000-ffffffff"  # 01:50 CEST, first pass of the repeated hour
    taker = "20261025011000-00000000"  # 01:10 CET, the repeated hour: it took ``taken`` over
    work.write_header(store, work.header_entity(taken, [day], contracts=1, started="x"))
    work.write_header(
        store,
        work.header_entity(taker, [day], contracts=1, started="x", supersedes=[taken]),
    )
    ledger = {day: {"State": COMPLETED}}
    order = work.finished_batches(store, ledger, datetime(2027, 1, 1))
    assert order == [taker, taken]
