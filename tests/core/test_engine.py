"""The invoice engine, rule by rule (SPEC R7-R14, R16), on the seed's Adatum example and beyond."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

from invoicing.engine import (
    ContractState,
    date_range,
    invoice_id,
    plan_contract,
    plan_range,
    state_from_invoices,
    with_status,
)
from invoicing.model import Outcome, Portfolio, SourceType, Status, TxnClass
from tests.core.builders import (
    D,
    contract,
    customer,
    fp_line,
    milestone,
    schedule,
    tm_line,
    txn,
)


def run(c, *dates: str, state: ContractState | None = None):
    plan = plan_range(
        Portfolio((c,)), [D(d) for d in dates], {c.contract_id: state} if state else None
    )
    return plan


def adatum():
    impl = tm_line(
        "IMPL", "2020-10-05", "2020-10-19", "2020-11-02", "2020-11-16", classes=(TxnClass.TIME,)
    )
    exp = tm_line("EXP", "2020-10-05", "2020-11-02", classes=(TxnClass.EXPENSE,))
    return contract(
        fp_line("PROTO"),
        impl,
        exp,
        milestones=(
            milestone("M1", "2020-10-05", "5000", "PROTO"),
            milestone("M2", "2020-11-03", "12000", "PROTO"),
        ),
        transactions=(
            txn("T1", "2020-10-01", "1200.00", "IMPL"),
            txn("T2", "2020-10-04", "600.00", "IMPL"),  # on the cut-off
            txn("T3", "2020-10-05", "900.00", "IMPL"),  # the day after the cut-off
            txn("T4", "2020-10-20", "300.00", "IMPL"),
            txn("T5", "2020-11-10", "450.00", "IMPL"),
            txn("T6", "2020-10-02", "80.00", "IMPL", ready=False),
            txn("E1", "2020-10-04", "75.50", "EXP", cls=TxnClass.EXPENSE),
            txn("E2", "2020-10-05", "20.00", "EXP", cls=TxnClass.EXPENSE),
        ),
    )


def test_adatum_example_gives_the_five_invoices_of_the_seed():
    plan = run(adatum(), *[d.isoformat() for d in date_range(D("2020-10-01"), D("2020-11-30"))])
    summary = [
        (i.invoice_date.isoformat(), [(ln.contract_line_id, ln.amount) for ln in i.lines])
        for i in plan.invoices
    ]
    assert summary == [
        (
            "2020-10-05",
            [("PROTO", Decimal("5000")), ("IMPL", Decimal("1800.00")), ("EXP", Decimal("75.50"))],
        ),
        ("2020-10-19", [("IMPL", Decimal("900.00"))]),
        ("2020-11-02", [("IMPL", Decimal("300.00")), ("EXP", Decimal("20.00"))]),
        ("2020-11-03", [("PROTO", Decimal("12000"))]),
        ("2020-11-16", [("IMPL", Decimal("450.00"))]),
    ]


def test_cutoff_is_inclusive():
    c = adatum()
    plan = run(c, "2020-10-05")
    impl = next(ln for ln in plan.invoices[0].lines if ln.contract_line_id == "IMPL")
    assert [d.source_id for d in impl.details] == ["T1", "T2"]
    assert impl.cutoff == D("2020-10-04")


def test_line_not_due_between_run_dates():
    plan = run(adatum(), *[d.isoformat() for d in date_range(D("2020-10-06"), D("2020-10-18"))])
    assert plan.invoices == ()
    assert plan.log == ()


def test_nothing_is_invoiced_on_or_before_october_4():
    plan = run(adatum(), "2020-09-30", "2020-10-01", "2020-10-04")
    assert plan.invoices == ()


def test_item_not_ready_is_never_invoiced_and_stays_in_backlog():
    plan = run(adatum(), *[d.isoformat() for d in date_range(D("2020-10-01"), D("2020-11-30"))])
    invoiced = {d.source_id for i in plan.invoices for ln in i.lines for d in ln.details}
    assert "T6" not in invoiced
    assert (SourceType.TRANSACTION, "T6") not in plan.states["C1"].invoiced


def test_late_approved_item_rolls_to_the_lines_next_run_date():
    c = adatum()
    first = plan_contract(c, D("2020-10-05"), ContractState())
    assert "T6" not in {d.source_id for i in first.invoices for ln in i.lines for d in ln.details}
    # T6 is approved after the Oct 5 run: the next run of its line (Oct 19) picks it up.
    approved = [
        t if t.transaction_id != "T6" else t.__class__(**{**_fields(t), "ready": True})
        for t in c.transactions
    ]
    c2 = c.__class__(**{**_fields(c), "transactions": tuple(approved)})
    second = plan_contract(c2, D("2020-10-19"), first.state)
    assert [d.source_id for d in second.invoices[0].lines[0].details] == ["T6", "T3"]


def test_milestone_not_ready_on_its_date_is_invoiced_at_the_lines_next_run_date():
    c = contract(
        fp_line(),
        milestones=(
            milestone("M1", "2021-01-10", "100", ready=False),
            milestone("M2", "2021-02-10", "200"),
        ),
    )
    first = plan_contract(c, D("2021-01-10"), ContractState())
    assert first.invoices == ()
    assert [e.outcome for e in first.log] == [Outcome.SKIPPED]
    ready = c.__class__(
        **{
            **_fields(c),
            "milestones": (
                milestone("M1", "2021-01-10", "100"),
                milestone("M2", "2021-02-10", "200"),
            ),
        }
    )
    assert plan_contract(ready, D("2021-01-20"), first.state).invoices == ()  # not a run date
    second = plan_contract(ready, D("2021-02-10"), first.state)
    assert [d.source_id for d in second.invoices[0].lines[0].details] == ["M1", "M2"]
    assert second.invoices[0].amount == Decimal("300")


def test_due_line_with_nothing_to_invoice_is_skipped_and_logged():
    c = contract(tm_line("TM", "2021-03-01"), transactions=(txn("T1", "2021-03-01", "10"),))
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    assert plan.invoices == ()
    assert [(e.line_id, e.outcome, e.items) for e in plan.log] == [("TM", Outcome.SKIPPED, 0)]


def test_due_lines_of_one_contract_share_one_invoice_per_customer_in_line_order():
    c = contract(
        tm_line("B", "2021-03-01"),
        tm_line("A", "2021-03-01"),
        transactions=(txn("T1", "2021-02-01", "10", "A"), txn("T2", "2021-02-01", "20", "B")),
    )
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    assert len(plan.invoices) == 1
    assert [(ln.line_number, ln.contract_line_id) for ln in plan.invoices[0].lines] == [
        (1, "B"),
        (2, "A"),
    ]


def test_transaction_classes_not_billed_by_the_line_are_ignored():
    c = contract(
        tm_line("TM", "2021-03-01", classes=(TxnClass.EXPENSE,)),
        transactions=(
            txn("T1", "2021-02-01", "10"),
            txn("E1", "2021-02-01", "5", cls=TxnClass.EXPENSE),
        ),
    )
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    assert [d.source_id for d in plan.invoices[0].lines[0].details] == ["E1"]


def test_multi_customer_split_rounding_customer_takes_the_remainder():
    c = contract(
        tm_line("TM", "2021-03-01"),
        customers=(
            customer("A", "33.3333"),
            customer("B", "33.3333"),
            customer("R", "33.3334", rounding=True),
        ),
        transactions=(txn("T1", "2021-02-01", "100.00"),),
    )
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    shares = {i.customer_id: i.amount for i in plan.invoices}
    assert shares == {"A": Decimal("33.33"), "B": Decimal("33.33"), "R": Decimal("33.34")}
    assert sum(shares.values()) == Decimal("100.00")


def test_rounding_customer_defaults_to_the_first_listed():
    c = contract(
        tm_line("TM", "2021-03-01"),
        customers=(customer("FIRST", "50"), customer("SECOND", "50")),
        transactions=(txn("T1", "2021-02-01", "0.01"),),
    )
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    # SECOND's exact 0.005 rounds half-up to 0.01; FIRST takes the remainder, 0.00: no invoice.
    assert [(i.customer_id, i.amount) for i in plan.invoices] == [("SECOND", Decimal("0.01"))]


def test_line_level_customers_override_the_contracts_split():
    override = (customer("X", "25"), customer("Y", "75", rounding=True))
    c = contract(
        tm_line("TM", "2021-03-01", customers=override),
        tm_line("OTHER", "2021-03-01"),
        customers=(customer("X", "100"),),
        transactions=(txn("T1", "2021-02-01", "10.01"), txn("T2", "2021-02-01", "4", "OTHER")),
    )
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    by_customer = {i.customer_id: i for i in plan.invoices}
    assert [(ln.contract_line_id, ln.amount) for ln in by_customer["X"].lines] == [
        ("TM", Decimal("2.50")),
        ("OTHER", Decimal("4")),
    ]
    assert [(ln.contract_line_id, ln.amount) for ln in by_customer["Y"].lines] == [
        ("TM", Decimal("7.51"))
    ]
    assert by_customer["X"].lines[0].details[0].split_percent == Decimal("25")


def test_zero_amount_item_is_kept_but_never_invoiced():
    c = contract(
        tm_line("TM", "2021-03-01"),
        transactions=(txn("T0", "2021-02-01", "0"), txn("T1", "2021-02-01", "5")),
    )
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    assert [d.source_id for d in plan.invoices[0].lines[0].details] == ["T1"]
    assert (SourceType.TRANSACTION, "T0") not in plan.state.invoiced


def test_invoice_amounts_dates_and_due_date():
    c = contract(
        tm_line("TM", "2021-03-01"),
        fp_line(),
        terms=45,
        transactions=(txn("T1", "2021-02-01", "10.10"), txn("T2", "2021-02-02", "0.15")),
        milestones=(milestone("M1", "2021-03-01", "99.99"),),
    )
    invoice = plan_contract(c, D("2021-03-01"), ContractState()).invoices[0]
    assert invoice.invoice_date == D("2021-03-01")
    assert invoice.due_date == D("2021-04-15")
    assert [ln.amount for ln in invoice.lines] == [Decimal("10.25"), Decimal("99.99")]
    assert invoice.amount == Decimal("110.24")
    assert invoice.status is Status.DRAFT and invoice.invoice_number is None


def test_item_is_invoiced_at_most_once_across_run_dates():
    c = contract(
        tm_line("TM", "2021-03-01", "2021-04-01"), transactions=(txn("T1", "2021-02-01", "10"),)
    )
    plan = run(c, "2021-03-01", "2021-04-01")
    assert [i.invoice_date for i in plan.invoices] == [D("2021-03-01")]


def test_not_to_exceed_holds_an_item_whole_while_a_later_smaller_item_fits():
    c = contract(
        tm_line("TM", "2021-03-01", "2021-04-01", nte="100"),
        transactions=(
            txn("T1", "2021-02-01", "60"),
            txn("T2", "2021-02-02", "50"),
            txn("T3", "2021-02-03", "30"),
            txn("T4", "2021-03-15", "10"),
        ),
    )
    first = plan_contract(c, D("2021-03-01"), ContractState())
    assert [d.source_id for d in first.invoices[0].lines[0].details] == ["T1", "T3"]
    assert first.invoices[0].amount == Decimal("90")
    held = [e for e in first.log if e.outcome is Outcome.HELD]
    assert [(e.items, e.amount) for e in held] == [(1, Decimal("50"))]
    assert "T2" in held[0].note and "not-to-exceed 100" in held[0].note
    second = plan_contract(c, D("2021-04-01"), first.state)
    # T2 is still held (90 + 50 > 100); T4 (10) fits exactly.
    assert [d.source_id for d in second.invoices[0].lines[0].details] == ["T4"]
    assert second.state.nte_used["TM"] == Decimal("100")


def test_not_to_exceed_counts_every_customer():
    c = contract(
        tm_line("TM", "2021-03-01", nte="10"),
        customers=(customer("A", "50"), customer("B", "50")),
        transactions=(txn("T1", "2021-02-01", "10"), txn("T2", "2021-02-02", "0.01")),
    )
    plan = plan_contract(c, D("2021-03-01"), ContractState())
    assert sum(i.amount for i in plan.invoices) == Decimal("10")
    assert [e.outcome for e in plan.log] == [Outcome.INVOICED, Outcome.HELD]


def test_jpy_has_no_decimals_and_kwd_three():
    for currency, amount, expected in (
        ("JPY", "1001", ("500", "501")),
        ("KWD", "1.001", ("0.500", "0.501")),
    ):
        c = contract(
            tm_line("TM", "2021-03-01"),
            currency=currency,
            customers=(customer("A", "50", rounding=True), customer("B", "50")),
            transactions=(txn("T1", "2021-02-01", amount),),
        )
        plan = plan_contract(c, D("2021-03-01"), ContractState())
        # B's exact half (500.5 / 0.5005) rounds half-up; rounding customer A takes the rest.
        assert {i.customer_id: i.amount for i in plan.invoices} == {
            "A": Decimal(expected[0]),
            "B": Decimal(expected[1]),
        }


def test_invoice_id_is_deterministic_sha256_of_contract_customer_and_date():
    digest = hashlib.sha256("C/1\u001fCUST#?\u001f2020-10-05".encode()).hexdigest()[:10]
    assert invoice_id("C/1", "CUST#?", date(2020, 10, 5)) == f"INV-20201005-{digest}"
    assert invoice_id("C/1", "CUST#?", date(2020, 10, 5)) != invoice_id(
        "C/1", "CUST", date(2020, 10, 5)
    )


def test_ids_with_special_characters_flow_through_unchanged():
    odd = 'C/1 \\#?"é'
    c = contract(
        tm_line("L/\\#?", "2021-03-01"),
        contract_id=odd,
        customers=(customer("Ü ber/#"),),
        transactions=(txn("T ?/\\#'\"日本", "2021-02-01", "1", "L/\\#?"),),
    )
    invoice = plan_contract(c, D("2021-03-01"), ContractState()).invoices[0]
    assert invoice.contract_id == odd and invoice.customer_id == "Ü ber/#"
    assert invoice.lines[0].details[0].source_id == "T ?/\\#'\"日本"


def test_state_from_live_invoices_matches_the_state_the_engine_carries():
    c = contract(
        tm_line("TM", "2021-03-01", "2021-04-01", nte="100"),
        fp_line(),
        customers=(customer("A", "40"), customer("B", "60")),
        transactions=(txn("T1", "2021-02-01", "60"), txn("T2", "2021-03-02", "30")),
        milestones=(milestone("M1", "2021-03-01", "7"),),
    )
    plan = run(c, "2021-03-01", "2021-04-01")
    assert state_from_invoices(c, plan.invoices) == plan.states["C1"]


def test_cancelled_invoices_release_their_items():
    c = contract(
        tm_line("TM", "2021-03-01", "2021-04-01"), transactions=(txn("T1", "2021-02-01", "60"),)
    )
    first = plan_contract(c, D("2021-03-01"), ContractState())
    cancelled = [with_status(i, Status.CANCELLED) for i in first.invoices]
    state = state_from_invoices(c, cancelled)
    second = plan_contract(c, D("2021-04-01"), state)
    assert [d.source_id for d in second.invoices[0].lines[0].details] == ["T1"]
    assert second.invoices[0].invoice_id == invoice_id("C1", "CUST", D("2021-04-01"))


def test_explicit_cutoff_earlier_than_the_day_before():
    c = contract(
        tm_line("TM", sched=schedule("2021-03-10", cutoffs={"2021-03-10": "2021-03-05"})),
        transactions=(txn("T1", "2021-03-05", "1"), txn("T2", "2021-03-06", "2")),
    )
    invoice = plan_contract(c, D("2021-03-10"), ContractState()).invoices[0]
    assert [d.source_id for d in invoice.lines[0].details] == ["T1"]


def _fields(obj) -> dict:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def test_items_that_no_longer_fit_their_line_stay_in_the_backlog():
    # A stored contract can keep items of an earlier upload after its line changed method.
    fp_now = contract(
        fp_line("L"),
        transactions=(txn("T1", "2021-02-01", "10", "L"),),
        milestones=(milestone("M1", "2021-03-01", "5", "L"),),
    )
    plan = plan_contract(fp_now, D("2021-03-01"), ContractState())
    assert [d.source_id for d in plan.invoices[0].lines[0].details] == ["M1"]
    tm_now = contract(
        tm_line("L", "2021-03-01"),
        transactions=(txn("T1", "2021-02-01", "10", "L"),),
        milestones=(milestone("M1", "2021-02-01", "5", "L"),),
    )
    plan = plan_contract(tm_now, D("2021-03-01"), ContractState())
    assert [d.source_id for d in plan.invoices[0].lines[0].details] == ["T1"]
