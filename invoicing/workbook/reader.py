"""The input workbook reader (§W): one .xlsx in, a validated ``Portfolio`` out, or every problem.

Reading is python-calamine (``to_python`` of each sheet's used range; ``sheet.start`` gives the
range's offset, so a sheet whose first rows or columns are empty still reports real Excel
addresses). Validation collects every problem (W10) as ``errors.Problem(sheet, cell, message)``;
any problem rejects the whole workbook with ``InputRejected``.

Cross-sheet checks do not cascade: a row that names a contract or line whose own row is broken is
not checked against it (the root problem is reported once), and a sheet that lacks a required
column is not read at all (its rows would only repeat that problem).

The Transactions sheet is the big one (P1: parse + validate ≤ 2× calamine's own read), so its loop
handles the common cell types inline, caches converted numbers, ids and classes, and falls back to
the general converters of ``_cells`` for anything unusual.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from pathlib import Path
from typing import NoReturn

from defusedxml import ElementTree as DefusedET
from python_calamine import CalamineError, CalamineWorkbook

from invoicing import money
from invoicing.errors import InputRejected, Problem, UploadRejected
from invoicing.gcpause import cyclic_gc_paused
from invoicing.model import (
    ALL_CLASSES,
    BillingMethod,
    Contract,
    ContractLine,
    Customer,
    Milestone,
    Portfolio,
    Transaction,
    TxnClass,
)
from invoicing.schedule import (
    ExplicitSchedule,
    GeneratedSchedule,
    ScheduleError,
    ScheduleRow,
    generated_schedule,
)
from invoicing.settings import Settings
from invoicing.workbook._cells import (
    MAX_DATE,
    MAX_ID_LENGTH,
    MAX_NUMBER,
    MAX_PAYMENT_TERMS,
    MAX_TEXT_UNITS,
    MIN_DATE,
    Bad,
    column_letter,
    places,
    shown,
    to_bool,
    to_date,
    to_free_text,
    to_id,
    to_number,
    to_stored_text,
    to_text,
    to_whole,
    too_long,
)
from invoicing.workbook.columns import INSTRUCTIONS_SHEET, SHEETS
from invoicing.workbook.gate import ErrorCells, check_upload

MAX_CUSTOMERS_PER_CONTRACT = 50
HUNDRED = Decimal(100)
ONE_DAY = timedelta(days=1)
# The reader's own arithmetic context, whatever the caller's thread has set: 34 digits hold every
# product and sum it computes below the number limit exactly (a Quantity × UnitPrice under 10^15
# has at most 27), and anything at or over the limit is refused before it is rounded (L5).
_DECIMAL_CONTEXT = Context(
    prec=34,
    rounding=ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)

# Sheet -> columns (name, required), in the order of SPEC W1-W6.
REQUIRED_SHEETS = ("Contracts", "Customers", "ContractLines")
SCHEDULE_COLUMNS = ("Frequency", "RunDay", "FirstRunDate", "LastRunDate", "RRule")
CLASS_NAMES = ", ".join(c.value for c in TxnClass)
_SHEET_RANK = {name: rank for rank, name in enumerate(SHEETS)}

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
_CLASSES = {c.value.lower(): c for c in TxnClass}
_TM = BillingMethod.TIME_AND_MATERIAL
_FP = BillingMethod.FIXED_PRICE


def _key(name: str) -> str:
    """Header and sheet names match ignoring case, spaces and underscores."""
    return "".join(name.split()).replace("_", "").lower()


_SHEET_KEYS = {_key(name): name for name in SHEETS}
_COLUMN_KEYS = {sheet: {_key(c): c for c, _ in cols} for sheet, cols in SHEETS.items()}


@dataclass(frozen=True)
class WorkbookRead:
    portfolio: Portfolio
    warnings: tuple[str, ...]
    locations: Mapping[tuple[str, str, str], tuple[str, int]]


def read_workbook(source: bytes | str | Path, *, settings: Settings | None = None) -> WorkbookRead:
    """Read and validate an input workbook (§W).

    Raises ``UploadRejected`` when the upload is not a workbook we open (L1, L2) and
    ``InputRejected`` with every problem found when the workbook has any (W10).
    """
    settings = settings or Settings()
    data = source if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    error_cells = check_upload(bytes(data), max_bytes=settings.max_upload_bytes)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except (CalamineError, ValueError, OSError) as exc:
        raise UploadRejected(f"the upload is not a readable .xlsx workbook ({exc})") from None
    except BaseException as exc:
        _reraise_panic(exc)
    if error_cells:
        error_cells = _by_sheet_name(bytes(data), error_cells)
    with cyclic_gc_paused(), localcontext(_DECIMAL_CONTEXT):
        return _Reader(book, settings, error_cells).read()


MAX_PROBLEMS = 1000


class _Found(list):  # type: ignore[type-arg]
    """Problems found so far: every one counted, the first ``MAX_PROBLEMS`` kept. A hostile or
    hopeless upload can have a problem in each of millions of cells; listing them all would cost
    gigabytes (L3) and help nobody."""

    dropped = 0

    def append(self, item: tuple[int, int, int, Problem]) -> None:
        if len(self) < MAX_PROBLEMS:
            super().append(item)
        else:
            self.dropped += 1


def _where(problem: Problem) -> tuple[str, str]:
    return (problem.sheet, problem.cell)


def _column_index(letters: str) -> int:
    """0-based column number of ``A``, ``B`` … ``XFD``."""
    number = 0
    for ch in letters:
        number = number * 26 + ord(ch) - 64
    return number - 1


def _reraise_panic(exc: BaseException) -> NoReturn:
    """calamine (Rust) panics on some malformed content as pyo3's ``PanicException``, a
    ``BaseException``: the gate screens the known cases; any other is still the upload's fault."""
    if type(exc).__name__ == "PanicException":
        raise UploadRejected(
            "the workbook has content the parser cannot handle; re-save it in Excel", status=422
        ) from None
    raise exc


