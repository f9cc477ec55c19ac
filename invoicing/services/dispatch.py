"""Fan-out of the daily run across instances (S9): dispatch under the lease, one queue message per
contract, a worker per message (H11, ``worker``), and the ledger completed by the last worker.

``INVOICE_DISPATCH=inline`` (the default): ``run_daily`` is ``runs.run_daily``, one process.
``queue``: ``run_daily`` takes the lease, chooses the dates exactly like an inline run (R19), and
``dispatch_dates`` records a *batch* (``storage.work``): the contracts the dates concern
(``runs.select_contracts``: S5a, S8) each get a queued row and one message naming the contract
and every date of the batch (in order, as an inline run plans them). A worker
(``process_message``) invoices its contract with the same crash-safe per-(contract, date) commit
protocol (``runs.invoice_contracts``), records the markers' counts, deletes its queued row and,
when none is left, writes the ledger entries of the batch's dates: completed, or incomplete naming
every contract that was poisoned or blocked.

Why it is exactly-once in effect (R17): a contract's dates are always planned together and in
order, from its committed invoices; a (contract, date) with a marker is skipped; invoice ids are
deterministic, so a message delivered twice, a worker killed anywhere, or two workers on the same
contract write the same rows. A contract that fails raises, so its message comes back after the
host's ``visibilityTimeout``; on its last delivery (``maxDequeueCount``) it is recorded as
poisoned first, so the ledger, ``health`` and ``audit`` name it. The next run takes an unfinished
batch over: its dates join the new batch, whose contracts are the old batch's unfinished ones (not
every contract again) plus those due on the new dates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from invoicing import catchup
from invoicing.errors import BadRequest
from invoicing.services import runs
from invoicing.services.common import DEFAULT_WORKERS, Progress, now_text
from invoicing.settings import QUEUE, Settings, queue_host
from invoicing.storage import rows, work
from invoicing.storage.errors import StorageNotConfigured
from invoicing.storage.queue import Work, WorkQueue, read_body
from invoicing.storage.store import Store, upsert_op

log = logging.getLogger("invoicing.services")
MAX_DATES = 1000  # a message names every date of its batch: 64 KiB of base64 holds ~3,000


class WorkFailed(RuntimeError):
    """A message's contract was not invoiced this time; raised so that it is delivered again
    (or, after ``maxDequeueCount`` deliveries, lands on the poison queue)."""


@dataclass
class DispatchSummary(runs.RunSummary):
    """What a run in queue mode did: the dates it chose (R19) and the work it enqueued; the
    invoices are counted in the ledger as the workers commit."""

    batch: str | None = None
    queue: str = ""
    queued: int = 0  # contracts enqueued
    taken_over: list[str] = field(default_factory=list)  # unfinished batches it took over
    completed_at_once: list[date] = field(default_factory=list)  # dates nothing was due on
    dispatched: list[date] = field(default_factory=list)  # dates left to the workers
    swept: list[str] = field(default_factory=list)  # finished batches whose rows were deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "dispatch": QUEUE,
            "queue": self.queue,
            "batch": self.batch,
            "contracts_queued": self.queued,
            "dates_dispatched": [d.isoformat() for d in self.dispatched],
            "dates_completed_at_once": [d.isoformat() for d in self.completed_at_once],
            "batches_taken_over": self.taken_over,
            "batches_swept": self.swept,
        }


@dataclass(frozen=True)
class WorkDone:
    """What one message did."""

    contract: str
    dates: tuple[date, ...]
    invoices: int
    ledger_written: bool  # this worker found the batch done and wrote its ledger entries


def open_queue(settings: Settings) -> WorkQueue:
    """The work queue of the settings (INVOICE_QUEUE, same connection as the tables), created
    with its poison queue if missing."""
    if not settings.storage_connection:
        raise StorageNotConfigured()
    queue = WorkQueue(settings.storage_connection, settings.queue_name)
    queue.ensure()
    return queue


def run_daily(
    store: Store,
    settings: Settings,
    today: date | None = None,
    span: tuple[date, date] | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    now: datetime | None = None,
    queue: WorkQueue | None = None,
) -> runs.RunSummary:
    """The daily run (R17-R19) in the mode INVOICE_DISPATCH says: ``runs.run_daily`` inline;
    in queue mode the same date choice under the same lease, then ``dispatch_dates``."""
    if settings.dispatch != QUEUE:
        return runs.run_daily(
            store, settings, today, span, workers=workers, progress=progress, now=now
        )
    opened = queue or open_queue(settings)
    summary = DispatchSummary(queue=settings.queue_name)
    runs.run_daily(
        store,
        settings,
        today,
        span,
        now=now,
        summary=summary,
        run_dates=lambda dates, _: dispatch_dates(store, opened, settings, dates, summary),
    )
    # after the lease: a finished batch a week old is touched by nobody (no run takes a
    # completed date over, no message of it is left), and deleting twice is harmless
    summary.swept = sweep_batches(store, (now or datetime.now().astimezone()))
    return summary


def sweep_batches(store: Store, now: datetime) -> list[str]:
    """Delete the rows of the batches ``work.finished_batches`` names (a week old, every date
    completed), so that the bookkeeping of queued runs does not grow for ever."""
    local = now.astimezone().replace(tzinfo=None) if now.tzinfo else now
    swept = work.finished_batches(store, store.ledger(), local)
    for batch in swept:
        deleted = work.delete_batch(store, batch)
        log.info("batch %s finished more than a week ago: %d row(s) deleted", batch, deleted)
    return swept


def dispatch_dates(
    store: Store,
    queue: WorkQueue,
    settings: Settings,
    dates: list[date],
    summary: DispatchSummary | None = None,
) -> DispatchSummary:
    """Enqueue the work of ``dates`` (called under the run lease). The caller chose the dates;
    unfinished batches their ledger entries name are taken over (their dates join this batch,
    their unfinished contracts are enqueued again: duplicates are harmless)."""
    summary = summary or DispatchSummary(queue=settings.queue_name)
    ledger = store.ledger()
    taken: dict[str, work.Header] = {}
    for batch in sorted({b for d in dates if (b := work.ledger_batch(ledger.get(d)))}):
        head = work.header(store, batch)
        if head is not None and head.sealed:  # an unsealed batch never sent a message
            taken[batch] = head
    covered = {d for head in taken.values() for d in head.dates}
    day_set = set(dates) | {
        d
        for d in covered
        if rows.ledger_state(ledger.get(d) or {}) != catchup.COMPLETED
    }
    fresh = sorted(set(dates) - covered)
    if len(day_set) > MAX_DATES:
        raise BadRequest(
            f"{len(day_set)} run dates: a queued run covers at most {MAX_DATES}; run the range "
            "in parts"
        )
    selection = runs.select_contracts(store, fresh)
    summary.contracts = len(selection.everyone)
    remaining: set[str] = set()
    for batch in taken:
        remaining.update(work.queued(store, batch))
        remaining.update(p["ContractId"] for p in work.problems(store, batch))
    wanted = (set(selection.due) | remaining) - selection.blocked
    order = {c: n for n, c in enumerate(selection.everyone)}
    contracts = sorted(wanted, key=lambda c: (order.get(c, len(order)), c))
    at_once = [] if selection.blocked else _nothing_due(store, fresh, selection)
    batch_dates = sorted(day_set - set(at_once))
    started = now_text()
    batch = work.new_batch(datetime.now())
    supersedes = set(taken) | {s for h in taken.values() for s in h.supersedes}
    if batch_dates:
        head = work.header_entity(
            batch,
            batch_dates,
            contracts=len(selection.everyone),
            started=started,
            supersedes=supersedes,
        )
        work.write_header(store, head)
        blocked = [
            work.problem_entity(
                batch, c, work.BLOCKED, "its import never finished (S5a)", batch_dates
            )
            for c in sorted(selection.blocked)
        ]
        work.write_rows(store, [*(work.queued_entity(batch, c) for c in contracts), *blocked])
        work.write_header(store, {**head, "Sealed": True})
    entries = [work.with_batch(rows.ledger_started(d, started), batch) for d in batch_dates]
    entries += [
        _finished(d, started, len(selection.everyone), runs.DateSummary(d)) for d in at_once
    ]
    store.submit(store.globals, [upsert_op(e) for e in entries], "ledger-started")
    if batch_dates:
        days = tuple(batch_dates)
        queue.send([Work(c, days, batch) for c in contracts], workers=4)
        finish(store, batch)  # nothing to wait for: a batch of no contract is done at once
    summary.batch = batch if batch_dates else None
    summary.queued = len(contracts)
    summary.taken_over = sorted(taken)
    summary.completed_at_once = at_once
    summary.dispatched = batch_dates
    summary.blocked = sorted(selection.blocked)
    summary.dates = [runs.DateSummary(d) for d in at_once]
    log.info(
        "dispatched %d contract(s) over %d date(s) as batch %s on queue %s",
        len(contracts),
        len(batch_dates),
        batch,
        queue.name,
    )
    return summary


def _nothing_due(store: Store, fresh: list[date], selection: runs.Selection) -> list[date]:
    """The fresh dates no contract has anything due on (nor any contract the due-date index
    does not hold yet): they complete at once."""
    everyone = set(selection.everyone)
    per_day = {d: found & everyone for d, found in store.due_by_date(fresh).items()}
    indexed = set().union(*per_day.values()) if per_day else set()
    if set(selection.due) - indexed:  # contracts the index does not hold: due every date
        return []
    return [d for d, due in per_day.items() if not due]


def _finished(
    day: date,
    started: str,
    contracts: int,
    summary: runs.DateSummary,
    *,
    blocked: Iterable[str] = (),
    failed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    blocked = sorted(blocked)
    state = catchup.INCOMPLETE if blocked or failed else catchup.COMPLETED
    return rows.ledger_finished(
        day,
        state=state,
        started=started,
        finished=now_text(),
        contracts=contracts,
        counts=summary.counts(),
        amounts=summary.amounts,
        blocked=blocked,
        failed=failed,
    )


def finish(store: Store, batch: str, head: work.Header | None = None) -> bool:
    """Write the ledger entries of ``batch``'s dates if it waits for no contract any more:
    completed with the counts of every commit marker (its done rows and those of the batches it
    took over), or incomplete naming the poisoned and blocked contracts. Safe to run twice or
    concurrently: the same rows give the same figures. True when written."""
    head = head or work.header(store, batch)  # the caller's read, when it has one
    if head is None or not head.sealed:
        return False
    problems = work.problems(store, batch)
    if work.any_queued(store, batch):
        return False
    markers: dict[tuple[str, date], Mapping[str, Any]] = {}
    for source in [*sorted(head.supersedes), batch]:
        for row in work.done(store, source):
            for day, marker in work.done_markers(row).items():
                markers[(row["ContractId"], day)] = marker
    ledger = store.ledger()
    mine = [d for d in head.dates if work.ledger_batch(ledger.get(d)) == batch]
    if not mine:  # taken over by a later batch, which writes them
        return False
    by_date = {d: runs.DateSummary(d) for d in mine}
    for (_, day), marker in markers.items():
        if day in by_date:
            by_date[day].add(marker)
    blocked = [p["ContractId"] for p in problems if p.get("Kind") == work.BLOCKED]
    failed = {
        p["ContractId"]: p.get("Reason") or "" for p in problems if p.get("Kind") == work.POISONED
    }
    entries = [
        work.with_batch(
            _finished(
                d,
                (ledger.get(d) or {}).get("Started") or head.started,
                head.contracts,
                by_date[d],
                blocked=blocked,
                failed=failed,
            ),
            batch,
        )
        for d in mine
    ]
    store.submit(store.globals, [upsert_op(e) for e in entries], "ledger-completed")
    log.info("batch %s done: %d date(s) written to the ledger", batch, len(entries))
    return True


def process_message(
    store: Store,
    settings: Settings,
    body: str | bytes,
    dequeue_count: int,
    *,
    max_dequeue_count: int | None = None,
) -> WorkDone:
    """The worker (H11): invoice one message's contract over its dates, then record it in its
    batch. Raises ``WorkFailed`` when the contract failed or is blocked, so that the message is
    delivered again; on its last allowed delivery (``dequeue_count`` >= maxDequeueCount of
    host.json) the contract is first recorded as poisoned (or blocked) with the reason, so that
    its dates stay incomplete and named until someone fixes it. ``ValueError`` for a body that
    is not a work message."""
    result = process_messages(
        store, settings, [(body, dequeue_count)], max_dequeue_count=max_dequeue_count
    )[0]
    if isinstance(result, Exception):
        raise result
    return result


def process_messages(
    store: Store,
    settings: Settings,
    messages: Sequence[tuple[str | bytes, int]],
    *,
    max_dequeue_count: int | None = None,
    workers: int = 1,
) -> list[WorkDone | Exception]:
    """``process_message`` for several messages at once (body, dequeue count), as the ``worker``
    command receives them: the contracts of one batch are invoiced together (one round of
    ``runs.invoice_contracts``, so their index rows share transactions) and recorded together;
    each message gets its own outcome, a ``WorkDone`` or the exception it would have raised."""
    limit = max_dequeue_count or queue_host().max_dequeue_count
    results: list[WorkDone | Exception | None] = [None] * len(messages)
    groups: dict[tuple[str, tuple[date, ...]], list[tuple[int, Work, int]]] = {}
    for n, (body, count) in enumerate(messages):
        try:
            job = read_body(body)
        except ValueError as exc:
            results[n] = exc
            continue
        groups.setdefault((job.batch, job.dates), []).append((n, job, count))
    for (batch, dates), members in groups.items():
        for n, outcome in _process_group(store, batch, list(dates), members, limit, workers):
            results[n] = outcome
    return [r if r is not None else WorkFailed("not processed") for r in results]


def _process_group(
    store: Store,
    batch: str,
    dates: list[date],
    members: list[tuple[int, Work, int]],
    limit: int,
    workers: int,
) -> list[tuple[int, WorkDone | Exception]]:
    contracts = list(dict.fromkeys(job.contract for _, job, _ in members))
    reasons: dict[str, str] = {}
    blocked: set[str] = set()
    done: dict[str, dict[date, dict[str, Any]]] = {}
    try:
        for contract in contracts:  # S5a: never while its import is unfinished
            since = work.importing(store, contract)
            if since:
                blocked.add(contract)
                reasons[contract] = f"its import started at {since} has not finished (S5a)"
        todo = [c for c in contracts if c not in blocked]
        store.abort.clear()  # a worker's store outlives one message's failed writes
        outcome = runs.invoice_contracts(store, todo, dates, workers=workers) if todo else None
        if outcome is not None:
            done = {c: m for c, m in outcome.markers.items() if c in todo}
            for contract in todo:
                if contract in outcome.failed:
                    reasons[contract] = outcome.failed[contract]
                elif contract in outcome.blocked:
                    blocked.add(contract)
                    reasons[contract] = "it has no configuration: its import never finished (S5a)"
    except Exception as exc:  # a storage error, anything: every contract is retried
        log.exception("the work messages of batch %s failed", batch)
        done = {}
        for contract in contracts:
            reasons.setdefault(contract, f"{type(exc).__name__}: {exc}"[:300])
    written = False
    last = {job.contract for _, job, count in members if count >= limit}
    given_up = [
        (c, work.BLOCKED if c in blocked else work.POISONED, reasons.get(c) or "not invoiced")
        for c in contracts
        if c not in done and c in last
    ]
    if batch and (done or given_up):
        try:
            head = work.header(store, batch)
            if head is None:
                # a late delivery of a batch swept a week after it finished: its dates are
                # completed (what it invoiced now was a committed date, skipped): nothing to record
                log.warning("batch %s is gone (finished and swept): nothing recorded", batch)
                return [(n, WorkDone(job.contract, job.dates, 0, False)) for n, job, _ in members]
            if done:
                work.record_done(store, batch, done)
                earlier = {p["ContractId"] for p in work.problems(store, batch)} & set(done)
                if earlier:  # recorded as poisoned by an earlier delivery, and now committed
                    work.clear_problems(store, batch, earlier)
            if given_up:
                work.record_problems(store, batch, given_up, dates)
            written = finish(store, batch, head)
        except Exception as exc:  # not recorded: every message comes back, and its redo
            # (committed dates are skipped) records it then
            log.exception("the work of batch %s could not be recorded", batch)
            reason = f"its work could not be recorded ({type(exc).__name__}: {exc})"[:300]
            return [
                (n, WorkFailed(f"contract {job.contract}: {reason}; it will be retried"))
                for n, job, _ in members
            ]
    out: list[tuple[int, WorkDone | Exception]] = []
    for n, job, count in members:
        if job.contract in done:
            markers = done[job.contract]
            invoices = sum(int(m.get("Invoices") or 0) for m in markers.values())
            out.append((n, WorkDone(job.contract, job.dates, invoices, written)))
            continue
        then = (
            "given up: its dates stay incomplete and named until it is fixed and run again"
            if count >= limit
            else f"delivery {count} of {limit}: it will be retried"
        )
        reason = reasons.get(job.contract) or "not invoiced"
        out.append((n, WorkFailed(f"contract {job.contract} was not invoiced ({reason}); {then}")))
    return out
