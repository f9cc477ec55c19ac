"""SPEC L1-L3: the upload gate, in process, over the generated corpus and targeted variants."""

from __future__ import annotations

import importlib
import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from invoicing.errors import InputRejected, UploadRejected
from invoicing.settings import MIB, Settings
from invoicing.workbook import gate
from invoicing.workbook.gate import check_upload
from tests.hostile import corpus
from tests.hostile.corpus import (
    CASES,
    LOL_PROLOG,
    case_env,
    legit_sheets,
    legit_workbook,
    rows_xml,
    sheet_xml,
    write_xlsx,
    xlsx_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
CAP = 20 * MIB


@pytest.fixture(scope="session")
def hostile_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return corpus.build_corpus(tmp_path_factory.mktemp("hostile"))


def _rejected(data: bytes, max_bytes: int = CAP) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        check_upload(data, max_bytes=max_bytes)
    return info.value


def _one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert 10 < len(message) < 300


# ---- the corpus ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == "gate"], ids=lambda c: c.name)
def test_gate_rejects_hostile_case(case: corpus.Case, hostile_corpus: dict[str, Path]) -> None:
    data = hostile_corpus[case.name].read_bytes()
    max_bytes = int(case_env(case).get("MAX_UPLOAD_BYTES", CAP))
    assert len(data) <= max_bytes or case.status == 413  # L3: every case is within the byte cap
    error = _rejected(data, max_bytes)
    assert error.status == case.status, str(error)
    _one_sentence(str(error))


@pytest.mark.parametrize("case", [c for c in CASES if c.expect != "gate"], ids=lambda c: c.name)
def test_gate_passes_cases_for_the_reader(
    case: corpus.Case, hostile_corpus: dict[str, Path]
) -> None:
    check_upload(hostile_corpus[case.name].read_bytes(), max_bytes=CAP)


def test_wrong_kinds_get_a_plain_sentence() -> None:
    assert "legacy .xls or password-protected" in str(_rejected(gate.OLE2_MAGIC + b"\0" * 600))
    assert "empty" in str(_rejected(b""))
    assert "CSV" in str(_rejected(b"a;b;c\n1;2;3\n"))
    assert "CSV" in str(_rejected("Kunde,Betrag\nMüller,12\n".encode("cp1252")))
    assert "PDF" in str(_rejected(b"%PDF-1.7\n" + bytes(range(256))))
    assert "HTML" in str(_rejected(b"<!DOCTYPE html><html></html>"))
    assert "not a zip" in str(_rejected(bytes(range(256)) * 4))
    assert "truncated or damaged" in str(_rejected(b"PK\x03\x04" + b"\0" * 100))


# ---- legitimate workbooks pass -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: legit_workbook(),
        lambda: corpus.legit_openpyxl_workbook(200),  # shared strings, styles, theme
        lambda: corpus.legit_openpyxl_workbook(200, write_only=True),
        lambda: (ROOT / "templates" / "sample-adatum.xlsx").read_bytes(),
        lambda: (ROOT / "templates" / "template.xlsx").read_bytes(),
    ],
    ids=["raw", "openpyxl", "openpyxl-write-only", "sample-adatum", "template"],
)
def test_legit_workbooks_pass(make) -> None:
    check_upload(make(), max_bytes=CAP)


def test_a_100k_row_workbook_is_well_inside_the_caps() -> None:
    """The benchmark's size (SPEC P1): 100,000 transactions x 11 columns, inline strings."""
    header, *_ = legit_sheets()[-1][1]
    rows = corpus.transactions(100_000)
    data = xlsx_bytes([("Transactions", sheet_xml(rows_xml([header, *rows])))], compresslevel=1)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.getinfo("xl/worksheets/sheet1.xml")
    assert sheet.file_size < gate.MAX_MEMBER_BYTES / 1.5
    assert gate.MAX_CELLS / 2 > 100_001 * 11
    check_upload(data, max_bytes=CAP)


# ---- targeted variants ---------------------------------------------------------------------------


def _sheet_bytes(body: bytes, **kwargs) -> bytes:
    return xlsx_bytes([("Contracts", sheet_xml(body))], **kwargs)


@pytest.mark.parametrize(
    "body",
    [
        b'<row r="1"><c r="A1"><v>1</v></c><c r="XFD1"><v>1</v></c></row>'
        b'<row r="200"><c r="A200"><v>1</v></c></row>',
        b'<row r="1"><c r="A1"><v>1</v></c></row>'
        b'<row r="3000000"><c r="B3000000"><v>1</v></c></row>',
        b"<row r='1'><c r='A1'><v>1</v></c></row>"
        b"<row r='1048576'><c r='Z1048576'><v>1</v></c></row>",
        b'<x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c>'
        b'<x:c r="AAA1048576"><x:v>1</x:v></x:c></x:row>',
        b'<row r="1"><c r="A1"><v>1</v></c></row>'
        b'<row r="1048576"><c\tr="ZZ1048576"><v>1</v></c></row>',
        b'<row r="1048576"><c r="A1048576"><v>1</v></c></row>'
        b'<row r="1"><c r="XX1"><v>1</v></c></row>',
        b'<row r="1">' + b"<c><v>1</v></c>" * 30 + b'</row><row r="100000"><c><v>1</v></c></row>',
        b"<row>" + b"<c><v>1</v></c>" * 3 + b"</row>" * 1 + b'<row r="1048575"/><row><c r="ZZ1">'
        b"<v>1</v></c></row>",
    ],
    ids=["wide", "tall", "single-quotes", "prefixed", "tab", "out-of-order", "no-cell-refs",
         "no-row-refs"],
)
def test_dense_range_bombs_are_rejected(body: bytes) -> None:
    error = _rejected(_sheet_bytes(body))
    assert error.status == 422 and "cells" in str(error)


