"""Rules of the Transactions sheet (W6-W9): the big one.

P1 (parse + validate ≤ 2× calamine's own read) makes its loop tight: the common cell types are
tested inline, and converted ids, numbers, classes and booleans are cached per raw value (only
good values are cached, so a bad cell is reported on every row it occurs in). Every conversion
is still one of ``_cells``' converters; the cache only remembers what it returned.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from invoicing import money
from invoicing.model import Transaction, TxnClass
from invoicing.workbook._cells import (
    MAX_DATE,
    MAX_NUMBER,
    MAX_TEXT_UNITS,
    MIN_DATE,
    Bad,
    shown,
    to_bool,
    to_date,
    to_free_text,
    to_id,
    to_number,
    to_text,
    too_long,
)
from invoicing.workbook.contracts import CLASS_NAMES, CLASSES
from invoicing.workbook.drafts import FP, ContractDraft, LineDraft, Reading
from invoicing.workbook.loading import BAD, Invalid, SheetTable


def read_transactions(r: Reading) -> None:  # one tight loop on purpose (P1)
    table = r.tables.get("Transactions")
    if table is None or "Transactions" not in r.usable:
        return
    ix = table.index
    i_tid, i_cid, i_lid = ix["TransactionId"], ix["ContractId"], ix["LineId"]
    i_cls, i_date = ix["Class"], ix["Date"]
    i_desc, i_res = ix.get("Description"), ix.get("Resource")
    i_qty, i_price, i_amount = ix.get("Quantity"), ix.get("UnitPrice"), ix.get("Amount")
    i_ready = ix.get("ReadyToInvoice")
    first = table.first_row
    seen = r.transaction_rows
    # Caches of converted cells: only good values are cached, so a bad cell is reported on
    # every row it occurs in.
    lines: dict[tuple[object, object], LineDraft] = {}
    classes: dict[object, TxnClass] = {c.value: c for c in TxnClass}
    qty_cache: dict[float, Decimal] = {}
    price_cache: dict[float, Decimal] = {}
    amount_caches: dict[int, dict[float, Decimal]] = {}
    # to_bool's answers; blank is No, as convert's None for a blank cell is
    ready_cache: dict[object, bool] = {"": False}
    round_half_up = money.round_half_up
    date_type, float_type, str_type = date, float, str
    lo, hi = MIN_DATE, MAX_DATE
    half_text = MAX_TEXT_UNITS // 2
    max_number = MAX_NUMBER
    found = r.found
    bad = BAD
    for i, cells in enumerate(table.body):
        if cells.count("") == len(cells):
            continue
        row = first + i
        before = len(found)

        # TransactionId: unique across the workbook.
        raw = cells[i_tid]
        try:
            tid: object = to_id(raw, "TransactionId")
        except Bad as exc:
            r.problem(table, "TransactionId", row, str(exc))
            tid = bad
        if tid is None:
            r.problem(table, "TransactionId", row, "TransactionId is required")
        elif tid is not bad:
            first_row = seen.get(tid)  # type: ignore[arg-type]
            if first_row is None:
                seen[tid] = row  # type: ignore[index]
            else:
                r.problem(
                    table,
                    "TransactionId",
                    row,
                    f'duplicate TransactionId "{tid}" (first in row {first_row})',
                )

        # ContractId + LineId -> a known line.
        key = (cells[i_cid], cells[i_lid])
        line = lines.get(key)
        if line is not None:
            contract = line.contract
        else:
            line, contract = transaction_line(r, table, cells, row)
            if line is not None and contract is not None and contract.ok:
                lines[key] = line

        # Class.
        raw = cells[i_cls]
        cls = classes.get(raw)
        if cls is None:
            cls = transaction_class(r, table, row, raw)
            if cls is not None:
                classes[raw] = cls
        if cls is not None and line is not None and cls not in line.classes:
            r.problem(
                table,
                "Class",
                row,
                f'line "{line.line_id}" of contract "{line.contract.contract_id}" does not '
                f"bill {cls.value} (it bills {class_list(line.classes)})",
            )

        # Date.
        day = cells[i_date]
        if type(day) is not date_type or not lo <= day <= hi:
            day = r.convert(table, cells, row, "Date", to_date)
            if day is None:
                r.problem(table, "Date", row, "Date is required")

        # Quantity, UnitPrice, Amount (W8).
        qty: object = None
        if i_qty is not None:
            raw = cells[i_qty]
            if type(raw) is float_type:
                qty = qty_cache.get(raw)
                if qty is None:
                    qty = read_quantity(r, table, cells, row)
                    if qty is not bad:
                        qty_cache[raw] = qty  # type: ignore[assignment]
            elif raw != "":
                qty = read_quantity(r, table, cells, row)
        price: object = None
        if i_price is not None:
            raw = cells[i_price]
            if type(raw) is float_type:
                price = price_cache.get(raw)
                if price is None:
                    price = read_unit_price(r, table, cells, row)
                    if price is not bad:
                        price_cache[raw] = price  # type: ignore[assignment]
            elif raw != "":
                price = read_unit_price(r, table, cells, row)
        amount: object = None
        dp = contract.places if contract is not None else None
        if i_amount is not None:
            raw = cells[i_amount]
            if type(raw) is float_type and dp is not None:
                cache = amount_caches.get(dp)
                if cache is None:
                    cache = amount_caches[dp] = {}
                amount = cache.get(raw)
                if amount is None:
                    amount = read_amount(r, table, cells, row, contract)
                    if amount is not bad:
                        cache[raw] = amount  # type: ignore[assignment]
            elif raw != "":
                amount = read_amount(r, table, cells, row, contract)
        if amount is None:
            if qty is None and price is None:
                r.problem(table, "Amount", row, "give Quantity and UnitPrice, or Amount")
            elif qty is None:
                r.problem(
                    table,
                    "Quantity",
                    row,
                    "Quantity is required with UnitPrice when Amount is blank",
                )
            elif price is None:
                r.problem(
                    table,
                    "UnitPrice",
                    row,
                    "UnitPrice is required with Quantity when Amount is blank",
                )
            elif qty is not bad and price is not bad and dp is not None:
                # Below the limit the product is exact (≤ 27 digits) and rounds safely; a
                # larger one is refused before quantize could need more digits (L5).
                amount = qty * price  # type: ignore[operator]
                if amount >= max_number or (amount := round_half_up(amount, dp)) >= max_number:
                    amount = too_large(r, table, row, qty, price)  # type: ignore[arg-type]
        elif (
            qty is not None
            and price is not None
            and amount is not bad
            and qty is not bad
            and price is not bad
            and dp is not None
        ):
            product = qty * price  # type: ignore[operator]
            if product >= max_number or (product := round_half_up(product, dp)) >= max_number:
                too_large(r, table, row, qty, price)  # type: ignore[arg-type]
            elif product != amount:
                r.problem(
                    table,
                    "Amount",
                    row,
                    f"Amount {amount} does not match Quantity × UnitPrice = {product}",
                )

        # ReadyToInvoice.
        ready = False
        if i_ready is not None:
            raw = cells[i_ready]
            ready = ready_cache.get(raw)  # type: ignore[assignment]
            if ready is None:
                ready = r.convert(table, cells, row, "ReadyToInvoice", to_bool, "ReadyToInvoice")  # type: ignore[assignment]
                if ready is not bad:
                    ready_cache[raw] = ready  # type: ignore[assignment]

        # Description, Resource: at most what a Table Storage property holds (L4); a text of
        # n characters has at most 2n UTF-16 units, so only long ones are measured.
        desc = cells[i_desc] if i_desc is not None else ""
        if type(desc) is str_type and len(desc) > half_text:
            long_text(r, table, row, "Description", desc)
        res = cells[i_res] if i_res is not None else ""
        if type(res) is str_type and len(res) > half_text:
            long_text(r, table, row, "Resource", res)

        if len(found) != before or line is None or dp is None:
            continue
        contract.txns.append(
            Transaction(  # type: ignore[union-attr]
                tid,
                line.line_id,
                cls,
                day,
                amount,
                ready,  # type: ignore[arg-type]
                desc if type(desc) is str_type else to_free_text(desc),
                res if type(res) is str_type else to_free_text(res),
                qty,
                price,  # type: ignore[arg-type]
            )
        )
        contract.txn_rows.append(row)  # type: ignore[union-attr]


def transaction_line(
    r: Reading, table: SheetTable, cells: list[object], row: int
) -> tuple[LineDraft | None, ContractDraft | None]:
    """The line a transaction names, if it can be checked against; and its contract."""
    cid = r.convert(table, cells, row, "ContractId", to_id, "ContractId")
    lid = r.convert(table, cells, row, "LineId", to_id, "LineId")
    r.required(table, row, "ContractId", cid)
    r.required(table, row, "LineId", lid)
    contract = r.contract_of(table, row, cid)
    line = r.line_of(table, row, contract, lid)
    if line is not None and line.method is FP:
        r.problem(
            table,
            "LineId",
            row,
            f'line "{line.line_id}" of contract "{line.contract.contract_id}" is Fixed '
            "price; transactions are for Time and material lines",
        )
        line = None
    elif line is not None and not line.checkable:
        line = None  # the line's method or classes are broken (reported there): no checks
    return line, contract


def too_large(r: Reading, table: SheetTable, row: int, qty: Decimal, price: Decimal) -> Invalid:
    """Quantity × UnitPrice at or over the amount limit is a cell error, never an
    arithmetic exception (L5)."""
    r.problem(
        table,
        "Quantity",
        row,
        f"Quantity × UnitPrice = {qty} × {price} is too large (amounts are below 10^15)",
    )
    return BAD


def long_text(r: Reading, table: SheetTable, row: int, column: str, text: str) -> None:
    problem = too_long(text)
    if problem is not None:
        r.problem(table, column, row, problem)


def transaction_class(r: Reading, table: SheetTable, row: int, raw: object) -> TxnClass | None:
    if raw == "":
        r.problem(table, "Class", row, "Class is required")
        return None
    cls = CLASSES.get(to_text(raw).lower())
    if cls is None:
        r.problem(table, "Class", row, f'Class "{shown(raw)}" is not one of {CLASS_NAMES}')
    return cls


def read_quantity(r: Reading, table: SheetTable, cells: list[object], row: int) -> object:
    qty = r.convert(table, cells, row, "Quantity", to_number, "Quantity")
    if isinstance(qty, Decimal):
        if qty <= 0:
            r.problem(table, "Quantity", row, f"Quantity {qty} must be more than 0")
            return BAD
        if not r.decimals_ok(table, row, "Quantity", qty, 6):
            return BAD
    return qty


def read_unit_price(r: Reading, table: SheetTable, cells: list[object], row: int) -> object:
    price = r.convert(table, cells, row, "UnitPrice", to_number, "UnitPrice")
    if isinstance(price, Decimal):
        if price < 0:
            r.problem(table, "UnitPrice", row, f"UnitPrice {price} must be 0 or more")
            return BAD
        if not r.decimals_ok(table, row, "UnitPrice", price, 6):
            return BAD
    return price


def read_amount(
    r: Reading, table: SheetTable, cells: list[object], row: int, contract: ContractDraft | None
) -> object:
    amount = r.convert(table, cells, row, "Amount", to_number, "Amount")
    if isinstance(amount, Decimal):
        if amount < 0:
            r.problem(table, "Amount", row, f"Amount {amount} must be 0 or more")
            return BAD
        if not r.money_ok(table, row, "Amount", amount, contract):
            return BAD
        if contract is not None and contract.places is not None:
            return money.round_half_up(amount, contract.places)
    return amount


def class_list(classes: frozenset[TxnClass]) -> str:
    return ", ".join(c.value for c in TxnClass if c in classes)
