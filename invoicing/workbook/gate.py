"""The upload gate (SPEC L1-L3): every upload passes here before any parser sees it.

``check_upload`` looks at the raw bytes, then at the zip's directory, then scans the XML members
with byte-level regular expressions (no XML parser runs here). It raises ``UploadRejected`` with
one plain sentence and an HTTP status:

* **413** the upload is over ``max_bytes`` (``MAX_UPLOAD_BYTES``).
* **415** the upload is not an .xlsx at all: empty, CSV/plain text, legacy .xls or an encrypted
  (password-protected) workbook (both OLE2), .xlsm/.xlsb, .ods, any other non-zip, or a zip that
  cannot be opened (truncated, damaged) or lacks the parts every .xlsx has.
* **422** it is an .xlsx but one we refuse to parse: too many members, a member or the total over
  its uncompressed cap, a zip-bomb compression ratio, duplicate or encrypted members, macros,
  external links, ActiveX, embedded objects, data connections, custom UI, a DTD or entity in any
  XML part, a damaged member (CRC or size mismatch), UTF-16 XML, or content that would blow up
  or crash the parser (too many cells in the used range of the sheets, too many shared strings,
  too much text materialised from shared strings, a number calamine panics on).

Why the cell scan: python-calamine builds a *dense* range from the smallest to the largest cell
it sees, 32 bytes per cell. Two cells ``A1`` and ``XFD1048576`` (a 1.5 KB file) make it ask for
512 GiB and the Rust allocator aborts the whole process (SIGABRT: no exception to catch). And it
copies a shared string into every cell that uses it, so one 30,000-character string used by 20,000
cells (a 42 KB file) costs 1.2 GB. Both are bounded here, before calamine runs.

Caps, against a 100,000-row x 11-column input workbook (measured: 56 MB sheet XML with inline
strings, 4.9 MB zipped, 1.1 M cells, calamine peak RSS 108 MB) so that a legitimate workbook is
well inside and a hostile one stays under the 500 MB RSS of L3.
"""

from __future__ import annotations

import itertools
import re
import zipfile
from collections import Counter
from io import BytesIO

import openpyxl

from invoicing.errors import UploadRejected
from invoicing.workbook._cells import column_index, column_letter
from invoicing.workbook.used_range import (
    at_most,
    columns_at_most,
    fast_scan,
    greater_than,
    scan_part,
)
from invoicing.workbook.used_range import used_range_cells as _used_range_cells

if not getattr(openpyxl, "DEFUSEDXML", False):  # pragma: no cover - a broken install
    raise RuntimeError(
        "defusedxml is not installed: openpyxl would parse XML with entity expansion allowed "
        "(SPEC L2); install requirements.txt"
    )

MIB = 1024 * 1024

MAX_MEMBERS = 1_000
"""Zip members. Excel writes ~10-30 for a workbook like ours; 1,000 leaves room for many sheets."""
MAX_MEMBER_BYTES = 100 * MIB
"""Uncompressed size of one member: 1.8x the 56 MB sheet of the 100k-row workbook."""
MAX_TOTAL_BYTES = 160 * MIB
"""Uncompressed size of all members together."""
MAX_RATIO = 100
"""Uncompressed/compressed size of a member over RATIO_MIN_BYTES. Sheet XML compresses 10-30x;
deflate's own ceiling is ~1,030x, which is what a zip bomb uses."""
RATIO_MIN_BYTES = 1 * MIB
MAX_CELLS = 2_500_000
"""Cells in the used range (bounding box of the cell references) of all sheets together: 2.3x the
1.1 M cells of the 100k-row workbook. calamine allocates 32 bytes per cell of the range."""
MAX_SHARED_STRINGS = 1_000_000
"""Entries in a shared-strings table (a 5 M-entry table costs ~300 MB in calamine alone)."""
MAX_SHARED_TEXT_BYTES = 64 * MIB
"""Text calamine materialises from shared strings: the sum over the cells of the length of the
string each cell uses (every cell gets its own copy)."""
MIN_NUMBER = -1e10
"""Cell values at or below this are refused (calamine panics below about -1.07e11 in date cells)."""
MAX_XML_PROBE_BYTES = 1 * MIB
"""[Content_Types].xml and relationship parts are small; larger ones are refused."""

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Parts we refuse (lower-case path prefixes or names): macros, external links, ActiveX,
# embedded objects (OLE packages), data connections, custom ribbon UI.
_FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("vbaproject", "macros"),
    ("xl/macrosheets/", "Excel 4.0 macro sheets"),
    ("xl/externallinks/", "external links to other workbooks"),
    ("xl/activex/", "ActiveX controls"),
    ("xl/embeddings/", "embedded objects"),
    ("xl/connections.xml", "external data connections"),
    ("customui/", "custom ribbon UI"),
    ("xl/customui/", "custom ribbon UI"),
)

