"""Rules of the InvoiceSchedule and Milestones sheets (W4, W5, W7, W9)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from invoicing import money
from invoicing.model import Milestone
from invoicing.schedule import ScheduleRow
from invoicing.workbook._cells import to_bool, to_date, to_id, to_number, to_stored_text
from invoicing.workbook.drafts import FP, TM, Reading
from invoicing.workbook.loading import BAD

ONE_DAY = timedelta(days=1)


def read_schedule_rows(r: Reading) -> None:
    table = r.tables.get("InvoiceSchedule")
    if table is None:
        return
    for row, cells in r.rows("InvoiceSchedule"):
        cid = r.convert(table, cells, row, "ContractId", to_id, "ContractId")
        lid = r.convert(table, cells, row, "LineId", to_id, "LineId")
        run = r.convert(table, cells, row, "InvoiceRunDate", to_date)
        cutoff = r.convert(table, cells, row, "TransactionCutoffDate", to_date)
        r.required(table, row, "ContractId", cid)
        r.required(table, row, "LineId", lid)
        run_ok = r.required(table, row, "InvoiceRunDate", run)
        line = r.line_of(table, row, r.contract_of(table, row, cid), lid)
        if line is not None and line.method is FP:
            r.problem(
                table,
                "LineId",
                row,
                f'line "{line.line_id}" of contract "{line.contract.contract_id}" is '
                "Fixed price; invoice schedules are for Time and material lines",
            )
            line = None
        if not run_ok:
            continue
        assert isinstance(run, date)
        if cutoff is None:
            cutoff = run - ONE_DAY
        elif isinstance(cutoff, date) and cutoff > run:
            r.problem(
                table,
                "TransactionCutoffDate",
                row,
                f"TransactionCutoffDate {cutoff} is after InvoiceRunDate {run}",
            )
            cutoff = BAD
        if line is None:
            continue
        seen = line.schedule_seen.get(run)
        if seen:
            r.problem(
                table,
                "InvoiceRunDate",
                row,
                f'line "{line.line_id}" of contract "{line.contract.contract_id}" already '
                f"has run date {run} (row {seen})",
            )
            continue
        line.schedule_seen[run] = row
        if isinstance(cutoff, date):
            line.schedule_rows.append(ScheduleRow(run, cutoff))


def read_milestones(r: Reading) -> None:
    table = r.tables.get("Milestones")
    if table is None:
        return
    seen: dict[tuple[str, str], int] = {}
    for row, cells in r.rows("Milestones"):
        before = len(r.found)
        cid = r.convert(table, cells, row, "ContractId", to_id, "ContractId")
        lid = r.convert(table, cells, row, "LineId", to_id, "LineId")
        mid = r.convert(table, cells, row, "MilestoneId", to_id, "MilestoneId")
        name = r.convert(table, cells, row, "MilestoneName", to_stored_text)
        day = r.convert(table, cells, row, "MilestoneDate", to_date)
        amount = r.convert(table, cells, row, "Amount", to_number, "Amount")
        ready = r.convert(table, cells, row, "ReadyToInvoice", to_bool, "ReadyToInvoice")
        r.required(table, row, "ContractId", cid)
        r.required(table, row, "LineId", lid)
        r.required(table, row, "MilestoneId", mid)
        r.required(table, row, "MilestoneDate", day)
        r.required(table, row, "Amount", amount)
        contract = r.contract_of(table, row, cid)
        line = r.line_of(table, row, contract, lid)
        if line is not None:
            line.milestone_count += 1
            if line.method is TM:
                r.problem(
                    table,
                    "LineId",
                    row,
                    f'line "{line.line_id}" of contract "{contract.contract_id}" is '  # type: ignore[union-attr]
                    "Time and material; milestones are for Fixed price lines",
                )
        if isinstance(amount, Decimal):
            if amount <= 0:
                r.problem(table, "Amount", row, f"Amount {amount} must be more than 0")
            else:
                r.money_ok(table, row, "Amount", amount, contract)
        if contract is not None and isinstance(mid, str):
            key = (contract.contract_id, mid)
            if key in seen:
                r.problem(
                    table,
                    "MilestoneId",
                    row,
                    f'duplicate MilestoneId "{mid}" in contract "{contract.contract_id}" '
                    f"(first in row {seen[key]})",
                )
            else:
                seen[key] = row
        if len(r.found) != before or contract is None or contract.places is None:
            continue
        assert isinstance(mid, str) and isinstance(lid, str) and isinstance(day, date)
        assert isinstance(amount, Decimal)
        contract.milestones.append(
            Milestone(
                mid,
                lid,
                name if isinstance(name, str) else "",
                day,
                money.round_half_up(amount, contract.places),
                ready is True,
            )
        )
        contract.milestone_rows.append(row)