def test_escaped_reference_is_rejected() -> None:
    error = _rejected(_sheet_bytes(b'<row r="1"><c r="&#88;FD1048576"><v>1</v></c></row>'))
    assert error.status == 422


def test_cells_are_counted_across_sheets(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"".join(rows_xml([[1] * 10 for _ in range(100)]))  # 1,000 cells each
    data = xlsx_bytes([(f"S{i}", sheet_xml(body)) for i in range(3)])
    check_upload(data, max_bytes=CAP, max_cells=3_000)
    assert _rejected_cells(data, 2_999)


def _rejected_cells(data: bytes, max_cells: int) -> bool:
    with pytest.raises(UploadRejected):
        check_upload(data, max_bytes=CAP, max_cells=max_cells)
    return True


def test_shared_strings_short_and_long() -> None:
    def book(text_len: int, cells: int) -> bytes:
        sst = [b'<sst xmlns="%s"><si><t>' % corpus.MAIN_NS.encode(), b"y" * text_len,
               b"</t></si><si><t>short</t></si></sst>"]
        body = b"".join(
            b'<row r="%d"><c r="A%d" t="s"><v>0</v></c><c r="B%d" t="s"><v>1</v></c></row>'
            % (r, r, r) for r in range(1, cells + 1)
        )
        return _sheet_bytes(body, shared_strings=sst)

    check_upload(book(32_767, 1_000), max_bytes=CAP)  # a long note used a thousand times: fine
    error = _rejected(book(32_767, 3_000))  # ~100 MB of copies
    assert error.status == 422 and "shared" in str(error)


def test_too_many_shared_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate, "MAX_SHARED_STRINGS", 1_000)
    sst = [b"<sst>", b"<si><t>a</t></si>" * 1_001, b"</sst>"]
    error = _rejected(_sheet_bytes(b"", shared_strings=sst))
    assert error.status == 422 and "shared strings" in str(error)


