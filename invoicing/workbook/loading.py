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
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import NoReturn

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
from invoicing.workbook.formats import sheet_members
from invoicing.workbook.gate import FORMULA, NO_SAVED_VALUE, ErrorCells
from invoicing.workbook.messy import MAX_TOTALS_ROWS, header_row, is_totals_row, near_sheet

REQUIRED_SHEETS = ("Contracts", "Customers", "ContractLines")
PERCENT_SHEETS = ("Contracts", "Customers", "ContractLines")  # with SplitPercent, TaxPercent
HUNDRED = Decimal(100)
ONE = Decimal(1)
MAX_PROBLEMS = 1000
EXCEL_ERROR = "the cell holds the Excel error"
EXCEL_ERROR_FIX = "fix the formula or clear the cell"
NO_VALUE_MESSAGE = (
    "the cell's formula has no saved value: the file was never recalculated; open it in Excel "
    "or LibreOffice, let it calculate, and save it again"
)
CELL_PROBLEMS = (EXCEL_ERROR, NO_VALUE_MESSAGE)  # what is said of such a cell; nothing else
SHEET_RANK = {name: rank for rank, name in enumerate(SHEETS)}


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
    cells; listing them all would cost gigabytes (L3) and help nobody.

    The same problem again and again in one column (a 5,000-row export whose every Date has a
    time of day) is listed ``SAME_KIND_LISTED`` times, then summarised in one line (W12)."""

    dropped = 0

    def __init__(self, items: Iterable[tuple[int, int, int, Problem]] = ()):
        super().__init__(items)
        # (rank, column, message kind) -> [count, first summarised item or None]
        self.kinds: dict[tuple[int, int, str], list] = {}  # type: ignore[type-arg]

    def append(self, item: tuple[int, int, int, Problem]) -> None:
        kind = (item[0], item[2], _KIND.sub("…", item[3].message))
        seen = self.kinds.get(kind)
        if seen is None:
            if len(self.kinds) >= MAX_PROBLEMS:  # bounded like the list itself (L3)
                seen = [-(10**18), None]  # never summarised: listed or dropped as before
            else:
                seen = self.kinds[kind] = [0, None]
        seen[0] += 1
        if seen[0] > SAME_KIND_LISTED:
            if seen[1] is None:
                seen[1] = item
            return
        if len(self) < MAX_PROBLEMS:
            super().append(item)
        else:
            self.dropped += 1

    def summarised(self) -> int:
        return sum(count - SAME_KIND_LISTED for count, first in self.kinds.values() if first)

    def summaries(self) -> list[tuple[int, int, int, Problem]]:
        """One line per kind of problem repeated in a column, at the first row not listed."""
        out = []
        for count, first in self.kinds.values():
            if first is None:
                continue
            more = count - SAME_KIND_LISTED
            problem = first[3]
            message = f"… and {more:,} more like it in this column (from this row on)"
            out.append((*first[:3], Problem(problem.sheet, problem.cell, message)))
        return out


# A problem's kind: its message without the values it quotes or counts.
_KIND = re.compile(r'"[^"]*"|[0-9][0-9.,:\- ]*')
SAME_KIND_LISTED = 5


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
            members = sheet_members(archive)
    except Exception:  # any malformed part (bad encoding names, broken XML): nothing to map;
        return {}  # the parser then judges the workbook on its own
    return {name: error_cells[m] for name, m in members.items() if m in error_cells}


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
        self.percent_refs: dict[str, set[str]] = {}  # sheet name -> cells formatted as a %

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
                near = near_sheet(name_key(name), SHEET_KEYS)
                if near is not None:  # W12: never silently drop what is probably billing
                    self.sheet_problem(
                        near,
                        name,
                        "",
                        0,
                        f"this sheet is not read, its name is not an input sheet's: if it holds "
                        f'the {near} rows, rename it "{near}"; otherwise remove it',
                    )
                    continue
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
                self._header(table, header, rows, start[0] + 1)
                self.usable.discard(canonical)
                continue
            self._header(table, header, rows, start[0] + 1)
            if canonical in self.usable:
                self._skip_totals(table)

    def _formulas(self, table: SheetTable) -> dict[int, set[int]]:
        """Excel row -> positions (in the row lists) of the sheet's formula cells."""
        by_row: dict[int, set[int]] = {}
        for reference, text in self.error_cells.get(table.name, ()):
            if text in (FORMULA, NO_SAVED_VALUE):
                letters = reference.rstrip("0123456789")
                row = int(reference[len(letters) :])
                by_row.setdefault(row, set()).add(column_index(letters) - table.col_offset)
        return by_row

    def _skip_totals(self, table: SheetTable) -> None:
        """W12: trailing rows that are only formulas over the data (an Excel table's totals row,
        a =SUM row) are not data: skipped with a warning."""
        if not self.error_cells.get(table.name):
            return
        formulas = self._formulas(table)
        body = table.body
        skipped = 0
        while body and skipped < MAX_TOTALS_ROWS:
            last = len(body) - 1
            cells = body[last]
            row = table.first_row + last
            if cells.count("") == len(cells):
                body.pop()
                continue
            if not is_totals_row(cells, formulas.get(row, set())):
                break
            body.pop()
            skipped += 1
            self.warnings.append(
                f"{table.name}!A{row}: a totals row (only formulas over the data) is not read"
            )

    def _header(
        self, table: SheetTable, header: list[object], rows: list[list[object]], first_row: int
    ) -> None:
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
        missing = [c for c, required in SHEETS[table.canonical] if required and c not in index]
        found_at = None
        if missing:
            wanted = {name_key(c) for c, required in SHEETS[table.canonical] if required}
            found_at = header_row(rows, first_row, wanted, name_key)
        if found_at is not None and found_at != 1:
            message = (
                f"the header must be in row 1; found it in row {found_at} "
                "(delete the rows above it)"
            )
            self.found.append((rank, 1, -1, Problem(table.name, f"A{found_at}", message)))
            ok = False
        else:
            for column in missing:
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
            last_row = table.first_row + len(table.body) - 1  # totals rows skipped
            for reference, text in self.error_cells.get(table.name, ()):
                if text == FORMULA:
                    continue  # a formula with its saved value: the value is read
                letters = reference.rstrip("0123456789")
                row = int(reference[len(letters) :])
                pos = column_index(letters) - table.col_offset
                if row < 2 or row > last_row or pos not in columns:
                    continue  # the header row, a skipped row or a column we ignore
                if text == NO_SAVED_VALUE:
                    message = NO_VALUE_MESSAGE
                else:
                    message = f"{EXCEL_ERROR} {text}; {EXCEL_ERROR_FIX}"
                problem = Problem(table.name, reference, message)
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

    def as_percent(
        self, table: SheetTable, cells: list[object], column: str, row: int, value: Decimal
    ) -> Decimal:
        """W12: a number cell formatted as a percentage (60 %, stored 0.6) is 60; text is as
        typed."""
        refs = self.percent_refs.get(table.name)
        if not refs or f"{table.letter(column)}{row}" not in refs:
            return value
        if type(self.cell(table, cells, column)) is not float:
            return value
        scaled = value * HUNDRED
        return scaled.quantize(ONE) if scaled == scaled.to_integral_value() else scaled.normalize()

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
