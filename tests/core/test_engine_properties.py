"""Properties of the engine over random valid contracts (hypothesis)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoicing.engine import ContractState, date_range, plan_contract, plan_range
from invoicing.model import (
    BillingMethod,
    Contract,
    ContractLine,
    Customer,
    Milestone,
    Outcome,
    Portfolio,
    SourceType,
    Transaction,
    TxnClass,
)
from invoicing.money import minor_unit
from invoicing.schedule import ExplicitSchedule, ScheduleRow

START = date(2021, 1, 1)
DAYS = 40


def _percents(weights: list[int]) -> list[Decimal]:
    total = sum(weights)
    out = [(Decimal(w * 100) / total).quantize(Decimal("0.01")) for w in weights[:-1]]
    out.append(Decimal(100) - sum(out, Decimal(0)))
    return out


@st.composite
def contracts(draw, index: int = 0) -> Contract:
    currency = draw(st.sampled_from(["USD", "JPY", "KWD"]))
    places = minor_unit(currency)
    n_customers = draw(st.integers(1, 3))
    weights = draw(st.lists(st.integers(1, 50), min_size=n_customers, max_size=n_customers))
    percents = _percents(weights)
    if any(p <= 0 for p in percents):
        percents = [Decimal(100)] + [Decimal(0)] * 0
        n_customers = 1
    rounding = draw(st.integers(0, n_customers - 1))
    customers = tuple(
        Customer(f"K{i}", f"Customer {i}", percents[i], i == rounding) for i in range(n_customers)
    )
    amounts = st.integers(0, 100_000).map(lambda n: Decimal(n).scaleb(-places))
    lines: list[ContractLine] = []
    transactions: list[Transaction] = []
    milestones: list[Milestone] = []
    for li in range(draw(st.integers(1, 3))):
        line_id = f"L{li}"
        if draw(st.booleans()):
            offsets = sorted(draw(st.sets(st.integers(0, DAYS - 1), min_size=1, max_size=6)))
            rows = []
            for off in offsets:
                run = START + timedelta(days=off)
                back = draw(st.integers(1, 5))
                rows.append(ScheduleRow(run, run - timedelta(days=back)))
            nte = draw(st.none() | amounts)
            lines.append(
                ContractLine(
                    line_id,
                    line_id,
                    BillingMethod.TIME_AND_MATERIAL,
                    not_to_exceed=nte,
                    schedule=ExplicitSchedule(tuple(rows)),
                )
            )
            for ti in range(draw(st.integers(0, 8))):
                transactions.append(
                    Transaction(
                        f"T{index}-{li}-{ti}",
                        line_id,
                        draw(st.sampled_from(list(TxnClass))),
                        START + timedelta(days=draw(st.integers(-5, DAYS))),
                        draw(amounts),
                        draw(st.booleans() | st.just(True)),
                    )
                )
        else:
            lines.append(ContractLine(line_id, line_id, BillingMethod.FIXED_PRICE))
            for mi in range(draw(st.integers(0, 4))):
                milestones.append(
                    Milestone(
                        f"M{li}-{mi}",
                        line_id,
                        "m",
                        START + timedelta(days=draw(st.integers(0, DAYS))),
                        draw(amounts),
                        draw(st.booleans() | st.just(True)),
                    )
                )
    return Contract(
        f"C{index}", "c", currency, customers, tuple(lines), tuple(milestones), tuple(transactions)
    )


portfolios = (
    st.lists(st.integers(0, 0), min_size=1, max_size=3)
    .flatmap(lambda xs: st.tuples(*[contracts(i) for i in range(len(xs))]))
    .map(Portfolio)
)


def _eligible_by_end(contract: Contract, end: date) -> set[tuple[SourceType, str]]:
    """Items that some due date up to ``end`` could take (ready, nonzero, before a cut-off)."""
    out = set()
    lines = {ln.line_id: ln for ln in contract.lines}
    for t in contract.transactions:
        line = lines[t.line_id]
        cutoffs = [r.cutoff for r in line.schedule.rows if r.run_date <= end]
        if t.ready and t.amount != 0 and any(t.date <= c for c in cutoffs):
            out.add((SourceType.TRANSACTION, t.transaction_id))
    for m in contract.milestones:
        run_dates = [
            x.date for x in contract.milestones if x.line_id == m.line_id and x.date <= end
        ]
        if m.ready and m.amount != 0 and any(m.date <= d for d in run_dates):
            out.add((SourceType.MILESTONE, m.milestone_id))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios)
def test_every_eligible_item_is_invoiced_exactly_once_or_held(portfolio):
    days = date_range(START, START + timedelta(days=DAYS))
    plan = plan_range(portfolio, days)
    seen: dict[tuple[str, SourceType, str], set[str]] = defaultdict(set)
    amounts: dict[tuple[str, SourceType, str], Decimal] = defaultdict(Decimal)
    for invoice in plan.invoices:
        for line in invoice.lines:
            for d in line.details:
                key = (invoice.contract_id, d.source_type, d.source_id)
                seen[key].add(invoice.invoice_date.isoformat())
                amounts[key] += d.amount
    for key, dates_ in seen.items():
        assert len(dates_) == 1, f"{key} invoiced on several dates {dates_}"
    held_notes = [e.note for e in plan.log if e.outcome is Outcome.HELD]
    for contract in portfolio.contracts:
        items = {
            (SourceType.TRANSACTION, t.transaction_id): t.amount for t in contract.transactions
        }
        items |= {(SourceType.MILESTONE, m.milestone_id): m.amount for m in contract.milestones}
        for kind, item_id in _eligible_by_end(contract, days[-1]):
            key = (contract.contract_id, kind, item_id)
            if key in seen:
                assert amounts[key] == items[(kind, item_id)]  # shares sum to the item's amount
            else:
                assert any(f"{item_id} (" in note for note in held_notes), f"{key} left out"
        for kind, item_id in (k[1:] for k in seen if k[0] == contract.contract_id):
            assert (kind, item_id) in _eligible_by_end(contract, days[-1])


@settings(max_examples=150, deadline=None)
@given(portfolios)
def test_invoice_equals_sum_of_lines_equals_sum_of_details(portfolio):
    plan = plan_range(portfolio, date_range(START, START + timedelta(days=DAYS)))
    for invoice in plan.invoices:
        assert invoice.amount == sum((ln.amount for ln in invoice.lines), Decimal(0))
        for line in invoice.lines:
            assert line.amount == sum((d.amount for d in line.details), Decimal(0))
            assert all(d.amount > 0 for d in line.details)


@settings(max_examples=100, deadline=None)
@given(portfolios)
def test_not_to_exceed_is_never_crossed(portfolio):
    plan = plan_range(portfolio, date_range(START, START + timedelta(days=DAYS)))
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for invoice in plan.invoices:
        for line in invoice.lines:
            totals[(invoice.contract_id, line.contract_line_id)] += line.amount
    for contract in portfolio.contracts:
        for line in contract.lines:
            if line.not_to_exceed is not None:
                assert totals[(contract.contract_id, line.line_id)] <= line.not_to_exceed


@settings(max_examples=100, deadline=None)
@given(portfolios)
def test_running_a_range_equals_running_its_dates_one_by_one(portfolio):
    days = date_range(START, START + timedelta(days=DAYS))
    whole = plan_range(portfolio, days)
    invoices, log = [], []
    states = {c.contract_id: ContractState() for c in portfolio.contracts}
    for day in days:
        for contract in portfolio.contracts:
            one = plan_contract(contract, day, states[contract.contract_id])
            states[contract.contract_id] = one.state
            invoices.extend(one.invoices)
            log.extend(one.log)
    assert list(whole.invoices) == invoices
    assert list(whole.log) == log