_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_SI_TAG = re.compile(rb"<(?:[\w.-]+:)?si[\s/>]")
_SHARED_TYPE = re.compile(rb"""\st\s*=\s*["']s["']""")
_ODD_TYPE = re.compile(rb"\st(?:\s+=|=\s)")
_SHARED_CELL_PLAIN = re.compile(rb'<c r="[A-Za-z]+[0-9]+"(?: s="[0-9]+")? t="s"><v>([0-9]+)</v>')
_SHARED_CELL = re.compile(
    rb"""<(?:[\w.-]+:)?c\s[^>]*?\bt\s*=\s*["']s["'][^>]*>\s*<(?:[\w.-]+:)?v>\s*([0-9]+)"""
)
_NEGATIVE_VALUE = re.compile(rb"<(?:[\w.-]+:)?v>(-[^<]{0,400})<")
_TEXT_SNIFF = 4096


def reject(message: str, status: int = 422) -> UploadRejected:
    return UploadRejected(message, status=status)


ErrorCells = dict[str, list[tuple[str, str]]]
"""Zip member name -> (cell reference, text) of each Excel error cell (text: the error, such as
``#N/A``) and each formula cell (text: ``FORMULA``, or ``NO_SAVED_VALUE`` when the file holds
no value for it: it was never recalculated)."""
FORMULA = "="
NO_SAVED_VALUE = "=?"


def check_upload(data: bytes, *, max_bytes: int, max_cells: int = MAX_CELLS) -> ErrorCells:
    """Raise ``UploadRejected`` unless ``data`` is an .xlsx we may hand to a parser (L1, L2).

    Returns the Excel error cells (``#N/A``, ``#REF!`` …) it saw: the parser reads them as empty
    strings, so only the gate, which reads the XML anyway, can tell the reader where they are.
    """
    if len(data) > max_bytes:
        raise reject(
            f"the upload is {len(data):,} bytes; the limit is {max_bytes:,} bytes", status=413
        )
    _check_kind(data)
    try:
        archive = zipfile.ZipFile(BytesIO(data))
        infos = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        ValueError,
        EOFError,
        NotImplementedError,
        KeyError,
        IndexError,
        OverflowError,
        UnicodeDecodeError,
    ):
        raise reject(
            "the upload is not a readable .xlsx workbook: the zip is truncated or damaged",
            status=415,
        ) from None
    with archive:
        _check_structure(infos)
        _check_content_types(archive)
        _check_parts(infos)
        return _check_members(archive, infos, max_cells)


# ---- raw bytes ---------------------------------------------------------------------------------


def _check_kind(data: bytes) -> None:
    if not data:
        raise reject("the upload is empty; send an .xlsx workbook", status=415)
    if data.startswith(OLE2_MAGIC):
        raise reject(
            "the upload is a legacy .xls or password-protected workbook; "
            "save it as an unprotected .xlsx",
            status=415,
        )
    if data.startswith(ZIP_MAGIC):
        return
    if data.startswith(b"PK\x05\x06"):
        raise reject("the upload is an empty zip archive, not an .xlsx workbook", status=415)
    if data.startswith(b"%PDF"):
        raise reject("the upload is a PDF, not an .xlsx workbook", status=415)
    if _looks_like_text(data[:_TEXT_SNIFF]):
        head = data[:_TEXT_SNIFF].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if head.startswith((b"<!doctype html", b"<html")):
            raise reject("the upload is an HTML page, not an .xlsx workbook", status=415)
        if head.startswith(b"<?xml"):
            raise reject(
                "the upload is an XML file (perhaps an Excel 2003 XML spreadsheet); "
                "save it as .xlsx",
                status=415,
            )
        raise reject(
            "the upload is CSV or plain text, not an .xlsx workbook; "
            "open it in Excel and save it as .xlsx",
            status=415,
        )
    raise reject("the upload is not an .xlsx workbook (it is not a zip file)", status=415)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return head.startswith((b"\xff\xfe", b"\xfe\xff"))  # UTF-16 text
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the end
            try:
                head.decode("cp1252")
            except UnicodeDecodeError:
                return False
    printable = sum(1 for b in head if b >= 32 or b in b"\t\r\n")
    return printable >= 0.95 * len(head)


