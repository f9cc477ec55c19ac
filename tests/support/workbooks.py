"""Input workbooks for tests, written with openpyxl (real .xlsx bytes, no mocks).

A *book* is a plain ``dict`` of sheet name -> rows; the first row is the header (Excel row 1), so
``book[sheet][k]`` is Excel row ``k + 1``. ``minimal_rows()`` returns a small valid book that tests
tweak with ``put`` / ``add`` / ``drop_column`` before turning it into bytes with ``xlsx``.
The large §P data set is ``bench.generate`` (seeded), the one generator of the benchmark.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterable, Mapping
from datetime import date

import openpyxl

from invoicing.workbook.columns import HEADERS, SHEETS

Book = dict[str, list[list[object]]]


class Text:
    """A cell written as text even if it looks like a number (number format ``@``, type ``s``)."""

    def __init__(self, value: str):
        self.value = value


class Formatted:
    """A cell value with an explicit number format (e.g. a date serial with no date format)."""

    def __init__(self, value: object, number_format: str):
        self.value = value
        self.number_format = number_format


def xlsx(sheets: Mapping[str, Iterable[Iterable[object]]]) -> bytes:
    """An .xlsx workbook with one sheet per entry, rows written from A1 down (None = empty cell)."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is None:
                    continue
                cell = ws.cell(row=r, column=c)
                if isinstance(value, Text):
                    cell.value = value.value
                    cell.data_type = "s"
                    cell.number_format = "@"
                elif isinstance(value, Formatted):
                    cell.value = value.value
                    cell.number_format = value.number_format
                else:
                    cell.value = value
    if not wb.worksheets:
        wb.create_sheet("Sheet1")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


CONTRACTS, CUSTOMERS, LINES, SCHEDULE, MILESTONES, TRANSACTIONS = (
    list(HEADERS[sheet]) for sheet in SHEETS
)


def minimal_rows() -> Book:
    """A small valid book: contract C1 (USD) with two customers, lines L1 (T&M, Monthly),
    L2 (T&M, explicit schedule) and L3 (fixed price, one milestone), and three transactions."""
    return copy.deepcopy(_MINIMAL)


_MINIMAL: Book = {
    "Contracts": [CONTRACTS, ["C1", "Adatum", "USD", 30]],
    "Customers": [
        CUSTOMERS,
        ["C1", "K1", "Fabrikam", 60, None, "Yes"],
        ["C1", "K2", "Contoso", 40, None, None],
    ],
    "ContractLines": [
        LINES,
        [
            "C1",
            "L1",
            "Design",
            "Time and material",
            "Time, Expense",
            10000,
            "Monthly",
            "Last",
            date(2020, 10, 1),
            date(2020, 12, 31),
            None,
        ],
        ["C1", "L2", "Build", "Time and material", None, None, None, None, None, None, None],
        ["C1", "L3", "Licence", "Fixed price", None, None, None, None, None, None, None],
    ],
    "InvoiceSchedule": [
        SCHEDULE,
        ["C1", "L2", date(2020, 10, 5), None],
        ["C1", "L2", date(2020, 11, 2), date(2020, 10, 31)],
    ],
    "Milestones": [
        MILESTONES,
        ["C1", "L3", "M1", "Kick-off", date(2020, 10, 15), 5000, "Yes"],
    ],
    "Transactions": [
        TRANSACTIONS,
        ["T1", "C1", "L1", "Time", date(2020, 10, 2), "Workshop", "Ana", 8, 125.5, None, "Yes"],
        ["T2", "C1", "L1", "Expense", date(2020, 10, 3), "Train", "Ana", None, None, 99.9, "No"],
        ["T3", "C1", "L2", "Material", date(2020, 10, 4), "Cable", None, 3, 2.5, 7.5, "Y"],
    ],
}


def column(book: Book, sheet: str, name: str) -> int:
    """0-based index of column ``name`` in ``sheet``'s header."""
    return book[sheet][0].index(name)


def put(book: Book, sheet: str, row: int, name: str, value: object) -> Book:
    """Set the cell of column ``name`` in Excel row ``row`` (2 = first data row)."""
    index = column(book, sheet, name)
    cells = book[sheet][row - 1]
    while len(cells) <= index:
        cells.append(None)
    cells[index] = value
    return book


def add(book: Book, sheet: str, **values: object) -> int:
    """Append a row given by column name; returns its Excel row number."""
    header = book[sheet][0]
    unknown = set(values) - set(header)
    if unknown:
        raise KeyError(f"{sheet} has no column {sorted(unknown)}")
    book[sheet].append([values.get(name) for name in header])
    return len(book[sheet])


def drop_column(book: Book, sheet: str, name: str) -> Book:
    index = column(book, sheet, name)
    for cells in book[sheet]:
        if len(cells) > index:
            del cells[index]
    return book


def daily_book(contracts: int, days: list[date], start: date = date(2020, 1, 1)) -> Book:
    """``contracts`` contracts with one daily line from ``start`` and one transaction per
    contract on each of ``days``."""
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}
    for c in range(contracts):
        cid = f"C{c}"
        book["Contracts"].append([cid, f"Contract {c}", "USD", 30])
        book["Customers"].append([cid, "K1", "First", 100, None, "Yes"])
        book["ContractLines"].append(
            [cid, "L", "Work", "Time and material", None, None, "Daily", None, start, None, None]
        )
        for day in days:
            book["Transactions"].append(
                [f"{cid}-{day:%m%d}", cid, "L", "Time", day, "w", None, None, None, 10, "Yes"]
            )
    return book
