"""Which cells of the small input sheets are formatted as a percentage (W12).

calamine gives values, not formats: a SplitPercent typed as ``60 %`` reaches the reader as 0.6.
This reads ``xl/styles.xml`` (the cell formats) and, only when some format is a percentage, the
XML of the few small sheets whose columns are percentages (Contracts, Customers, ContractLines),
to find the cells that use one. The transactions sheet is never scanned here (P1).
"""

from __future__ import annotations

import io
import re
import zipfile

from defusedxml import ElementTree as DefusedET

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PERCENT_FORMAT_IDS = frozenset({9, 10})  # Excel's built-in 0% and 0.00%
_CELL = re.compile(rb"<c\b([^>]*)>")
_REFERENCE = re.compile(rb"""\br\s*=\s*["']([A-Z]{1,3}[0-9]{1,7})["']""")
_STYLE = re.compile(rb"""\bs\s*=\s*["']([0-9]{1,6})["']""")
_QUOTED = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')


def sheet_members(archive: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its zip member (workbook.xml and its rels, parsed with defusedxml)."""
    book = DefusedET.fromstring(archive.read("xl/workbook.xml"))
    rels = DefusedET.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {}
    for rel in rels:
        target = rel.get("Target", "").lstrip("/")
        targets[rel.get("Id")] = target if target.startswith("xl/") else f"xl/{target}"
    members = {}
    for sheet in book.iter(f"{_MAIN}sheet"):
        member = targets.get(sheet.get(f"{_REL}id"))
        if member is not None:
            members[sheet.get("name", "")] = member
    return members


def _percent_styles(styles: bytes) -> set[int]:
    """Indexes of the cell formats (``cellXfs``) whose number format is a percentage."""
    root = DefusedET.fromstring(styles)
    percent_ids = set(PERCENT_FORMAT_IDS)
    for fmt in root.iter(f"{_MAIN}numFmt"):
        code = _QUOTED.sub("", fmt.get("formatCode", ""))
        if "%" in code:
            percent_ids.add(int(fmt.get("numFmtId", "-1")))
    found: set[int] = set()
    xfs = root.find(f"{_MAIN}cellXfs")
    for index, xf in enumerate(xfs if xfs is not None else ()):
        if int(xf.get("numFmtId", "0")) in percent_ids:
            found.add(index)
    return found


def percent_cells(data: bytes, sheets: set[str]) -> dict[str, set[str]]:
    """Sheet name (of ``sheets``) -> references of its cells formatted as a percentage.
    Anything unreadable gives nothing: the values are then read as they are."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "xl/styles.xml" not in names:
                return {}
            styles = _percent_styles(archive.read("xl/styles.xml"))
            if not styles:
                return {}
            found: dict[str, set[str]] = {}
            for name, member in sheet_members(archive).items():
                if name not in sheets or member not in names:
                    continue
                refs = set()
                for cell in _CELL.finditer(archive.read(member)):
                    style = _STYLE.search(cell.group(1))
                    if style is not None and int(style.group(1)) in styles:
                        reference = _REFERENCE.search(cell.group(1))
                        if reference is not None:
                            refs.add(reference.group(1).decode("ascii"))
                if refs:
                    found[name] = refs
            return found
    except Exception:  # malformed parts: the gate and the parser judge the workbook
        return {}