# ---- state built while reading ------------------------------------------------------------------


class _Table:
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


class _C:
    """A contract being read."""

    __slots__ = (
        "contract_id",
        "currency",
        "customer_groups",
        "customer_ids",
        "lines",
        "milestone_rows",
        "milestones",
        "name",
        "ok",
        "places",
        "row",
        "terms",
        "txn_rows",
        "txns",
    )

    def __init__(self, contract_id: str, row: int):
        self.contract_id = contract_id
        self.row = row
        self.ok = True
        self.name = ""
        self.currency = ""
        self.places: int | None = None  # None: currency unusable, skip decimal checks
        self.terms = 30
        self.lines: dict[str, _L] = {}
        # line id (None = contract level) -> [customers, ok, first row, ids -> row, rounding row]
        self.customer_groups: dict[str | None, _Group] = {}
        self.customer_ids: set[str] = set()
        self.milestones: list[Milestone] = []
        self.milestone_rows: list[int] = []
        self.txns: list[Transaction] = []
        self.txn_rows: list[int] = []


class _L:
    """A contract line being read."""

    __slots__ = (
        "classes",
        "contract",
        "generated",
        "line_id",
        "method",
        "milestone_count",
        "name",
        "nte",
        "ok",
        "row",
        "schedule_cell",
        "schedule_rows",
        "schedule_seen",
    )

    def __init__(self, contract: _C, line_id: str, row: int):
        self.contract = contract
        self.line_id = line_id
        self.row = row
        self.ok = True
        self.name = ""
        self.method: BillingMethod | None = None
        self.classes: frozenset[TxnClass] = ALL_CLASSES
        self.nte: Decimal | None = None
        self.generated: GeneratedSchedule | None = None
        self.schedule_cell = ""  # first schedule column given on the line (T&M)
        self.schedule_rows: list[ScheduleRow] = []
        self.schedule_seen: dict[date, int] = {}
        self.milestone_count = 0


class _Group:
    __slots__ = ("customers", "first_row", "ids", "ok", "rounding_row", "total")

    def __init__(self, first_row: int):
        self.customers: list[Customer] = []
        self.first_row = first_row
        self.ids: dict[str, int] = {}
        self.ok = True
        self.total = Decimal(0)
        self.rounding_row = 0


class _Locations(Mapping[tuple[str, str, str], tuple[str, int]]):
    """(contract_id, kind, id) -> (sheet, row), built on first use (the engine never needs it)."""

    def __init__(self, contracts: list[_C], tables: dict[str, _Table]):
        self._contracts = contracts
        self._names = {canonical: t.name for canonical, t in tables.items()}
        self._map: dict[tuple[str, str, str], tuple[str, int]] | None = None

    def _built(self) -> dict[tuple[str, str, str], tuple[str, int]]:
        if self._map is None:
            names = self._names
            contracts_sheet = names.get("Contracts", "Contracts")
            lines_sheet = names.get("ContractLines", "ContractLines")
            milestones_sheet = names.get("Milestones", "Milestones")
            txn_sheet = names.get("Transactions", "Transactions")
            built: dict[tuple[str, str, str], tuple[str, int]] = {}
            for c in self._contracts:
                cid = c.contract_id
                built[(cid, "Contract", cid)] = (contracts_sheet, c.row)
                for line in c.lines.values():
                    built[(cid, "Line", line.line_id)] = (lines_sheet, line.row)
                for m, row in zip(c.milestones, c.milestone_rows, strict=True):
                    built[(cid, "Milestone", m.milestone_id)] = (milestones_sheet, row)
                for t, row in zip(c.txns, c.txn_rows, strict=True):
                    built[(cid, "Transaction", t.transaction_id)] = (txn_sheet, row)
            self._map = built
        return self._map

    def __getitem__(self, key: tuple[str, str, str]) -> tuple[str, int]:
        return self._built()[key]

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


# ---- the reader ---------------------------------------------------------------------------------


def _by_sheet_name(data: bytes, error_cells: ErrorCells) -> ErrorCells:
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


EXCEL_ERROR = "the cell holds the Excel error"
EXCEL_ERROR_FIX = "fix the formula or clear the cell"
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


