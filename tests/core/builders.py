"""Small builders for engine records, so each test states only what it is about."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from invoicing.model import (
    BillingMethod,
    Contract,
    ContractLine,
    Customer,
    Milestone,
    Transaction,
    TxnClass,
)
from invoicing.schedule import ExplicitSchedule, ScheduleRow

D = date.fromisoformat


def money(text: str) -> Decimal:
    return Decimal(text)


def customer(cid: str = "CUST", split: str = "100", rounding: bool = False) -> Customer:
    return Customer(cid, f"{cid} name", Decimal(split), rounding)


def schedule(*run_dates: str, cutoffs: dict[str, str] | None = None) -> ExplicitSchedule:
    cutoffs = cutoffs or {}
    rows = []
    for text in run_dates:
        run = D(text)
        rows.append(
            ScheduleRow(run, D(cutoffs[text]) if text in cutoffs else run - timedelta(days=1))
        )
    return ExplicitSchedule(tuple(rows))


def tm_line(
    line_id: str = "TM",
    *run_dates: str,
    classes: tuple[TxnClass, ...] = tuple(TxnClass),
    nte: str | None = None,
    customers: tuple[Customer, ...] = (),
    sched: ExplicitSchedule | None = None,
) -> ContractLine:
    return ContractLine(
        line_id=line_id,
        name=f"{line_id} work",
        billing_method=BillingMethod.TIME_AND_MATERIAL,
        classes=frozenset(classes),
        not_to_exceed=Decimal(nte) if nte is not None else None,
        schedule=sched if sched is not None else schedule(*run_dates),
        customers=customers,
    )


def fp_line(line_id: str = "FP") -> ContractLine:
    return ContractLine(line_id, f"{line_id} work", BillingMethod.FIXED_PRICE)


def txn(
    tid: str,
    day: str,
    amount: str,
    line_id: str = "TM",
    ready: bool = True,
    cls: TxnClass = TxnClass.TIME,
) -> Transaction:
    return Transaction(tid, line_id, cls, D(day), Decimal(amount), ready, description=f"{tid} work")


def milestone(
    mid: str, day: str, amount: str, line_id: str = "FP", ready: bool = True
) -> Milestone:
    return Milestone(mid, line_id, f"{mid} milestone", D(day), Decimal(amount), ready)


def contract(
    *lines: ContractLine,
    transactions: tuple[Transaction, ...] = (),
    milestones: tuple[Milestone, ...] = (),
    customers: tuple[Customer, ...] = (),
    currency: str = "USD",
    contract_id: str = "C1",
    terms: int = 30,
) -> Contract:
    return Contract(
        contract_id=contract_id,
        name=f"{contract_id} name",
        currency=currency,
        customers=customers or (customer(),),
        lines=lines,
        milestones=milestones,
        transactions=transactions,
        payment_terms_days=terms,
    )