# ---- zip directory ------------------------------------------------------------------------------


def _check_structure(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise reject(f"the workbook has {len(infos):,} parts; the limit is {MAX_MEMBERS:,}")
    names = {info.filename for info in infos}
    lower = {name.lower() for name in names}
    if "[content_types].xml" not in lower or "xl/workbook.xml" not in lower:
        if "mimetype" in lower and any(n.lower() == "content.xml" for n in names):
            raise reject(
                "the upload is an OpenDocument spreadsheet (.ods); save it as .xlsx", status=415
            )
        if "xl/workbook.bin" in lower:
            raise reject("the upload is a binary workbook (.xlsb); save it as .xlsx", status=415)
        missing = "[Content_Types].xml" if "[content_types].xml" not in lower else "xl/workbook.xml"
        raise reject(f"not an xlsx: the zip has no {missing}", status=415)
    if len(names) != len(infos) or len(lower) != len(names):
        raise reject(
            "the workbook has two parts with the same name; it may have been tampered with"
        )


def _check_parts(infos: list[zipfile.ZipInfo]) -> None:
    total = 0
    for info in infos:
        name = info.filename
        low = name.lower()
        for marker, what in _FORBIDDEN:
            if low.startswith(marker) or f"/{marker}" in f"/{low}":
                raise reject(
                    f"the workbook contains {what} ({name}); remove them and save it again"
                )
        if low.endswith(".bin") and "vba" in low:
            raise reject(f"the workbook contains macros ({name}); save it as a plain .xlsx")
        if info.flag_bits & 0x1:
            raise reject(f"the workbook part {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise reject(
                f"the workbook part {name} uses an unsupported compression method "
                f"({info.compress_type})"
            )
        if info.file_size > MAX_MEMBER_BYTES:
            raise reject(
                f"the workbook part {name} unpacks to {info.file_size:,} bytes; "
                f"the limit is {MAX_MEMBER_BYTES:,}"
            )
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(
            info.compress_size, 1
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            raise reject(
                f"the workbook part {name} is compressed {ratio:,} to 1 "
                f"(limit {MAX_RATIO} to 1): a zip bomb"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise reject(f"the workbook unpacks to {total:,} bytes; the limit is {MAX_TOTAL_BYTES:,}")


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes; zipfile never returns more than the declared size (CRC checked)."""
    try:
        with archive.open(info) as stream:
            return stream.read(info.file_size + 1)
    except Exception:  # BadZipFile (CRC, bad header), zlib.error, EOFError, ...
        raise reject(
            f"the workbook part {info.filename} is damaged (it does not unpack to its declared "
            "size and checksum)"
        ) from None


def _check_content_types(archive: zipfile.ZipFile) -> None:
    info = next(i for i in archive.infolist() if i.filename.lower() == "[content_types].xml")
    if info.file_size > MAX_XML_PROBE_BYTES:
        raise reject("the workbook's [Content_Types].xml is implausibly large")
    text = _read(archive, info).lower()
    if b"macroenabled" in text or b"vbaproject" in text:
        raise reject(
            "the upload is a macro-enabled workbook (.xlsm); save it as a plain .xlsx", status=415
        )
    if b"sheet.binary" in text:
        raise reject("the upload is a binary workbook (.xlsb); save it as .xlsx", status=415)


# ---- members ------------------------------------------------------------------------------------


def _check_members(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], max_cells: int
) -> ErrorCells:
    """Scan every member: no DTD, bounded used range per sheet, bounded shared strings."""
    errors: ErrorCells = {}
    cells = 0
    sheets: list[bytes] = []  # parts with cells, for the shared-text check (<= MAX_TOTAL_BYTES)
    string_lengths: list[int] | None = None
    for info in infos:
        if info.filename.endswith("/"):
            continue
        data = _read(archive, info)
        if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (
            data[:2].count(b"\x00") and info.filename.lower().endswith((".xml", ".rels"))
        ):
            raise reject(f"the workbook part {info.filename} is UTF-16 XML, which is not accepted")
        if _has_dtd(data):
            raise reject(
                f"the workbook part {info.filename} declares a DTD or entities, which are not "
                "allowed in a workbook (entity-expansion attack)"
            )
        if _has_prefixed_tag(data):
            has_si = b"<si" in data or b":si" in data
            has_cells = b"<c" in data or b":c" in data
            here = None
            negative = True  # _check_numbers decides
            formulas = True  # _formula_cells decides
        elif b"<c" in data:
            has_cells = True
            here, has_si, negative, formulas = scan_part(data)
        else:
            has_cells, here, negative, formulas = False, None, False, False
            has_si = b"<si" in data
        if has_si:
            lengths = _shared_string_lengths(info.filename, data)
            if lengths and (string_lengths is None or len(lengths) > len(string_lengths)):
                string_lengths = lengths
        if has_cells:
            if here is None:  # not provably plain and in bounds in one pass: the thorough way
                here = _used_range_cells(info.filename, data, max_cells - cells)
            if here > max_cells - cells:
                raise reject(
                    f"the sheet {info.filename} is too big: with the other sheets its used range "
                    f"(from A1 to its last cell) spans more than {max_cells:,} cells"
                )
            cells += here
            sheets.append(data)
            if negative:
                _check_numbers(info.filename, data)
            if b't="e"' in data or b"t='e'" in data:  # one memchr-speed pass; rarely true
                errors[info.filename] = _error_cells(data)
            if formulas:  # W12: formula cells, noted by the scan's one pass
                errors.setdefault(info.filename, []).extend(_formula_cells(data))
        del data
    if string_lengths and sheets:
        _check_shared_text(string_lengths, sheets)
    return errors


_CELL_WITH_ATTRIBUTES = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c\b([^>]*)>")
_ERROR_TYPE = re.compile(rb"""\bt\s*=\s*["']e["']""")
_REFERENCE = re.compile(rb"""\br\s*=\s*["']([A-Z]{1,3}[0-9]{1,7})["']""")
_VALUE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?v>([^<]{0,40})<")


def _error_cells(data: bytes) -> list[tuple[str, str]]:
    """(reference, error text) of every cell typed ``t="e"`` that carries its reference."""
    found = []
    for tag in _CELL_WITH_ATTRIBUTES.finditer(data):
        attributes = tag.group(1)
        if not _ERROR_TYPE.search(attributes):
            continue
        reference = _REFERENCE.search(attributes)
        if reference is None:
            continue
        value = _VALUE.search(data, tag.end(), tag.end() + 2000)
        text = value.group(1).decode("utf-8", "replace") if value else "an error"
        found.append((reference.group(1).decode("ascii"), text))
    return found


def _formula_cells(data: bytes) -> list[tuple[str, str]]:
    """(reference, FORMULA or NO_SAVED_VALUE) of every cell holding a formula (``<f``)."""
    found = []
    position = data.find(b"<f")
    while position >= 0:
        start = data.rfind(b"<c ", 0, position)
        end = data.find(b"</c>", position)
        if start < 0 or end < 0:
            break
        head_end = data.find(b">", start, position)
        reference = _REFERENCE.search(data, start, head_end + 1) if head_end >= 0 else None
        if reference is not None:
            value = _VALUE.search(data, position, end + 4)
            saved = value is not None and value.group(1) != b""
            found.append((reference.group(1).decode("ascii"), FORMULA if saved else NO_SAVED_VALUE))
        position = data.find(b"<f", end)
    return found


# ---- rare-byte probes ---------------------------------------------------------------------------
# The DTD and prefixed-tag checks walk the few ``!`` and ``:`` of a plain part with memchr-speed
# bytes.find before any regex pass (the used-range scan's fast path is in ``used_range``).

_RARE_LIMIT = 256
"""Occurrences of a rare byte (``!``, ``:``) checked one by one before a regex pass takes over."""
_PREFIXED_TAG = re.compile(rb":(?:c|row|si|v)[\s/>]")


def _rare_positions(data: bytes, byte: bytes) -> list[int] | None:
    """Offsets of ``byte`` (found with memchr) or None when there are more than _RARE_LIMIT."""
    found: list[int] = []
    position = data.find(byte)
    while position >= 0:
        if len(found) == _RARE_LIMIT:
            return None
        found.append(position)
        position = data.find(byte, position + 1)
    return found


def _has_dtd(data: bytes) -> bool:
    bangs = _rare_positions(data, b"!")
    if bangs is None:
        return b"<!" in data and _DTD.search(data) is not None
    return any(_DTD.match(data, p - 1) for p in bangs if p > 0)


def _has_prefixed_tag(data: bytes) -> bool:
    """Any namespace-prefixed cell, row, value or shared-string tag (``<x:c ...>``)?"""
    colons = _rare_positions(data, b":")
    if colons is None:  # Excel writes x14ac:dyDescent and spans="1:11" on every row
        return _PREFIXED_TAG.search(data) is not None
    return any(_PREFIXED_TAG.match(data, p) for p in colons)


def _check_numbers(name: str, data: bytes) -> None:
    """calamine panics (a Rust panic: ``PanicException``, a BaseException that ``except
    Exception`` does not catch) on a date-formatted cell below about -1.07e11 days; no date or
    amount of an invoicing workbook is anywhere near that."""
    if b"<v>-" not in data and b":v>-" not in data:
        return
    for match in _NEGATIVE_VALUE.finditer(data):
        try:
            value = float(match.group(1))
        except ValueError:
            continue
        if not value > MIN_NUMBER:  # NaN is harmless but -inf and -1e400 are not
            if value != value:
                continue
            text = match.group(1)[:40].decode("ascii", "replace")
            raise reject(
                f"the sheet {name} has the number {text}, beyond any date or amount a workbook "
                "can hold"
            )


def _shared_string_lengths(name: str, data: bytes) -> list[int]:
    """Byte length of each ``<si>`` entry (markup included: an overestimate of its text)."""
    if b":si" in data:  # namespace-prefixed entries: the general, slower way
        starts = [m.start() for m in _SI_TAG.finditer(data)]
        starts.append(len(data))
        lengths = [b - a for a, b in itertools.pairwise(starts)]
    else:
        lengths = [len(part) for part in data.split(b"<si")[1:]]
    if len(lengths) > MAX_SHARED_STRINGS:
        raise reject(
            f"the workbook part {name} has {len(lengths):,} shared strings; "
            f"the limit is {MAX_SHARED_STRINGS:,}"
        )
    return lengths


def _check_shared_text(lengths: list[int], sheets: list[bytes]) -> None:
    """Bound the text calamine copies out of the shared strings (one copy per cell using one)."""
    longest = max(lengths)
    # fast path, the common case: every cell tag counted as a shared-string cell, short strings
    cells = sum(sheet.count(b"<c") if b":c" not in sheet else len(sheet) for sheet in sheets)
    if cells * longest <= MAX_SHARED_TEXT_BYTES:
        return
    total = 0
    for sheet in sheets:
        if _ODD_TYPE.search(sheet):
            used = len(_SHARED_TYPE.findall(sheet))
        else:
            used = sheet.count(b't="s"') + sheet.count(b"t='s'")
        found = _SHARED_CELL_PLAIN.findall(sheet) or _SHARED_CELL.findall(sheet)
        for index, count in Counter(found).items():
            i = int(index)
            total += count * (lengths[i] if i < len(lengths) else 0)
        total += max(used - len(found), 0) * longest  # cells whose index we could not read
    if total > MAX_SHARED_TEXT_BYTES:
        raise reject(
            f"the workbook's cells would expand to {total:,} bytes of shared text; "
            f"the limit is {MAX_SHARED_TEXT_BYTES:,} (a shared-string bomb)"
        )


# The used-range scan's building blocks under the names the gate's property tests use.
_at_most = at_most
_greater_than = greater_than
_columns_at_most = columns_at_most
_fast_scan = fast_scan


def _column_letters(number: int) -> str:
    """1-based column number -> letters (the shared helper is 0-based)."""
    return column_letter(number - 1)


def _column_number(letters: bytes) -> int:
    """Letters -> 1-based column number (the shared helper is 0-based)."""
    return column_index(letters) + 1
