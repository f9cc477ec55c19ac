"""Rules of the Contracts, ContractLines and Customers sheets (W1-W3, W7, W9, R2), and the checks
made once every sheet is read (a line's schedule or milestones, the splits' sums)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from invoicing import money, tax
from invoicing.model import ALL_CLASSES, BillingMethod, Customer, TaxCategory, TxnClass
from invoicing.schedule import GeneratedSchedule, ScheduleError, generated_schedule
from invoicing.workbook._cells import (
    MAX_PAYMENT_TERMS,
    to_bool,
    to_date,
    to_id,
    to_number,
    to_stored_text,
    to_text,
    to_whole,
)
from invoicing.workbook.addresses import merge_address, read_address
from invoicing.workbook.drafts import FP, TM, ContractDraft, LineDraft, Reading, SplitGroup
from invoicing.workbook.loading import BAD, SheetTable, name_key

MAX_CUSTOMERS_PER_CONTRACT = 50
FALLBACK_PLACES = 2  # the decimals checked while a contract's Currency is unusable
HUNDRED = Decimal(100)
SCHEDULE_COLUMNS = ("Frequency", "RunDay", "FirstRunDate", "LastRunDate", "RRule")
CLASS_NAMES = ", ".join(c.value for c in TxnClass)
CLASSES = {c.value.lower(): c for c in TxnClass}
_METHODS = {
    "timeandmaterial": BillingMethod.TIME_AND_MATERIAL,
    "timeandmaterials": BillingMethod.TIME_AND_MATERIAL,
    "time&material": BillingMethod.TIME_AND_MATERIAL,
    "time&materials": BillingMethod.TIME_AND_MATERIAL,
    "t&m": BillingMethod.TIME_AND_MATERIAL,
    "fixedprice": BillingMethod.FIXED_PRICE,
    "fixed": BillingMethod.FIXED_PRICE,
    "fp": BillingMethod.FIXED_PRICE,
}


def read_contracts(r: Reading) -> None:
    table = r.required_sheet("Contracts")
    if table is None:
        return
    for row, cells in r.rows("Contracts"):
        before = len(r.found)
        cid = r.convert(table, cells, row, "ContractId", to_id, "ContractId")
        name = r.convert(table, cells, row, "ContractName", to_stored_text)
        currency_raw = r.cell(table, cells, "Currency")
        currency_text = to_text(currency_raw)
        currency = currency_text.upper() if currency_text else None
        terms = r.convert(
            table,
            cells,
            row,
            "PaymentTermsDays",
            to_whole,
            "PaymentTermsDays",
            MAX_PAYMENT_TERMS,
        )
        tax_percent = read_percent(r, table, cells, row, "TaxPercent")
        if not r.required(table, row, "ContractId", cid):
            r.required(table, row, "Currency", currency)
            continue
        assert isinstance(cid, str)
        if cid in r.contracts:
            r.problem(
                table,
                "ContractId",
                row,
                f'duplicate ContractId "{cid}" (first in row {r.contracts[cid].row})',
            )
            continue
        contract = ContractDraft(cid, row)
        r.contracts[cid] = contract
        contract.name = name if isinstance(name, str) else ""
        if r.required(table, row, "Currency", currency):
            assert isinstance(currency, str)
            if money.is_currency(currency):
                contract.currency = currency
                contract.places = money.minor_unit(currency)
            else:
                r.problem(
                    table,
                    "Currency",
                    row,
                    f'Currency "{currency_text}" is not an active ISO 4217 code',
                )
        if contract.places is None:
            # W10, one wave: a bad or missing Currency must not hide the amounts' own problems;
            # they are checked at the usual 2 decimals (the workbook is rejected anyway).
            contract.places = FALLBACK_PLACES
        if isinstance(terms, int):
            contract.terms = terms
        if isinstance(tax_percent, Decimal):
            contract.tax_percent = tax_percent
        contract.ok = len(r.found) == before


def read_lines(r: Reading) -> None:
    table = r.required_sheet("ContractLines")
    if table is None:
        return
    for row, cells in r.rows("ContractLines"):
        before = len(r.found)
        cid = r.convert(table, cells, row, "ContractId", to_id, "ContractId")
        lid = r.convert(table, cells, row, "LineId", to_id, "LineId")
        name = r.convert(table, cells, row, "LineName", to_stored_text)
        method_raw = r.cell(table, cells, "BillingMethod")
        nte = r.convert(table, cells, row, "NotToExceed", to_number, "NotToExceed")
        first = r.convert(table, cells, row, "FirstRunDate", to_date)
        last = r.convert(table, cells, row, "LastRunDate", to_date)
        r.required(table, row, "ContractId", cid)
        r.required(table, row, "LineId", lid)
        contract = r.contract_of(table, row, cid)
        method: BillingMethod | None = None
        if method_raw == "":
            r.problem(table, "BillingMethod", row, "BillingMethod is required")
        else:
            method = _METHODS.get(name_key(to_text(method_raw)))
            if method is None:
                r.problem(
                    table,
                    "BillingMethod",
                    row,
                    f'BillingMethod "{to_text(method_raw)}" is not "Time and material" '
                    'or "Fixed price"',
                )
        line: LineDraft | None = None
        if contract is not None and isinstance(lid, str):
            if lid in contract.lines:
                r.problem(
                    table,
                    "LineId",
                    row,
                    f'duplicate LineId "{lid}" in contract "{contract.contract_id}" '
                    f"(first in row {contract.lines[lid].row})",
                )
            else:
                line = LineDraft(contract, lid, row)
                contract.lines[lid] = line
        if isinstance(nte, Decimal):
            if method is FP:
                r.problem(
                    table,
                    "NotToExceed",
                    row,
                    "NotToExceed applies only to Time and material lines",
                )
            elif nte < 0:
                r.problem(table, "NotToExceed", row, f"NotToExceed {nte} must be 0 or more")
            elif r.money_ok(table, row, "NotToExceed", nte, contract) and (
                contract is not None and contract.places is not None
            ):
                nte = money.round_half_up(nte, contract.places)
        given = [c for c in SCHEDULE_COLUMNS if r.cell(table, cells, c) != ""]
        classes = ALL_CLASSES
        classes_ok = True
        generated: GeneratedSchedule | None = None
        if method is FP:
            for column in given:
                r.problem(table, column, row, f"{column} applies only to Time and material lines")
        elif method is TM:
            counted = len(r.found)
            classes = transaction_classes(r, table, cells, row)
            classes_ok = len(r.found) == counted
            if given and first is not BAD and last is not BAD:
                generated = line_schedule(r, table, cells, row, first, last)  # type: ignore[arg-type]
        if line is not None:
            line.name = name if isinstance(name, str) else ""
            line.method = method
            line.classes = classes
            # W10: transactions are checked against the line's method and classes when those
            # are good, whatever else is wrong on its row (a cap's decimals, its tax ...)
            line.checkable = method is FP or (method is TM and classes_ok)
            line.nte = nte if isinstance(nte, Decimal) and method is TM else None
            line.generated = generated
            if given and method is TM:
                line.schedule_cell = given[0]
            tax = line_tax(r, table, cells, row, contract)
            if tax is not None:
                line.tax = tax
            line.ok = len(r.found) == before


def transaction_classes(
    r: Reading, table: SheetTable, cells: list[object], row: int
) -> frozenset[TxnClass]:
    raw = r.cell(table, cells, "TransactionClasses")
    if raw == "":
        return ALL_CLASSES
    text = to_text(raw)
    chosen: set[TxnClass] = set()
    for part in text.split(","):
        word = part.strip()
        if not word:
            continue
        cls = CLASSES.get(word.lower())
        if cls is None:
            r.problem(
                table,
                "TransactionClasses",
                row,
                f'TransactionClasses "{text}": "{word}" is not one of {CLASS_NAMES}',
            )
            return ALL_CLASSES
        chosen.add(cls)
    return frozenset(chosen) if chosen else ALL_CLASSES


def line_schedule(
    r: Reading,
    table: SheetTable,
    cells: list[object],
    row: int,
    first: date | None,
    last: date | None,
) -> GeneratedSchedule | None:
    frequency = to_text(r.cell(table, cells, "Frequency"))
    run_day = to_text(r.cell(table, cells, "RunDay"))
    rrule = to_text(r.cell(table, cells, "RRule"))
    if not frequency and not rrule:
        r.problem(
            table, "Frequency", row, "Frequency (or RRule) is required to generate a schedule"
        )
        return None
    try:
        return generated_schedule(frequency or None, run_day or None, first, last, rrule or None)
    except ScheduleError as exc:
        r.problem(table, exc.column, row, str(exc))
        return None


def read_customers(r: Reading) -> None:
    table = r.required_sheet("Customers")
    if table is None:
        return
    for row, cells in r.rows("Customers"):
        cid = r.convert(table, cells, row, "ContractId", to_id, "ContractId")
        kid = r.convert(table, cells, row, "CustomerId", to_id, "CustomerId")
        name = r.convert(table, cells, row, "CustomerName", to_stored_text)
        split = r.convert(table, cells, row, "SplitPercent", to_number, "SplitPercent")
        lid = r.convert(table, cells, row, "LineId", to_id, "LineId")
        rounding = r.convert(table, cells, row, "RoundingCustomer", to_bool, "RoundingCustomer")
        address = read_address(r, table, cells, row)
        ok = r.required(table, row, "ContractId", cid)
        ok = r.required(table, row, "CustomerId", kid) and ok
        ok = r.required(table, row, "SplitPercent", split) and ok
        ok = lid is not BAD and rounding is not BAD and ok
        if isinstance(split, Decimal):
            split = r.as_percent(table, cells, "SplitPercent", row, split)
            if not 0 < split <= HUNDRED:
                r.problem(
                    table,
                    "SplitPercent",
                    row,
                    f"SplitPercent {split} must be more than 0 and at most 100",
                )
                ok = False
            elif not r.decimals_ok(table, row, "SplitPercent", split, 4):
                ok = False
        contract = r.contract_of(table, row, cid)
        if contract is not None and isinstance(kid, str):
            merge_address(r, table, row, contract, kid, address)
        if contract is None or lid is BAD:
            continue
        line_key: str | None = lid if isinstance(lid, str) else None
        if line_key is not None and r.line_of(table, row, contract, line_key) is None:
            continue
        group = contract.customer_groups.get(line_key)
        if group is None:
            group = contract.customer_groups[line_key] = SplitGroup(row)
        where = (
            f'contract "{contract.contract_id}"'
            if line_key is None
            else f'line "{line_key}" of contract "{contract.contract_id}"'
        )
        if isinstance(kid, str):
            if kid in group.ids:
                r.problem(
                    table,
                    "CustomerId",
                    row,
                    f'duplicate CustomerId "{kid}" for {where} (first in row {group.ids[kid]})',
                )
                ok = False
            else:
                group.ids[kid] = row
                if isinstance(name, str) and name:  # one name on all its rows (not a duplicate's)
                    merge_address(r, table, row, contract, kid, {"name": name})
                if kid not in contract.customer_ids:
                    contract.customer_ids.add(kid)
                    if len(contract.customer_ids) == MAX_CUSTOMERS_PER_CONTRACT + 1:
                        r.problem(
                            table,
                            "CustomerId",
                            row,
                            f'contract "{contract.contract_id}" has more than '
                            f"{MAX_CUSTOMERS_PER_CONTRACT} customers",
                        )
        if rounding is True:
            if group.rounding_row:
                r.problem(
                    table,
                    "RoundingCustomer",
                    row,
                    f"{where} already has a rounding customer (row {group.rounding_row})",
                )
                ok = False
            else:
                group.rounding_row = row
        if not ok:
            group.ok = False
            continue
        assert isinstance(kid, str) and isinstance(split, Decimal)
        group.total += split
        group.customers.append(
            Customer(kid, name if isinstance(name, str) else "", split, rounding is True)
        )


def read_percent(
    r: Reading, table: SheetTable, cells: list[object], row: int, column: str
) -> object:
    """A TaxPercent cell (E2): 0 to 100, at most 2 decimals; None when blank, BAD on a problem."""
    percent = r.convert(table, cells, row, column, to_number, column)
    if isinstance(percent, Decimal):
        percent = r.as_percent(table, cells, column, row, percent)
        why = tax.percent_problem(percent)
        if why is not None:
            r.problem(table, column, row, f"{column}: {why}")
            return BAD
    return percent


def line_tax(
    r: Reading,
    table: SheetTable,
    cells: list[object],
    row: int,
    contract: ContractDraft | None,
) -> tax.LineTax | None:
    """A line's (category, percent) after E2's defaults, or None after reporting why not."""
    percent = read_percent(r, table, cells, row, "TaxPercent")
    raw = r.cell(table, cells, "TaxCategory")
    category: TaxCategory | None = None
    if raw != "" and not (type(raw) is str and raw.isspace()):
        try:
            category = tax.parse_category(to_text(raw))
        except tax.TaxError as exc:
            r.problem(table, "TaxCategory", row, f"TaxCategory: {exc}")
            return None
    if percent is BAD:
        return None
    contract_percent = contract.tax_percent if contract is not None else None
    try:
        resolved = tax.resolve(percent, category, contract_percent)  # type: ignore[arg-type]
        if resolved.category is TaxCategory.NOT_SUBJECT:
            r.warn(
                table,
                "TaxCategory",
                row,
                "category O (not subject to VAT): its invoices are made, but their EN 16931 "
                "documents may carry no VAT id (BR-O-02) nor another category (BR-O-11), so a "
                "seller with a VatId gets no PDF or e-invoice for them",
            )
        return resolved
    except tax.TaxError as exc:
        column = "TaxCategory" if category is not None else "TaxPercent"
        r.problem(table, column, row, f"{column}: {exc}")
        return None


def check_lines(r: Reading) -> None:
    table = r.tables.get("ContractLines")
    if table is None:
        return
    for contract in r.contracts.values():
        for line in contract.lines.values():
            if not line.ok:
                continue
            if line.method is TM:
                if line.schedule_seen and line.schedule_cell:
                    r.problem(
                        table,
                        line.schedule_cell,
                        line.row,
                        f'line "{line.line_id}" of contract "{contract.contract_id}" has '
                        "InvoiceSchedule rows and a schedule on the line; use one or the other",
                    )
                elif not line.schedule_seen and not line.schedule_cell:
                    r.warn(
                        table,
                        "LineId",
                        line.row,
                        f'line "{line.line_id}" of contract "{contract.contract_id}" '
                        "has no invoice schedule; it will never be invoiced",
                    )
            elif line.method is FP and not line.milestone_count:
                r.warn(
                    table,
                    "LineId",
                    line.row,
                    f'line "{line.line_id}" of contract "{contract.contract_id}" '
                    "has no milestones; it will never be invoiced",
                )


def check_splits(r: Reading) -> None:
    customers = r.tables.get("Customers")
    contracts_table = r.tables.get("Contracts")
    if customers is None or contracts_table is None or "Customers" not in r.usable:
        return
    for contract in r.contracts.values():
        if None not in contract.customer_groups:
            r.problem(
                contracts_table,
                "ContractId",
                contract.row,
                f'contract "{contract.contract_id}" has no customers '
                "(Customers rows with a blank LineId)",
            )
        for line_key, group in contract.customer_groups.items():
            if group.ok and group.total != HUNDRED:
                where = (
                    f'contract "{contract.contract_id}"'
                    if line_key is None
                    else f'line "{line_key}" of contract "{contract.contract_id}"'
                )
                total = format(group.total.normalize(), "f")
                r.problem(
                    customers,
                    "SplitPercent",
                    group.first_row,
                    f"splits of {where} sum to {total}, not 100",
                )
