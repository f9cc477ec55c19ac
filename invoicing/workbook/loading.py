"""Loading the input workbook: its sheets, their headers, the problem list and cell access (§W).

Reading is python-calamine (``to_python`` of each sheet's used range; ``sheet.start`` gives the
range's offset, so a sheet whose first rows or columns are empty still reports real Excel
addresses). ``Sheets`` holds what every per-sheet rule needs: the tables found, which of them are
usable (present with every required column), the problems found so far (W10, as
``errors.Problem(sheet, cell, message)``) and the warnings, and the helpers that convert one cell
and report its problem.

A sheet that lacks a required column is not read at all: its rows would only repeat that problem.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import NoReturn

from defusedxml import ElementTree as DefusedET
from python_calamine import CalamineError, CalamineWorkbook

from invoicing.errors import Problem, UploadRejected
from invoicing.settings import Settings
from invoicing.workbook._cells import (
    Bad,
    column_index,
    column_letter,
    places,
    to_stored_text,
    to_text,
)
from invoicing.workbook.columns import INPUT_SHEETS as SHEETS
from invoicing.workbook.columns import INSTRUCTIONS_SHEET
from invoicing.workbook.gate import ErrorCells

REQUIRED_SHEETS = ("Contracts", "Customers", "ContractLines")
MAX_PROBLEMS = 1000
EXCEL_ERROR = "the cell holds the Excel error"
EXCEL_ERROR_FIX = "fix the formula or clear the cell"
SHEET_RANK = {name: rank for rank, name in enumerate(SHEETS)}
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def name_key(name: str) -> str:
    """Header and sheet names match ignoring case, spaces and underscores."""
    return "".join(name.split()).replace("_", "").lower()


SHEET_KEYS = {name_key(name): name for name in SHEETS}
COLUMN_KEYS = {sheet: {name_key(c): c for c, _ in cols} for sheet, cols in SHEETS.items()}


class Invalid:
    """The value of a cell that had a problem (already reported): not blank, not usable."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<bad cell>"


BAD = Invalid()


class ProblemList(list):  # type: ignore[type-arg]
    """Problems found so far, as (sheet rank, row, column, problem): every one counted, the first
    ``MAX_PROBLEMS`` kept. A hostile or hopeless upload can have a problem in each of millions of
    cells; listing them all would cost gigabytes (L3) and help nobody."""

    dropped = 0

    def append(self, item: tuple[int, int, int, Problem]) -> None:
        if len(self) < MAX_PROBLEMS:
            super().append(item)
        else:
            self.dropped += 1


class SheetTable:
    """One input sheet: its data rows as calamine returns them, and where its columns are."""

    __slots__ = ("body", "canonical", "col_offset", "first_row", "index", "name")

    def __init__(self, name: str, canonical: str):
        self.name = name  # as written in the workbook: messages use it
        self.canonical = canonical
        self.body: list[list[object]] = []
        self.first_row = 2  # Excel row of body[0]
        self.col_offset = 0
        self.index: dict[str, int] = {}  # column -> position in a row list

    def letter(self, column: str) -> str:
        pos = self.index.get(column)
        if pos is None:  # an optional column the sheet lacks: point at the row's first cell
            return "A"
        return column_letter(self.col_offset + pos)

    def col_number(self, column: str) -> int:
        pos = self.index.get(column)
        return -1 if pos is None else self.col_offset + pos


def open_book(data: bytes) -> CalamineWorkbook:
    try:
        return CalamineWorkbook.from_filelike(io.BytesIO(data))
    except (CalamineError, ValueError, OSError) as exc:
        raise UploadRejected(f"the upload is not a readable .xlsx workbook ({exc})") from None
    except BaseException as exc:
        reraise_panic(exc)


def reraise_panic(exc: BaseException) -> NoReturn:
    """calamine (Rust) panics on some malformed content as pyo3's ``PanicException``, a
    ``BaseException``: the gate screens the known cases; any other is still the upload's fault."""
    if type(exc).__name__ == "PanicException":
        raise UploadRejected(
            "the workbook has content the parser cannot handle; re-save it in Excel", status=422
        ) from None
    raise exc


