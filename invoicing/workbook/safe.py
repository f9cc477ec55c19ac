"""Output safety (L4): every text that came from data reaches an output cell through here.

openpyxl types a ``str`` by its content, in normal and write-only mode alike: ``"=1+1"`` becomes a
formula and ``"#N/A"`` an error value. The only way to write such a string as text is to assign it
and *then* force ``data_type = "s"`` (assignment re-infers the type). On top of that:

- ``quotePrefix`` is set on text starting with ``= + - @``, tab, CR or LF, so Excel keeps it text
  even when a user edits the cell (F2, Enter) and a CSV export re-opened elsewhere stays inert;
- characters XML 1.0 cannot carry (C0 controls other than tab/LF/CR, lone surrogates, U+FFFE/FFFF)
  are removed: openpyxl would raise on them, and they are never meaningful in an invoice;
- CR is normalised to LF (CRLF and lone CR alike): XML end-of-line handling turns a raw CR into LF
  on every reader anyway, so writing LF makes what we write equal to what anyone reads back;
- a literal ``_xHHHH_`` in the text is escaped as ``_x005F_xHHHH_``: Excel decodes ``_xHHHH_`` in
  cell strings, so without this an id such as ``A_x0041_`` would display as ``AA``;
- text is capped at Excel's 32,767 characters per cell (openpyxl truncates silently; so do we, but
  before the checks, so nothing dangerous is cut in half).

``text_cell`` always returns a typed cell; ``text_value`` is the writer's fast path: it returns the
plain ``str`` when openpyxl would type it as text anyway and nothing needs escaping (by far the
common case: one regex search, no cell object), and a ``text_cell`` otherwise.
"""

from __future__ import annotations

import re

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, Cell

MAX_CELL_CHARS = 32_767

# Leading characters that make a spreadsheet treat text as a formula (OWASP CSV injection list),
# plus LF, which Excel strips before evaluating just like CR.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")

# Characters XML 1.0 cannot hold: C0 controls except tab, LF, CR; surrogates; U+FFFE, U+FFFF.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_EXCEL_ESCAPE = re.compile("_(?=x[0-9A-Fa-f]{4}_)")
# One search decides the fast path: anything needing cleaning, or a leading trigger character.
_NEEDS_WORK = re.compile(
    "[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]|_x[0-9A-Fa-f]{4}_|^[=+\\-@\t\n]"
)
_ERROR_CODES = frozenset(ERROR_CODES)


def clean_text(value: str) -> str:
    """The text as it will be stored: illegal characters removed, CR → LF, ``_xHHHH_`` escaped."""
    text = str(value)[:MAX_CELL_CHARS]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ILLEGAL_XML.sub("", text)
    if "_x" in text:
        text = _EXCEL_ESCAPE.sub("_x005F_", text)
    return text


def text_cell(ws, value: str) -> Cell:
    """A write-only cell holding ``value`` as text, whatever the text looks like."""
    text = clean_text(value)
    cell = WriteOnlyCell(ws)
    cell.value = text
    cell.data_type = "s"  # after the value: assigning the value re-infers the type
    if text.startswith(FORMULA_TRIGGERS):
        cell.quotePrefix = True
    return cell


def text_value(ws, value: str | None) -> str | Cell | None:
    """``value`` ready to append: ``None`` for blank, the plain ``str`` when that is already safe,
    else a ``text_cell``. Equivalent to ``text_cell`` in what ends up in the file."""
    if value is None or value == "":
        return None
    if (
        _NEEDS_WORK.search(value) is None
        and value not in _ERROR_CODES
        and len(value) <= MAX_CELL_CHARS
    ):
        return value
    cell = text_cell(ws, value)
    return cell if cell.value else None
