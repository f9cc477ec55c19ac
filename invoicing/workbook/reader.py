"""The input workbook reader (§W): one .xlsx in, a validated ``Portfolio`` out, or every problem.

``read_workbook`` passes the upload through the gate (L1-L3), loads the sheets (``loading``),
runs each sheet's rules in order (``contracts``, ``items``, ``transactions``: each later sheet is
checked against the drafts of the earlier ones), then the checks that need every sheet, and
either raises ``InputRejected`` with every problem found (W10) or builds the portfolio
(``drafts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from pathlib import Path

from invoicing.errors import InputRejected, Problem
from invoicing.gcpause import cyclic_gc_paused
from invoicing.model import Portfolio
from invoicing.settings import Settings
from invoicing.workbook.addresses import read_seller
from invoicing.workbook.contracts import (
    check_lines,
    check_splits,
    read_contracts,
    read_customers,
    read_lines,
)
from invoicing.workbook.drafts import Locations, Reading, build_contract
from invoicing.workbook.formats import percent_cells
from invoicing.workbook.gate import check_upload
from invoicing.workbook.items import read_milestones, read_schedule_rows
from invoicing.workbook.loading import (
    CELL_PROBLEMS,
    PERCENT_SHEETS,
    error_cells_by_sheet,
    open_book,
)
from invoicing.workbook.transactions import read_transactions

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

# The rules, in the order they run: a sheet is checked against the sheets before it.
RULES = (
    read_contracts,
    read_lines,
    read_customers,
    read_schedule_rows,
    read_milestones,
    read_transactions,
    check_lines,
    check_splits,
    read_seller,
)


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
    data = bytes(source) if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    error_cells = check_upload(data, max_bytes=settings.max_upload_bytes)
    book = open_book(data)
    if error_cells:
        error_cells = error_cells_by_sheet(data, error_cells)
    with cyclic_gc_paused(), localcontext(_DECIMAL_CONTEXT):
        reading = Reading(book, settings, error_cells)
        reading.load()
        reading.percent_refs = percent_cells(
            data, {t.name for c, t in reading.tables.items() if c in PERCENT_SHEETS}
        )
        errors = reading.excel_errors()
        for rule in RULES:
            rule(reading)
        _reject_if_any(reading, errors)
        contracts = list(reading.contracts.values())
        warnings = tuple(reading.warnings)
        portfolio = Portfolio(tuple(build_contract(c) for c in contracts), warnings, reading.seller)
        return WorkbookRead(portfolio, warnings, Locations(contracts, reading.tables))


def _reject_if_any(reading: Reading, errors: set[tuple[str, str]]) -> None:
    """Raise ``InputRejected`` with the problems found, in sheet, row and column order."""
    found = reading.found
    items = [*found, *found.summaries()]
    if errors:
        # The parser reads an error cell as blank: what else was said of that cell is noise.
        items = [
            f
            for f in items
            if (f[3].sheet, f[3].cell) not in errors or f[3].message.startswith(CELL_PROBLEMS)
        ]
    if not items:
        return
    items.sort(key=lambda item: item[:3])
    listed = [p for *_, p in items]
    if found.dropped:
        listed.append(Problem("", "", f"... and {found.dropped:,} more problems not listed"))
    rejected = InputRejected(listed)
    rejected.total = len(found) + found.dropped + found.summarised()
    rejected.warnings = tuple(reading.warnings)
    raise rejected