class _Reader:
    def __init__(
        self, book: CalamineWorkbook, settings: Settings, error_cells: ErrorCells | None = None
    ):
        self.book = book
        self.settings = settings
        self.error_cells = error_cells or {}  # sheet name -> (reference, error text)
        self.found = _Found()  # (sheet rank, row, column, problem)
        self.warnings: list[str] = []
        self.tables: dict[str, _Table] = {}
        self.usable: set[str] = set()  # sheets present with every required column
        self.contracts: dict[str, _C] = {}
        self.transaction_rows: dict[str, int] = {}

    # -- reporting --

    def problem(self, table: _Table, column: str, row: int, message: str) -> None:
        letter = table.letter(column)
        self.found.append(
            (
                _SHEET_RANK[table.canonical],
                row,
                table.col_number(column),
                Problem(table.name, f"{letter}{row}", message),
            )
        )

    def warn(self, table: _Table, column: str, row: int, message: str) -> None:
        self.warnings.append(f"{table.name}!{table.letter(column)}{row}: {message}")

    # -- top level --

    def read(self) -> WorkbookRead:
        self._load_sheets()
        errors = self._excel_errors()
        self._contracts()
        self._lines()
        self._customers()
        self._schedule_rows()
        self._milestones()
        self._transactions()
        self._finish_lines()
        self._finish_contracts()
        if errors:
            # The parser reads an error cell as blank: what else was said of that cell is noise.
            kept = _Found(
                f
                for f in self.found
                if _where(f[3]) not in errors or f[3].message.startswith(EXCEL_ERROR)
            )
            kept.dropped = self.found.dropped
            self.found = kept
        if self.found:
            self.found.sort(key=lambda item: item[:3])
            listed = [p for *_, p in self.found]
            if self.found.dropped:
                listed.append(
                    Problem("", "", f"... and {self.found.dropped:,} more problems not listed")
                )
            rejected = InputRejected(listed)
            rejected.total = len(self.found) + self.found.dropped
            raise rejected
        contracts = list(self.contracts.values())
        warnings = tuple(self.warnings)
        portfolio = Portfolio(tuple(self._build(c) for c in contracts), warnings)
        return WorkbookRead(portfolio, warnings, _Locations(contracts, self.tables))

    def _excel_errors(self) -> set[tuple[str, str]]:
        """W7: a cell holding an Excel error (#N/A, #REF! …) in a column we read is a problem.
        Returns where those cells are (sheet, reference)."""
        reported: set[tuple[str, str]] = set()
        for table in self.tables.values():
            columns = {pos: name for name, pos in table.index.items()}
            for reference, text in self.error_cells.get(table.name, ()):
                letters = reference.rstrip("0123456789")
                row = int(reference[len(letters) :])
                pos = _column_index(letters) - table.col_offset
                if row < 2 or pos not in columns:
                    continue  # the header row or a column we ignore
                problem = Problem(table.name, reference, f"{EXCEL_ERROR} {text}; {EXCEL_ERROR_FIX}")
                self.found.append(
                    (_SHEET_RANK[table.canonical], row, table.col_offset + pos, problem)
                )
                reported.add((table.name, reference))
        return reported

    def _load_sheets(self) -> None:
        max_rows = self.settings.max_rows
        for name in self.book.sheet_names:
            canonical = _SHEET_KEYS.get(_key(name))
            if canonical is None and _key(name) == _key(INSTRUCTIONS_SHEET):
                continue  # the template's own help sheet: ignored without a warning
            if canonical is None:
                self.warnings.append(f'sheet "{name}" is not an input sheet; ignored')
                continue
            if canonical in self.tables:
                self.found.append(
                    (
                        _SHEET_RANK[canonical],
                        0,
                        0,
                        Problem(
                            name,
                            "",
                            f'a second "{canonical}" sheet (after "{self.tables[canonical].name}")',
                        ),
                    )
                )
                continue
            table = _Table(name, canonical)
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
                _reraise_panic(exc)
            header: list[object] = rows[0] if rows and start[0] == 0 else []
            table.body = rows[1:] if header else rows
            table.first_row = 2 if header else start[0] + 1
            table.col_offset = start[1]
            if table.first_row - 2 + len(table.body) > max_rows:
                over = max_rows + 2
                self.found.append(
                    (
                        _SHEET_RANK[canonical],
                        over,
                        0,
                        Problem(
                            name, f"A{over}", f"the sheet has more than {max_rows:,} data rows"
                        ),
                    )
                )
                table.body = []  # not read at all: its rows would only cascade
                self._header(table, header)
                self.usable.discard(canonical)
                continue
            self._header(table, header)

    def _header(self, table: _Table, header: list[object]) -> None:
        keys = _COLUMN_KEYS[table.canonical]
        rank = _SHEET_RANK[table.canonical]
        index = table.index
        ok = True
        for pos, raw in enumerate(header):
            text = to_text(raw)
            if not text:
                continue
            letter = column_letter(table.col_offset + pos)
            column = keys.get(_key(text))
            if column is None:
                self.warnings.append(f'{table.name}!{letter}1: unknown column "{text}" ignored')
            elif column in index:
                # Which of the two is meant is unknowable: the sheet's rows are not read.
                self.found.append(
                    (
                        rank,
                        1,
                        table.col_offset + pos,
                        Problem(
                            table.name,
                            f"{letter}1",
                            f'column "{column}" appears twice (also in {table.letter(column)}1)',
                        ),
                    )
                )
                ok = False
            else:
                index[column] = pos
        for column, required in SHEETS[table.canonical]:
            if required and column not in index:
                self.found.append(
                    (
                        rank,
                        1,
                        -1,
                        Problem(table.name, "A1", f'required column "{column}" is missing'),
                    )
                )
                ok = False
        if ok:
            self.usable.add(table.canonical)
        else:
            table.body = []

    # -- row helpers --

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

    def cell(self, table: _Table, cells: list[object], column: str) -> object:
        pos = table.index.get(column)
        return "" if pos is None else cells[pos]

    def convert(
        self, table: _Table, cells: list[object], row: int, column: str, fn: object, *args: object
    ) -> object:
        """Convert one cell with ``fn(raw, *args)``; ``None`` when blank; ``_BAD`` on a problem."""
        raw = self.cell(table, cells, column)
        if raw == "" or (fn is not _text and type(raw) is str and raw.isspace()):
            return None  # a cell of spaces is blank (free text alone is kept as typed)
        try:
            return fn(raw, *args)  # type: ignore[operator]
        except Bad as exc:
            self.problem(table, column, row, str(exc))
            return _BAD

    def required(self, table: _Table, row: int, column: str, value: object) -> bool:
        """Report a missing required cell; True when the value is usable."""
        if value is None:
            self.problem(table, column, row, f"{column} is required")
            return False
        return value is not _BAD

    def contract_of(self, table: _Table, row: int, cid: object) -> _C | None:
        """The contract a row names; reports an unknown one (unless Contracts is unusable)."""
        if not isinstance(cid, str):
            return None
        contract = self.contracts.get(cid)
        if contract is None and "Contracts" in self.usable:
            self.problem(
                table, "ContractId", row, f'contract "{cid}" is not on the Contracts sheet'
            )
        return contract

    def line_of(self, table: _Table, row: int, contract: _C | None, lid: object) -> _L | None:
        if contract is None or not isinstance(lid, str):
            return None
        line = contract.lines.get(lid)
        if line is None and "ContractLines" in self.usable:
            self.problem(
                table,
                "LineId",
                row,
                f'line "{lid}" is not a line of contract "{contract.contract_id}"',
            )
        return line

    def money_places(
        self, table: _Table, row: int, column: str, value: Decimal, contract: _C | None
    ) -> bool:
        if contract is None or contract.places is None:
            return True
        if places(value) > contract.places:
            self.problem(
                table,
                column,
                row,
                f"{column} {value} has more decimals than {contract.currency} allows "
                f"({contract.places})",
            )
            return False
        return True

    def max_places(self, table: _Table, row: int, column: str, value: Decimal, most: int) -> bool:
        if places(value) > most:
            self.problem(table, column, row, f"{column} {value} has more than {most} decimals")
            return False
        return True

    # -- sheets --

    def required_sheet(self, sheet: str) -> _Table | None:
        """The table of a required sheet, or None after reporting it missing."""
        table = self.tables.get(sheet)
        if table is None:
            problem = Problem(sheet, "", "required sheet is missing")
            self.found.append((_SHEET_RANK[sheet], 0, 0, problem))
        return table

    def _contracts(self) -> None:
        table = self.required_sheet("Contracts")
        if table is None:
            return
        for row, cells in self.rows("Contracts"):
            before = len(self.found)
            cid = self.convert(table, cells, row, "ContractId", to_id, "ContractId")
            name = self.convert(table, cells, row, "ContractName", _text)
            currency_raw = self.cell(table, cells, "Currency")
            currency_text = to_text(currency_raw)
            currency = currency_text.upper() if currency_text else None
            terms = self.convert(
                table,
                cells,
                row,
                "PaymentTermsDays",
                to_whole,
                "PaymentTermsDays",
                MAX_PAYMENT_TERMS,
            )
            if not self.required(table, row, "ContractId", cid):
                self.required(table, row, "Currency", currency)
                continue
            assert isinstance(cid, str)
            if cid in self.contracts:
                self.problem(
                    table,
                    "ContractId",
                    row,
                    f'duplicate ContractId "{cid}" (first in row {self.contracts[cid].row})',
                )
                continue
            contract = _C(cid, row)
            self.contracts[cid] = contract
            contract.name = name if isinstance(name, str) else ""
            if self.required(table, row, "Currency", currency):
                assert isinstance(currency, str)
                if money.is_currency(currency):
                    contract.currency = currency
                    contract.places = money.minor_unit(currency)
                else:
                    self.problem(
                        table,
                        "Currency",
                        row,
                        f'Currency "{currency_text}" is not an active ISO 4217 code',
                    )
            if isinstance(terms, int):
                contract.terms = terms
            contract.ok = len(self.found) == before

    def _lines(self) -> None:
        table = self.required_sheet("ContractLines")
        if table is None:
            return
        for row, cells in self.rows("ContractLines"):
            before = len(self.found)
            cid = self.convert(table, cells, row, "ContractId", to_id, "ContractId")
            lid = self.convert(table, cells, row, "LineId", to_id, "LineId")
            name = self.convert(table, cells, row, "LineName", _text)
            method_raw = self.cell(table, cells, "BillingMethod")
            nte = self.convert(table, cells, row, "NotToExceed", to_number, "NotToExceed")
            first = self.convert(table, cells, row, "FirstRunDate", to_date)
            last = self.convert(table, cells, row, "LastRunDate", to_date)
            self.required(table, row, "ContractId", cid)
            self.required(table, row, "LineId", lid)
            contract = self.contract_of(table, row, cid)
            method: BillingMethod | None = None
            if method_raw == "":
                self.problem(table, "BillingMethod", row, "BillingMethod is required")
            else:
                method = _METHODS.get(_key(to_text(method_raw)))
                if method is None:
                    self.problem(
                        table,
                        "BillingMethod",
                        row,
                        f'BillingMethod "{to_text(method_raw)}" is not "Time and material" '
                        'or "Fixed price"',
                    )
            line: _L | None = None
            if contract is not None and isinstance(lid, str):
                if lid in contract.lines:
                    self.problem(
                        table,
                        "LineId",
                        row,
                        f'duplicate LineId "{lid}" in contract "{contract.contract_id}" '
                        f"(first in row {contract.lines[lid].row})",
                    )
                else:
                    line = _L(contract, lid, row)
                    contract.lines[lid] = line
            if isinstance(nte, Decimal):
                if method is _FP:
                    self.problem(
                        table,
                        "NotToExceed",
                        row,
                        "NotToExceed applies only to Time and material lines",
                    )
                elif nte < 0:
                    self.problem(table, "NotToExceed", row, f"NotToExceed {nte} must be 0 or more")
                elif self.money_places(table, row, "NotToExceed", nte, contract) and (
                    contract is not None and contract.places is not None
                ):
                    nte = money.round_half_up(nte, contract.places)
            given = [c for c in SCHEDULE_COLUMNS if self.cell(table, cells, c) != ""]
            classes = ALL_CLASSES
            generated: GeneratedSchedule | None = None
            if method is _FP:
                for column in given:
                    self.problem(
                        table, column, row, f"{column} applies only to Time and material lines"
                    )
            elif method is _TM:
                classes = self._classes(table, cells, row)
                if given and first is not _BAD and last is not _BAD:
                    generated = self._generated(table, cells, row, first, last)  # type: ignore[arg-type]
            if line is not None:
                line.name = name if isinstance(name, str) else ""
                line.method = method
                line.classes = classes
                line.nte = nte if isinstance(nte, Decimal) and method is _TM else None
                line.generated = generated
                if given and method is _TM:
                    line.schedule_cell = given[0]
                line.ok = len(self.found) == before

    def _classes(self, table: _Table, cells: list[object], row: int) -> frozenset[TxnClass]:
        raw = self.cell(table, cells, "TransactionClasses")
        if raw == "":
            return ALL_CLASSES
        text = to_text(raw)
        chosen: set[TxnClass] = set()
        for part in text.split(","):
            word = part.strip()
            if not word:
                continue
            cls = _CLASSES.get(word.lower())
            if cls is None:
                self.problem(
                    table,
                    "TransactionClasses",
                    row,
                    f'TransactionClasses "{text}": "{word}" is not one of {CLASS_NAMES}',
                )
                return ALL_CLASSES
            chosen.add(cls)
        return frozenset(chosen) if chosen else ALL_CLASSES

    def _generated(
        self, table: _Table, cells: list[object], row: int, first: date | None, last: date | None
    ) -> GeneratedSchedule | None:
        frequency = to_text(self.cell(table, cells, "Frequency"))
        run_day = to_text(self.cell(table, cells, "RunDay"))
        rrule = to_text(self.cell(table, cells, "RRule"))
        if not frequency and not rrule:
            self.problem(
                table, "Frequency", row, "Frequency (or RRule) is required to generate a schedule"
            )
            return None
        try:
            return generated_schedule(
                frequency or None, run_day or None, first, last, rrule or None
            )
        except ScheduleError as exc:
            self.problem(table, exc.column, row, str(exc))
            return None

    def _customers(self) -> None:
        table = self.required_sheet("Customers")
        if table is None:
            return
        for row, cells in self.rows("Customers"):
            cid = self.convert(table, cells, row, "ContractId", to_id, "ContractId")
            kid = self.convert(table, cells, row, "CustomerId", to_id, "CustomerId")
            name = self.convert(table, cells, row, "CustomerName", _text)
            split = self.convert(table, cells, row, "SplitPercent", to_number, "SplitPercent")
            lid = self.convert(table, cells, row, "LineId", to_id, "LineId")
            rounding = self.convert(
                table, cells, row, "RoundingCustomer", to_bool, "RoundingCustomer"
            )
            ok = self.required(table, row, "ContractId", cid)
            ok = self.required(table, row, "CustomerId", kid) and ok
            ok = self.required(table, row, "SplitPercent", split) and ok
            ok = lid is not _BAD and rounding is not _BAD and ok
            if isinstance(split, Decimal):
                if not 0 < split <= HUNDRED:
                    self.problem(
                        table,
                        "SplitPercent",
                        row,
                        f"SplitPercent {split} must be more than 0 and at most 100",
                    )
                    ok = False
                elif not self.max_places(table, row, "SplitPercent", split, 4):
                    ok = False
            contract = self.contract_of(table, row, cid)
            if contract is None or lid is _BAD:
                continue
            line_key: str | None = lid if isinstance(lid, str) else None
            if line_key is not None and self.line_of(table, row, contract, line_key) is None:
                continue
            group = contract.customer_groups.get(line_key)
            if group is None:
                group = contract.customer_groups[line_key] = _Group(row)
            where = (
                f'contract "{contract.contract_id}"'
                if line_key is None
                else f'line "{line_key}" of contract "{contract.contract_id}"'
            )
            if isinstance(kid, str):
                if kid in group.ids:
                    self.problem(
                        table,
                        "CustomerId",
                        row,
                        f'duplicate CustomerId "{kid}" for {where} (first in row {group.ids[kid]})',
                    )
                    ok = False
                else:
                    group.ids[kid] = row
                    if kid not in contract.customer_ids:
                        contract.customer_ids.add(kid)
                        if len(contract.customer_ids) == MAX_CUSTOMERS_PER_CONTRACT + 1:
                            self.problem(
                                table,
                                "CustomerId",
                                row,
                                f'contract "{contract.contract_id}" has more than '
                                f"{MAX_CUSTOMERS_PER_CONTRACT} customers",
                            )
            if rounding is True:
                if group.rounding_row:
                    self.problem(
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

    def _schedule_rows(self) -> None:
        table = self.tables.get("InvoiceSchedule")
        if table is None:
            return
        for row, cells in self.rows("InvoiceSchedule"):
            cid = self.convert(table, cells, row, "ContractId", to_id, "ContractId")
            lid = self.convert(table, cells, row, "LineId", to_id, "LineId")
            run = self.convert(table, cells, row, "InvoiceRunDate", to_date)
            cutoff = self.convert(table, cells, row, "TransactionCutoffDate", to_date)
            self.required(table, row, "ContractId", cid)
            self.required(table, row, "LineId", lid)
            run_ok = self.required(table, row, "InvoiceRunDate", run)
            line = self.line_of(table, row, self.contract_of(table, row, cid), lid)
            if line is not None and line.method is _FP:
                self.problem(
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
                self.problem(
                    table,
                    "TransactionCutoffDate",
                    row,
                    f"TransactionCutoffDate {cutoff} is after InvoiceRunDate {run}",
                )
                cutoff = _BAD
            if line is None:
                continue
            seen = line.schedule_seen.get(run)
            if seen:
                self.problem(
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

    def _milestones(self) -> None:
        table = self.tables.get("Milestones")
        if table is None:
            return
        seen: dict[tuple[str, str], int] = {}
        for row, cells in self.rows("Milestones"):
            before = len(self.found)
            cid = self.convert(table, cells, row, "ContractId", to_id, "ContractId")
            lid = self.convert(table, cells, row, "LineId", to_id, "LineId")
            mid = self.convert(table, cells, row, "MilestoneId", to_id, "MilestoneId")
            name = self.convert(table, cells, row, "MilestoneName", _text)
            day = self.convert(table, cells, row, "MilestoneDate", to_date)
            amount = self.convert(table, cells, row, "Amount", to_number, "Amount")
            ready = self.convert(table, cells, row, "ReadyToInvoice", to_bool, "ReadyToInvoice")
            self.required(table, row, "ContractId", cid)
            self.required(table, row, "LineId", lid)
            self.required(table, row, "MilestoneId", mid)
            self.required(table, row, "MilestoneDate", day)
            self.required(table, row, "Amount", amount)
            contract = self.contract_of(table, row, cid)
            line = self.line_of(table, row, contract, lid)
            if line is not None:
                line.milestone_count += 1
                if line.method is _TM:
                    self.problem(
                        table,
                        "LineId",
                        row,
                        f'line "{line.line_id}" of contract "{contract.contract_id}" is '  # type: ignore[union-attr]
                        "Time and material; milestones are for Fixed price lines",
                    )
            if isinstance(amount, Decimal):
                if amount <= 0:
                    self.problem(table, "Amount", row, f"Amount {amount} must be more than 0")
                else:
                    self.money_places(table, row, "Amount", amount, contract)
            if contract is not None and isinstance(mid, str):
                key = (contract.contract_id, mid)
                if key in seen:
                    self.problem(
                        table,
                        "MilestoneId",
                        row,
                        f'duplicate MilestoneId "{mid}" in contract "{contract.contract_id}" '
                        f"(first in row {seen[key]})",
                    )
                else:
                    seen[key] = row
            if len(self.found) != before or contract is None or contract.places is None:
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

    def _transactions(self) -> None:  # one tight loop on purpose (P1)
        table = self.tables.get("Transactions")
        if table is None or "Transactions" not in self.usable:
            return
        ix = table.index
        i_tid, i_cid, i_lid = ix["TransactionId"], ix["ContractId"], ix["LineId"]
        i_cls, i_date = ix["Class"], ix["Date"]
        i_desc, i_res = ix.get("Description"), ix.get("Resource")
        i_qty, i_price, i_amount = ix.get("Quantity"), ix.get("UnitPrice"), ix.get("Amount")
        i_ready = ix.get("ReadyToInvoice")
        first = table.first_row
        seen = self.transaction_rows
        # Caches of converted cells: only good values are cached, so a bad cell is reported on
        # every row it occurs in.
        lines: dict[tuple[object, object], _L] = {}
        classes: dict[object, TxnClass] = {c.value: c for c in TxnClass}
        qty_cache: dict[float, Decimal] = {}
        price_cache: dict[float, Decimal] = {}
        amount_caches: dict[int, dict[float, Decimal]] = {}
        ready_words: dict[object, bool] = {
            "": False,
            "Yes": True,
            "No": False,
            "yes": True,
            "no": False,
            "Y": True,
            "N": False,
            "TRUE": True,
            "FALSE": False,
            "True": True,
            "False": False,
            True: True,
            False: False,
        }
        round_half_up = money.round_half_up
        date_type, float_type, str_type = date, float, str
        lo, hi = MIN_DATE, MAX_DATE
        half_text = MAX_TEXT_UNITS // 2
        max_number = MAX_NUMBER
        found = self.found
        bad = _BAD
        for i, cells in enumerate(table.body):
            if cells.count("") == len(cells):
                continue
            row = first + i
            before = len(found)

            # TransactionId: unique across the workbook.
            raw = cells[i_tid]
            if (
                type(raw) is str_type
                and raw
                and raw.isprintable()
                and raw[0] != " "
                and raw[-1] != " "
                and len(raw) <= MAX_ID_LENGTH
            ):
                tid: object = raw
            else:
                tid = self.convert(table, cells, row, "TransactionId", to_id, "TransactionId")
            if tid is None:
                self.problem(table, "TransactionId", row, "TransactionId is required")
            elif tid is not bad:
                first_row = seen.get(tid)  # type: ignore[arg-type]
                if first_row is None:
                    seen[tid] = row  # type: ignore[index]
                else:
                    self.problem(
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
                line, contract = self._transaction_line(table, cells, row)
                if line is not None and contract is not None and contract.ok:
                    lines[key] = line

            # Class.
            raw = cells[i_cls]
            cls = classes.get(raw)
            if cls is None:
                cls = self._transaction_class(table, row, raw)
                if cls is not None:
                    classes[raw] = cls
            if cls is not None and line is not None and cls not in line.classes:
                self.problem(
                    table,
                    "Class",
                    row,
                    f'line "{line.line_id}" of contract "{line.contract.contract_id}" does not '
                    f"bill {cls.value} (it bills {_class_list(line.classes)})",
                )

            # Date.
            day = cells[i_date]
            if type(day) is not date_type or not lo <= day <= hi:
                day = self.convert(table, cells, row, "Date", to_date)
                if day is None:
                    self.problem(table, "Date", row, "Date is required")

            # Quantity, UnitPrice, Amount (W8).
            qty: object = None
            if i_qty is not None:
                raw = cells[i_qty]
                if type(raw) is float_type:
                    qty = qty_cache.get(raw)
                    if qty is None:
                        qty = self._quantity(table, cells, row)
                        if qty is not bad:
                            qty_cache[raw] = qty  # type: ignore[assignment]
                elif raw != "":
                    qty = self._quantity(table, cells, row)
            price: object = None
            if i_price is not None:
                raw = cells[i_price]
                if type(raw) is float_type:
                    price = price_cache.get(raw)
                    if price is None:
                        price = self._unit_price(table, cells, row)
                        if price is not bad:
                            price_cache[raw] = price  # type: ignore[assignment]
                elif raw != "":
                    price = self._unit_price(table, cells, row)
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
                        amount = self._amount(table, cells, row, contract)
                        if amount is not bad:
                            cache[raw] = amount  # type: ignore[assignment]
                elif raw != "":
                    amount = self._amount(table, cells, row, contract)
            if amount is None:
                if qty is None and price is None:
                    self.problem(table, "Amount", row, "give Quantity and UnitPrice, or Amount")
                elif qty is None:
                    self.problem(
                        table,
                        "Quantity",
                        row,
                        "Quantity is required with UnitPrice when Amount is blank",
                    )
                elif price is None:
                    self.problem(
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
                        amount = self._too_large(table, row, qty, price)  # type: ignore[arg-type]
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
                    self._too_large(table, row, qty, price)  # type: ignore[arg-type]
                elif product != amount:
                    self.problem(
                        table,
                        "Amount",
                        row,
                        f"Amount {amount} does not match Quantity × UnitPrice = {product}",
                    )

            # ReadyToInvoice.
            ready = False
            if i_ready is not None:
                raw = cells[i_ready]
                ready = ready_words.get(raw)  # type: ignore[assignment]
                if ready is None:
                    ready = self.convert(
                        table, cells, row, "ReadyToInvoice", to_bool, "ReadyToInvoice"
                    )  # type: ignore[assignment]

            # Description, Resource: at most what a Table Storage property holds (L4); a text of
            # n characters has at most 2n UTF-16 units, so only long ones are measured.
            desc = cells[i_desc] if i_desc is not None else ""
            if type(desc) is str_type and len(desc) > half_text:
                self._long_text(table, row, "Description", desc)
            res = cells[i_res] if i_res is not None else ""
            if type(res) is str_type and len(res) > half_text:
                self._long_text(table, row, "Resource", res)

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

    # slow paths of the transaction loop

    def _transaction_line(
        self, table: _Table, cells: list[object], row: int
    ) -> tuple[_L | None, _C | None]:
        """The line a transaction names, if it can be checked against; and its contract."""
        cid = self.convert(table, cells, row, "ContractId", to_id, "ContractId")
        lid = self.convert(table, cells, row, "LineId", to_id, "LineId")
        self.required(table, row, "ContractId", cid)
        self.required(table, row, "LineId", lid)
        contract = self.contract_of(table, row, cid)
        line = self.line_of(table, row, contract, lid)
        if line is not None and line.method is _FP:
            self.problem(
                table,
                "LineId",
                row,
                f'line "{line.line_id}" of contract "{line.contract.contract_id}" is Fixed '
                "price; transactions are for Time and material lines",
            )
            line = None
        elif line is not None and (line.method is None or not line.ok):
            line = None  # the line's own row is broken (reported there): no checks against it
        return line, contract

    def _too_large(self, table: _Table, row: int, qty: Decimal, price: Decimal) -> _Bad:
        """Quantity × UnitPrice at or over the amount limit is a cell error, never an
        arithmetic exception (L5)."""
        self.problem(
            table,
            "Quantity",
            row,
            f"Quantity × UnitPrice = {qty} × {price} is too large (amounts are below 10^15)",
        )
        return _BAD

    def _long_text(self, table: _Table, row: int, column: str, text: str) -> None:
        problem = too_long(text)
        if problem is not None:
            self.problem(table, column, row, problem)

    def _transaction_class(self, table: _Table, row: int, raw: object) -> TxnClass | None:
        if raw == "":
            self.problem(table, "Class", row, "Class is required")
            return None
        cls = _CLASSES.get(to_text(raw).lower())
        if cls is None:
            self.problem(table, "Class", row, f'Class "{shown(raw)}" is not one of {CLASS_NAMES}')
        return cls

    def _quantity(self, table: _Table, cells: list[object], row: int) -> object:
        qty = self.convert(table, cells, row, "Quantity", to_number, "Quantity")
        if isinstance(qty, Decimal):
            if qty <= 0:
                self.problem(table, "Quantity", row, f"Quantity {qty} must be more than 0")
                return _BAD
            if not self.max_places(table, row, "Quantity", qty, 6):
                return _BAD
        return qty

    def _unit_price(self, table: _Table, cells: list[object], row: int) -> object:
        price = self.convert(table, cells, row, "UnitPrice", to_number, "UnitPrice")
        if isinstance(price, Decimal):
            if price < 0:
                self.problem(table, "UnitPrice", row, f"UnitPrice {price} must be 0 or more")
                return _BAD
            if not self.max_places(table, row, "UnitPrice", price, 6):
                return _BAD
        return price

    def _amount(self, table: _Table, cells: list[object], row: int, contract: _C | None) -> object:
        amount = self.convert(table, cells, row, "Amount", to_number, "Amount")
        if isinstance(amount, Decimal):
            if amount < 0:
                self.problem(table, "Amount", row, f"Amount {amount} must be 0 or more")
                return _BAD
            if not self.money_places(table, row, "Amount", amount, contract):
                return _BAD
            if contract is not None and contract.places is not None:
                return money.round_half_up(amount, contract.places)
        return amount

    # -- after all sheets --

    def _finish_lines(self) -> None:
        table = self.tables.get("ContractLines")
        if table is None:
            return
        for contract in self.contracts.values():
            for line in contract.lines.values():
                if not line.ok:
                    continue
                if line.method is _TM:
                    if line.schedule_seen and line.schedule_cell:
                        self.problem(
                            table,
                            line.schedule_cell,
                            line.row,
                            f'line "{line.line_id}" of contract "{contract.contract_id}" has '
                            "InvoiceSchedule rows and a schedule on the line; use one or the other",
                        )
                    elif not line.schedule_seen and not line.schedule_cell:
                        self.warn(
                            table,
                            "LineId",
                            line.row,
                            f'line "{line.line_id}" of contract "{contract.contract_id}" '
                            "has no invoice schedule; it will never be invoiced",
                        )
                elif line.method is _FP and not line.milestone_count:
                    self.warn(
                        table,
                        "LineId",
                        line.row,
                        f'line "{line.line_id}" of contract "{contract.contract_id}" '
                        "has no milestones; it will never be invoiced",
                    )

    def _finish_contracts(self) -> None:
        customers = self.tables.get("Customers")
        contracts_table = self.tables.get("Contracts")
        if customers is None or contracts_table is None or "Customers" not in self.usable:
            return
        for contract in self.contracts.values():
            if None not in contract.customer_groups:
                self.problem(
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
                    self.problem(
                        customers,
                        "SplitPercent",
                        group.first_row,
                        f"splits of {where} sum to {total}, not 100",
                    )

    # -- building the model --

    def _build(self, c: _C) -> Contract:
        groups = c.customer_groups
        lines = []
        for line in c.lines.values():
            schedule = None
            if line.method is _TM:
                if line.generated is not None:
                    schedule = line.generated
                elif line.schedule_rows:
                    schedule = ExplicitSchedule(
                        tuple(sorted(line.schedule_rows, key=lambda r: r.run_date))
                    )
            override = groups.get(line.line_id)
            lines.append(
                ContractLine(
                    line_id=line.line_id,
                    name=line.name,
                    billing_method=line.method,  # type: ignore[arg-type]
                    classes=line.classes if line.method is _TM else ALL_CLASSES,
                    not_to_exceed=line.nte,
                    schedule=schedule,
                    customers=tuple(override.customers) if override is not None else (),
                )
            )
        return Contract(
            contract_id=c.contract_id,
            name=c.name,
            currency=c.currency,
            customers=tuple(groups[None].customers),
            lines=tuple(lines),
            milestones=tuple(c.milestones),
            transactions=tuple(c.txns),
            payment_terms_days=c.terms,
        )


class _Bad:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<bad cell>"


_BAD = _Bad()


def _text(value: object) -> str:
    return to_stored_text(value)


def _class_list(classes: frozenset[TxnClass]) -> str:
    return ", ".join(c.value for c in TxnClass if c in classes)
