"""The upload gate's bound on the cells of a sheet's used range (SPEC L3), from the raw XML.

python-calamine builds a *dense* range from the smallest to the largest cell it sees, 32 bytes per
cell: ``used_range_cells`` bounds that range with byte-level regular expressions (no XML parser
runs here), and ``fast_scan`` proves a plain sheet, as every writer makes it, in one pass.

Measured on the 100k-row benchmark sheet (52 MB of XML): the thorough scan takes ~10 regex and
substring passes over the part (~0.5 s); the fast path one regex pass plus a few memchr-speed
walks. Anything the fast path cannot prove sends the part down the thorough path, unchanged.
"""

from __future__ import annotations

import re

from invoicing.errors import UploadRejected
from invoicing.workbook._cells import column_index, column_letter

# Attribute r (cell or row reference): r="A1", r = 'A1' ...
_ATTR_R = rb"""\sr\s*=\s*["']"""
_COLUMN_REF = re.compile(_ATTR_R + rb"([A-Za-z]+)[0-9]")
_ROW_ATTR = re.compile(rb"<(?:[\w.-]+:)?row(?=[\s/>])[^>]*?" + _ATTR_R + rb"([0-9]+)")
_R_WITH_ENTITY = re.compile(_ATTR_R + rb"""[^"'>]*&""")
_CELL_WITHOUT_R = re.compile(rb"<(?:[\w.-]+:)?c(?=[\s/>])(?![^>]*" + _ATTR_R + rb")")
_ROW_WITHOUT_R = re.compile(rb"<(?:[\w.-]+:)?row(?=[\s/>])(?![^>]*" + _ATTR_R + rb")")
_CELL_TAG = re.compile(rb"<(?:[\w.-]+:)?c[\s/>]")
_ROW_SPLIT = re.compile(rb"<(?:[\w.-]+:)?row(?=[\s/>])")
_PLAIN_COLUMN = re.compile(rb'<c r="([A-Za-z]+)')
_PLAIN_ROW = re.compile(rb'<row r="([0-9]+)')
# A cell or row tag that does not start with a plain reference, or a namespace-prefixed one.
_ODD_CELL = re.compile(rb'<c(?:[\t\r\n/>]| (?!r="[A-Za-z]{1,3}[0-9]{1,7}"))')
_ODD_ROW = re.compile(rb'<row(?:[\t\r\n/>]| (?!r="[0-9]{1,7}"))')
_PREFIXED = re.compile(rb":(?:c|row)[\s/>]")
_SAMPLE_BYTES = 200_000
"""Head and tail of a part sampled for its likely width and height, then proven in one pass."""


def at_most(limit: int) -> bytes:
    """A regex alternation matching a canonical decimal number (no sign, no leading zero) from
    1 to ``limit`` (>= 1)."""
    digits = str(limit)
    n = len(digits)
    alternatives = [rb"[1-9][0-9]{0,%d}" % (n - 2)] if n > 1 else []
    for i, d in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(d) > low:
            rest = n - i - 1
            tail = b"[0-9]{%d}" % rest if rest else b""
            alternatives.append(digits[:i].encode() + b"[%d-%d]" % (low, int(d) - 1) + tail)
    alternatives.append(digits.encode())
    return b"(?:" + b"|".join(alternatives) + b")"


def columns_at_most(width: int) -> bytes:
    """A regex alternation matching upper-case column letters from A to column ``width``."""
    letters = column_letter(width - 1)
    m = len(letters)
    alternatives = [b"[A-Z]{1,%d}" % (m - 1)] if m > 1 else []
    for i, ch in enumerate(letters):
        if ch > "A":
            rest = m - i - 1
            tail = b"[A-Z]{%d}" % rest if rest else b""
            alternatives.append(letters[:i].encode() + b"[A-%s]" % chr(ord(ch) - 1).encode() + tail)
    alternatives.append(letters.encode())
    return b"(?:" + b"|".join(alternatives) + b")"


def fast_scan(data: bytes) -> tuple[int | None, bool, bool]:
    """``scan_part`` without its formula flag."""
    return scan_part(data)[:3]  # type: ignore[return-value]