def error_cells_by_sheet(data: bytes, error_cells: ErrorCells) -> ErrorCells:
    """Re-key the gate's error cells from zip member names to sheet names (workbook.xml + rels,
    both small and already checked by the gate; parsed with defusedxml)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            book = DefusedET.fromstring(archive.read("xl/workbook.xml"))
            rels = DefusedET.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except Exception:  # any malformed part (bad encoding names, broken XML): nothing to map;
        return {}  # the parser then judges the workbook on its own
    targets = {}
    for rel in rels:
        target = rel.get("Target", "").lstrip("/")
        targets[rel.get("Id")] = target if target.startswith("xl/") else f"xl/{target}"
    by_name = {}
    for sheet in book.iter(f"{{{_MAIN_NS}}}sheet"):
        member = targets.get(sheet.get(f"{{{_REL_NS}}}id"))
        if member in error_cells:
            by_name[sheet.get("name", "")] = error_cells[member]
    return by_name


class Sheets:
    """The workbook's input sheets, the problems and warnings found, and cell access."""

    def __init__(
        self, book: CalamineWorkbook, settings: Settings, error_cells: ErrorCells | None = None
    ):
        self.book = book
        self.settings = settings
        self.error_cells = error_cells or {}  # sheet name -> (reference, error text)
        self.found = ProblemList()
        self.warnings: list[str] = []
        self.tables: dict[str, SheetTable] = {}
        self.usable: set[str] = set()  # sheets present with every required column

    # -- reporting --

    def problem(self, table: SheetTable, column: str, row: int, message: str) -> None:
        letter = table.letter(column)
        self.found.append(
            (
                SHEET_RANK[table.canonical],
                row,
                table.col_number(column),
                Problem(table.name, f"{letter}{row}", message),
            )
        )

    def sheet_problem(self, canonical: str, name: str, cell: str, row: int, message: str) -> None:
        self.found.append((SHEET_RANK[canonical], row, 0, Problem(name, cell, message)))

    def warn(self, table: SheetTable, column: str, row: int, message: str) -> None:
        self.warnings.append(f"{table.name}!{table.letter(column)}{row}: {message}")

    # -- loading --

    def load(self) -> None:
        max_rows = self.settings.max_rows
        for name in self.book.sheet_names:
            canonical = SHEET_KEYS.get(name_key(name))
            if canonical is None and name_key(name) == name_key(INSTRUCTIONS_SHEET):
                continue  # the template's own help sheet: ignored without a warning
            if canonical is None:
                self.warnings.append(f'sheet "{name}" is not an input sheet; ignored')
                continue
            if canonical in self.tables:
                first = self.tables[canonical].name
                self.sheet_problem(
                    canonical, name, "", 0, f'a second "{canonical}" sheet (after "{first}")'
                )
                continue
            table = SheetTable(name, canonical)
            self.tables[canonical] = table
            try:
                sheet = self.book.get_sheet_by_name(name)
                start = sheet.start
                if start is None:  # an empty sheet
                    if canonical not in REQUIRED_SHEETS:
                        del self.tables[canonical]  # an empty optional sheet means none
                        continue
                    rows: list[list[object]] = []
                    start = (0, 0)
                else:
                    # One row more than allowed tells us the sheet is over the limit; bounding
                    # to_python bounds the Python objects a hostile sheet can make us build.
                    rows = sheet.to_python(nrows=max(1, max_rows + 2 - start[0]))
            except (CalamineError, ValueError, OSError) as exc:
                raise UploadRejected(
                    f'the workbook\'s sheet "{name}" cannot be read ({exc})', status=422
                ) from None
            except BaseException as exc:
                reraise_panic(exc)
            header: list[object] = rows[0] if rows and start[0] == 0 else []
            table.body = rows[1:] if header else rows
            table.first_row = 2 if header else start[0] + 1
            table.col_offset = start[1]
            if table.first_row - 2 + len(table.body) > max_rows:
                over = max_rows + 2
                self.sheet_problem(
                    canonical,
                    name,
                    f"A{over}",
                    over,
                    f"the sheet has more than {max_rows:,} data rows",
                )
                table.body = []  # not read at all: its rows would only cascade
                self._header(table, header)
                self.usable.discard(canonical)
                continue
            self._header(table, header)

    def _header(self, table: SheetTable, header: list[object]) -> None:
        keys = COLUMN_KEYS[table.canonical]
        rank = SHEET_RANK[table.canonical]
        index = table.index
        ok = True
        for pos, raw in enumerate(header):
            text = to_text(raw)
            if not text:
                continue
            letter = column_letter(table.col_offset + pos)
            column = keys.get(name_key(text))
            if column is None:
                self.warnings.append(f'{table.name}!{letter}1: unknown column "{text}" ignored')
            elif column in index:
                # Which of the two is meant is unknowable: the sheet's rows are not read.
                message = f'column "{column}" appears twice (also in {table.letter(column)}1)'
                problem = Problem(table.name, f"{letter}1", message)
                self.found.append((rank, 1, table.col_offset + pos, problem))
                ok = False
            else:
                index[column] = pos
        for column, required in SHEETS[table.canonical]:
            if required and column not in index:
                problem = Problem(table.name, "A1", f'required column "{column}" is missing')
                self.found.append((rank, 1, -1, problem))
                ok = False
        if ok:
            self.usable.add(table.canonical)
        else:
            table.body = []

    def excel_errors(self) -> set[tuple[str, str]]:
        """W7: a cell holding an Excel error (#N/A, #REF! …) in a column we read is a problem.
        Returns where those cells are (sheet, reference)."""
        reported: set[tuple[str, str]] = set()
        for table in self.tables.values():
            columns = {pos: name for name, pos in table.index.items()}
            for reference, text in self.error_cells.get(table.name, ()):
                letters = reference.rstrip("0123456789")
                row = int(reference[len(letters) :])
                pos = column_index(letters) - table.col_offset
                if row < 2 or pos not in columns:
                    continue  # the header row or a column we ignore
                problem = Problem(table.name, reference, f"{EXCEL_ERROR} {text}; {EXCEL_ERROR_FIX}")
                self.found.append(
                    (SHEET_RANK[table.canonical], row, table.col_offset + pos, problem)
                )
                reported.add((table.name, reference))
        return reported

    def required_sheet(self, sheet: str) -> SheetTable | None:
        """The table of a required sheet, or None after reporting it missing."""
        table = self.tables.get(sheet)
        if table is None:
            self.sheet_problem(sheet, sheet, "", 0, "required sheet is missing")
        return table

    # -- cell access --

    def rows(self, canonical: str) -> Iterator[tuple[int, list[object]]]:
        """(Excel row, cells) of every non-blank data row of a usable sheet."""
        table = self.tables.get(canonical)
        if table is None or canonical not in self.usable:
            return
        first = table.first_row
        for i, cells in enumerate(table.body):
            if cells.count("") == len(cells):
                continue
            yield first + i, cells

    @staticmethod
    def cell(table: SheetTable, cells: list[object], column: str) -> object:
        pos = table.index.get(column)
        return "" if pos is None else cells[pos]

    def convert(
        self,
        table: SheetTable,
        cells: list[object],
        row: int,
        column: str,
        fn: Callable[..., object],
        *args: object,
    ) -> object:
        """Convert one cell with ``fn(raw, *args)``; ``None`` when blank; ``BAD`` on a problem.
        A cell of spaces is blank, except for free text (``to_stored_text``), kept as typed."""
        pos = table.index.get(column)
        raw = "" if pos is None else cells[pos]
        if raw == "" or (fn is not to_stored_text and type(raw) is str and raw.isspace()):
            return None
        try:
            return fn(raw, *args)
        except Bad as exc:
            self.problem(table, column, row, str(exc))
            return BAD

    def required(self, table: SheetTable, row: int, column: str, value: object) -> bool:
        """Report a missing required cell; True when the value is usable."""
        if value is None:
            self.problem(table, column, row, f"{column} is required")
            return False
        return value is not BAD

    def decimals_ok(
        self,
        table: SheetTable,
        row: int,
        column: str,
        value: Decimal,
        most: int,
        currency: str = "",
    ) -> bool:
        """At most ``most`` decimals (W7): the currency's minor unit when ``currency`` is given."""
        if places(value) <= most:
            return True
        if currency:
            message = f"{column} {value} has more decimals than {currency} allows ({most})"
        else:
            message = f"{column} {value} has more than {most} decimals"
        self.problem(table, column, row, message)
        return False
