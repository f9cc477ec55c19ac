"""Finance workbooks are messy (W12): the reader meets them half-way, without guessing money.

Helpers of ``loading``: the input sheet a misnamed sheet probably is, where a header that is not
in row 1 is, and which trailing rows are a totals row rather than data.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from invoicing.workbook._cells import to_text

HEADER_SEARCH_ROWS = 20  # a header below a title block is looked for this far down
TOTALS_LABELS = frozenset({"total", "totals", "sum", "subtotal", "grandtotal"})
MAX_TOTALS_ROWS = 3


def near_sheet(key: str, known: Mapping[str, str]) -> str | None:
    """The input sheet a sheet whose name key (``name_key``) is ``key`` probably is, or None:
    a known name with something added (``Transactions 2020``), a letter or two missing
    (``Transaction``) or a close misspelling (``Tansactions``)."""
    if len(key) < 4:
        return None
    for known_key, sheet in known.items():
        if key.startswith(known_key) or (
            known_key.startswith(key) and len(known_key) - len(key) <= 2
        ):
            return sheet
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
    return known[close[0]] if close else None


def header_row(
    rows: Sequence[Sequence[object]], first_row: int, required: set[str], key
) -> int | None:
    """The Excel row (``first_row`` is that of ``rows[0]``) of the first row among the first
    ``HEADER_SEARCH_ROWS`` that names every required column, or None."""
    for i, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
        names = {key(to_text(c)) for c in cells if c != ""}
        if required <= names:
            return first_row + i
    return None


def is_totals_row(cells: Sequence[object], formulas: set[int]) -> bool:
    """A row whose cells are formulas (``formulas``: their positions), apart from a "Total"
    label: an Excel table's totals row (SUBTOTAL(109, …)) or a =SUM row under the data."""
    if not formulas:
        return False
    for pos, value in enumerate(cells):
        if value == "" or value is None or pos in formulas:
            continue
        if isinstance(value, str) and "".join(value.split()).lower() in TOTALS_LABELS:
            continue
        return False
    return True