@pytest.mark.parametrize("name", ["MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES"])
def test_uncompressed_caps(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(gate, name, 10_000)
    error = _rejected(legit_workbook(300))
    assert error.status == 422 and "unpacks to" in str(error)


def test_member_with_unsupported_compression_or_encryption() -> None:
    data = bytearray(legit_workbook())
    # flip the central directory's compression method of the first member to 12 (bzip2)
    pos = data.find(b"PK\x01\x02")
    data[pos + 10] = 12
    assert _rejected(bytes(data)).status in (415, 422)
    data = bytearray(legit_workbook())
    pos = data.find(b"PK\x01\x02")
    data[pos + 8] |= 1  # encrypted flag
    assert _rejected(bytes(data)).status in (415, 422)


def test_utf16_xml_is_rejected() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><worksheet/>'.encode("utf-16")
    out = io.BytesIO()
    write_xlsx(out, [("Contracts", [body])])
    assert _rejected(out.getvalue()).status == 422


def test_dtd_in_any_part_is_rejected() -> None:
    data = xlsx_bytes(
        [("Contracts", sheet_xml(rows_xml(corpus.CONTRACTS)))],
        extra_parts=[("docProps/core.xml", b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")],
    )
    assert "DTD" in str(_rejected(data))


def test_forbidden_parts_in_any_folder_and_case() -> None:
    for name in ["xl/VBAProject.bin", "XL/ExternalLinks/e.xml", "xl/macrosheets/sheet1.xml",
                 "customUI/customUI14.xml", "xl/vbaProjectSignature.bin"]:
        data = xlsx_bytes([("Contracts", sheet_xml(b""))], extra_parts=[(name, b"<x/>")])
        assert _rejected(data).status == 422, name


def test_printer_settings_are_allowed() -> None:
    data = xlsx_bytes([("Contracts", sheet_xml(b""))],
                      extra_parts=[("xl/printerSettings/printerSettings1.bin", b"\0" * 100)])
    check_upload(data, max_bytes=CAP)


@given(st.integers(min_value=0, max_value=2_000_000), st.integers(min_value=0, max_value=3_000_000))
def test_greater_than_regex(limit: int, number: int) -> None:
    pattern = re.compile(gate._greater_than(limit))
    assert bool(pattern.fullmatch(str(number).encode())) == (number > limit)
    assert bool(pattern.fullmatch(b"00" + str(number).encode())) == (number > limit)


# ---- the XML parsers themselves (facts the gate relies on, checked on every run) -----------------


def test_openpyxl_uses_defusedxml() -> None:
    assert openpyxl.DEFUSEDXML is True


def test_gate_refuses_to_import_without_defusedxml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openpyxl, "DEFUSEDXML", False)
    try:
        with pytest.raises(RuntimeError, match="defusedxml"):
            importlib.reload(gate)
    finally:
        monkeypatch.setattr(openpyxl, "DEFUSEDXML", True)
        importlib.reload(gate)


@pytest.mark.parametrize(
    ("prolog", "text"),
    [
        (LOL_PROLOG, b"&lol9;"),
        (b'<!DOCTYPE x [<!ENTITY a "' + b"A" * 50_000 + b'">]>', b"&a;" * 20_000),
        (b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', b"&xxe;"),
    ],
    ids=["billion-laughs", "quadratic", "xxe"],
)
def test_calamine_itself_refuses_entities(prolog: bytes, text: bytes) -> None:
    """Defence in depth: even past the gate, calamine (quick-xml) expands no entity."""
    body = b'<row r="1"><c r="A1" t="inlineStr"><is><t>' + text + b"</t></is></c></row>"
    data = xlsx_bytes([("Contracts", sheet_xml(body, prolog=prolog))])
    with pytest.raises(Exception, match="entity"):
        CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()


# ---- through the reader: row caps, lying dimension, merge bomb (the reader's job) ----------------


def test_reader_calls_the_gate() -> None:
    from invoicing.workbook.reader import read_workbook

    with pytest.raises(UploadRejected) as info:
        read_workbook(gate.OLE2_MAGIC + b"\0" * 100)
    assert info.value.status == 415


def test_reader_enforces_max_rows(hostile_corpus: dict[str, Path]) -> None:
    from invoicing.workbook.reader import read_workbook

    data = hostile_corpus["rows_over_max_rows"].read_bytes()
    read_workbook(data, settings=Settings(max_rows=3_001))
    with pytest.raises(InputRejected) as info:
        read_workbook(data, settings=Settings(max_rows=1_000))
    assert any("more than 1,000" in p.message for p in info.value.problems)


@pytest.mark.parametrize("name", ["lying_dimension", "merge_cell_bomb"])
def test_reader_ignores_lying_dimension_and_merges(
    name: str, hostile_corpus: dict[str, Path]
) -> None:
    from invoicing.workbook.reader import read_workbook

    read = read_workbook(hostile_corpus[name].read_bytes())
    assert len(read.portfolio.contracts) == 1


@pytest.mark.parametrize("name", ["wrong_sheets", "missing_sheets"])
def test_reader_rejects_wrong_or_missing_sheets(name: str, hostile_corpus: dict[str, Path]) -> None:
    from invoicing.workbook.reader import read_workbook

    with pytest.raises(InputRejected):
        read_workbook(hostile_corpus[name].read_bytes())


# ---- the fast path (one pass over a plain sheet) agrees with the thorough one --------------------


@given(st.integers(min_value=1, max_value=2_000_000), st.integers(min_value=0, max_value=3_000_000))
def test_at_most_regex(limit: int, number: int) -> None:
    pattern = re.compile(gate._at_most(limit))
    assert bool(pattern.fullmatch(str(number).encode())) == (1 <= number <= limit)
    assert not pattern.fullmatch(b"0" + str(number).encode())


@given(st.integers(min_value=1, max_value=16_384), st.integers(min_value=1, max_value=20_000))
def test_columns_at_most_regex(width: int, column: int) -> None:
    letters = gate._column_letters(column).encode()
    assert gate._column_number(letters) == column
    assert bool(re.fullmatch(gate._columns_at_most(width), letters)) == (column <= width)


_cells = st.lists(
    st.tuples(st.integers(1, 3_000), st.integers(1, 800), st.sampled_from(["1", "-5", "x"])),
    min_size=1,
    max_size=40,
)


@given(_cells, st.booleans())
def test_fast_scan_agrees_with_the_thorough_scan(cells: list, lowercase: bool) -> None:
    rows: dict[int, list[bytes]] = {}
    for row, column, value in cells:
        letters = gate._column_letters(column)
        ref = (letters.lower() if lowercase and column % 3 == 0 else letters) + str(row)
        cell = (
            b'<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (ref.encode(), value.encode())
            if value == "x"
            else b'<c r="%s"><v>%s</v></c>' % (ref.encode(), value.encode())
        )
        rows.setdefault(row, []).append(cell)
    order = list(rows) if lowercase else sorted(rows)  # sometimes out of order
    body = b"".join(b'<row r="%d">%s</row>' % (r, b"".join(rows[r])) for r in order)
    data = b"".join(sheet_xml(body))
    here, has_si, negative = gate._fast_scan(data)
    assert not has_si
    assert negative == (b"<v>-" in data)
    thorough = gate._used_range_cells("sheet", data, 10**12)
    if here is not None:
        assert here == thorough
    if not lowercase:  # upper-case references, rows in order: what writers make
        assert here == thorough