def scan_part(data: bytes) -> tuple[int | None, bool, bool, bool]:
    """(used-range cells or None, has ``<si``, has a negative ``<v>``) of an unprefixed part.

    The width and height are read from the part's head and tail, then one pass proves that every
    ``<c>`` starts with a plain upper-case reference inside them and every ``<row>`` with a plain
    number up to the height (then the bound is exact), while noting shared-string entries and
    negative values. None when that proof fails: the caller takes the thorough path.
    """
    head, tail = data[:_SAMPLE_BYTES], data[-_SAMPLE_BYTES:]
    columns = set(_PLAIN_COLUMN.findall(head)) | set(_PLAIN_COLUMN.findall(tail))
    rows = _PLAIN_ROW.findall(tail)
    width = max(((column_index(c) + 1) for c in columns if c.isupper()), default=0)
    height = int(rows[-1]) if rows and rows[-1][:1] != b"0" else 0
    bounded: bytes | None = None  # the branches proving cells and rows plain and in bounds
    if 0 < width <= 16_384 and 0 < height <= 9_999_999:
        number = at_most(height)
        bounded = (
            rb'c(?:[\t\r\n/>]| (?!r="' + columns_at_most(width) + number + rb'"))'
            rb'|row(?:[\t\r\n/>]| (?!r="' + number + rb'"))'
        )
    plain, has_si, negative = bounded is not None, False, False
    formulas = False
    position = 0
    while True:
        branches = [bounded] if plain else []
        if not negative:
            branches.append(rb"v>-")
        if not has_si:
            branches.append(rb"si[\t\r\n />]")
        if not formulas:
            branches.append(rb"f[\t\r\n />]")
        if not branches:
            break
        # one pass; each finding narrows the pattern and the scan goes on from there
        match = re.compile(b"<(?:" + b"|".join(branches) + b")").search(data, position)
        if match is None:
            break
        kind = match.group()[1:2]
        if kind == b"v":
            negative = True
        elif kind == b"f":
            formulas = True
        elif kind == b"s":
            has_si = True
        else:
            plain = False
        position = match.end()
    return (width * height if plain else None), has_si, negative, formulas


def greater_than(limit: int) -> bytes:
    """A regex alternation matching a decimal number (no sign) greater than ``limit``."""
    digits = str(limit)
    n = len(digits)
    alternatives = [rb"[1-9][0-9]{%d,}" % n]
    for i, d in enumerate(digits):
        if d != "9":
            rest = n - i - 1
            tail = b"[0-9]{%d}" % rest if rest else b""
            alternatives.append(digits[:i].encode() + b"[%d-9]" % (int(d) + 1) + tail)
    return b"0*(?:" + b"|".join(alternatives) + b")(?![0-9])"


def used_range_cells(name: str, data: bytes, budget: int) -> int:
    """An upper bound on the cells calamine's dense range would hold for this part (rows from 1,
    columns from A); ``budget + 1`` as soon as it is known to exceed ``budget``."""
    if plain_references(data):
        # every writer puts r first: <c r="B7" ...>, <row r="7" ...>; byte searches suffice
        columns = set(_PLAIN_COLUMN.findall(data))
        width = max(((column_index(c) + 1) for c in columns), default=0)
        if width == 0:
            return 0
        last = _PLAIN_ROW.findall(data[-200_000:]) or _PLAIN_ROW.findall(data)
        height = int(last[-1]) if last else 0
        if width * height <= budget and not plain_beyond(data, height):
            return width * max(height, 1)
        max_height = budget // width
        if max_height < 1 or plain_beyond(data, max_height):
            return budget + 1
        return budget
    if _R_WITH_ENTITY.search(data):
        raise UploadRejected(f"the workbook part {name} has an escaped cell reference", status=422)
    columns = {letters for letters in _COLUMN_REF.findall(data)}
    width = max(((column_index(c) + 1) for c in columns), default=0)
    if _CELL_WITHOUT_R.search(data):
        # calamine puts a cell without a reference right after the previous one in its row
        width += max(len(_CELL_TAG.findall(row)) for row in _ROW_SPLIT.split(data))
    if width == 0:
        return 0
    rows_without_r = len(_ROW_WITHOUT_R.findall(data))
    last = _ROW_ATTR.findall(data[-200_000:]) or _ROW_ATTR.findall(data)
    height = (int(last[-1]) if last else 0) + rows_without_r
    if width * height <= budget and not beyond(data, height - rows_without_r):
        return width * max(height, 1)  # rows in order, as every writer does: the exact bound
    max_height = budget // width - rows_without_r
    if max_height < 1 or beyond(data, max_height):
        return budget + 1
    return budget  # out-of-order rows: count the whole budget, conservatively


def plain_references(data: bytes) -> bool:
    """Does every ``<c>`` and ``<row>`` tag start with a plain ``r="..."`` reference?"""
    return not (_ODD_CELL.search(data) or _ODD_ROW.search(data) or _PREFIXED.search(data))


def plain_beyond(data: bytes, row: int) -> bool:
    above = greater_than(max(row, 0))
    return (
        re.search(rb'<c r="[A-Za-z]{0,3}' + above, data) is not None
        or re.search(rb'<row r="' + above, data) is not None
    )


def beyond(data: bytes, row: int) -> bool:
    """Does any row or cell reference point below ``row``?"""
    return re.search(_ATTR_R + rb"[A-Za-z]{0,3}" + greater_than(max(row, 0)), data) is not None
