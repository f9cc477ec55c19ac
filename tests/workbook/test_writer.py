"""§X, L4: the invoice workbook, written for real and read back with openpyxl."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from invoicing.model import Outcome, Status, TaxCategory
from invoicing.workbook.layout import (
    DETAIL_COLUMNS,
    INVOICE_COLUMNS,
    LINE_COLUMNS,
    PERCENT_FORMAT,
    RUN_LOG_COLUMNS,
    money_format,
)
from invoicing.workbook.safe import clean_text, text_cell, text_value
from invoicing.workbook.writer import (
    invoice_workbook_bytes,
    plain_rows,
    write_invoice_chunks,
    write_invoice_workbook,
)
from tests.support.invoices import (
    D,
    detail,
    excel_text,
    formula_cells,
    invoice,
    line,
    log_entry,
    read_headers,
    read_invoice_workbook,
)

SHEETS = ["Invoices", "InvoiceLines", "InvoiceLineDetails", "RunLog"]

DANGEROUS = [
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\t=1",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "#N/A",
    "#DIV/0!",
    "#REF!",
    "-2+3",
    "=",
    " =1+1",
]


def load(data: bytes):
    return load_workbook(io.BytesIO(data))


def sample_invoices():
    usd = invoice(
        "C1", "K1", "2020-10-05",
        [
            line(1, [detail("T1", "1200.00", quantity="8", unit_price="150"),
                     detail("T2", "0.10", quantity="1", unit_price="0.1")]),
            line(2, [detail("M1", "5000.00", milestone=True, description="Prototype")],
                 line_id="FP", name="Prototype work", fixed_price=True),
        ],
    )
    jpy = invoice("C2", "K2", "2020-10-05", [line(1, [detail("J1", "1235", quantity=None)])],
                  currency="JPY")
    kwd = invoice("C3", "K3", "2020-10-06", [line(1, [detail("K1", "10.125", quantity=None)])],
                  currency="KWD")
    return [kwd, jpy, usd]


# ---- sheets, columns, tables --------------------------------------------------------------------


def test_sheets_and_columns_are_exactly_those_of_section_x_with_x5_at_the_end():
    data = invoice_workbook_bytes(sample_invoices(), [log_entry()])
    headers = read_headers(data)
    assert list(headers) == SHEETS
    assert headers["Invoices"] == (
        "InvoiceId", "InvoiceNumber", "Status", "ContractId", "ContractName", "CustomerId",
        "CustomerName", "InvoiceDate", "DueDate", "Currency", "Amount", "LineCount",
        "DocumentType", "CreditedInvoiceId", "NetAmount", "TaxAmount", "GrossAmount", "Decision",
    )
    assert headers["InvoiceLines"] == (
        "InvoiceId", "LineNumber", "ContractLineId", "LineName", "BillingMethod",
        "TransactionCutoffDate", "Amount", "TaxCategory", "TaxPercent",
    )
    assert headers["InvoiceLineDetails"] == (
        "InvoiceId", "LineNumber", "SourceType", "SourceId", "Class", "Date", "Description",
        "Quantity", "UnitPrice", "SplitPercent", "Amount", "Status", "Decision",
    )
    assert headers["RunLog"] == (
        "RunDate", "ContractId", "ContractLineId", "Outcome", "Items", "Amount", "Note",
    )
    assert tuple(
        headers[s] for s in SHEETS
    ) == (INVOICE_COLUMNS, LINE_COLUMNS, DETAIL_COLUMNS, RUN_LOG_COLUMNS)


def test_every_sheet_is_a_table_with_a_frozen_header_row_and_unique_table_names():
    invoices = sample_invoices()
    wb = load(invoice_workbook_bytes(invoices, [log_entry(), log_entry(line_id="L2")]))
    expected_rows = {"Invoices": 3, "InvoiceLines": 4, "InvoiceLineDetails": 5, "RunLog": 2}
    names = []
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2"
        assert len(ws.tables) == 1
        (table,) = ws.tables.values()
        names.append(table.displayName)
        width = ws.max_column
        last = chr(ord("A") + width - 1)
        assert table.ref == f"A1:{last}{1 + expected_rows[ws.title]}"
        assert [c.name for c in table.tableColumns] == [c.value for c in ws[1]]
        assert table.autoFilter is not None and table.autoFilter.ref == table.ref
        assert all(ws.column_dimensions[chr(ord("A") + i)].width >= 8 for i in range(width))
    assert len(set(names)) == 4


def test_an_empty_sheet_keeps_a_valid_table_of_header_plus_one_blank_row():
    data = invoice_workbook_bytes([], [])
    wb = load(data)
    for ws in wb.worksheets:
        (table,) = ws.tables.values()
        assert table.ref.endswith("2"), table.ref  # Excel rejects a header-only table
        assert ws.max_row == 1
    assert read_invoice_workbook(data) == {sheet: [] for sheet in SHEETS}


# ---- values and formats -------------------------------------------------------------------------


def test_invoice_rows_carry_the_invoice_fields():
    usd = sample_invoices()[2]
    rows = read_invoice_workbook(invoice_workbook_bytes([usd], []))
    # X5 columns follow X1-X3's (an untaxed line is exempt at 0, E2's default); empty trailing
    # cells (Decision) are not read back
    assert [_trimmed(r) for r in rows["Invoices"]] == [(
        usd.invoice_id, None, "Draft", "C1", "Contract one", "K1", "Customer one",
        date(2020, 10, 5), date(2020, 11, 4), "USD", Decimal("6200.10"), Decimal(2),
        "Invoice", None, Decimal("6200.10"), Decimal(0), Decimal("6200.10"),
    )]
    assert [_trimmed(r) for r in rows["InvoiceLines"]] == [
        (usd.invoice_id, 1, "L1", "Line one", "Time and material", date(2020, 10, 4),
         Decimal("1200.10"), "E", Decimal(0)),
        (usd.invoice_id, 2, "FP", "Prototype work", "Fixed price", None, Decimal("5000"), "E",
         Decimal(0)),
    ]
    assert [_trimmed(r) for r in rows["InvoiceLineDetails"]] == [
        (usd.invoice_id, 1, "Transaction", "T1", "Time", date(2020, 10, 1), "work",
         Decimal(8), Decimal(150), Decimal(100), Decimal("1200"), "Invoiced"),
        (usd.invoice_id, 1, "Transaction", "T2", "Time", date(2020, 10, 1), "work",
         Decimal(1), Decimal("0.1"), Decimal(100), Decimal("0.1"), "Invoiced"),
        (usd.invoice_id, 2, "Milestone", "M1", None, date(2020, 10, 1), "Prototype",
         None, None, Decimal(100), Decimal("5000"), "Invoiced"),
    ]


def test_invoice_rows_carry_tax_per_group_and_lines_their_category_and_percent():
    taxed = [
        line(n, [detail(f"T{n}", "10.01")])._replace(
            tax_category=TaxCategory.STANDARD, tax_percent=Decimal("20")
        )
        for n in (1, 2, 3)
    ]
    exempt = line(4, [detail("T4", "5.00")])._replace(tax_category=TaxCategory.EXEMPT)
    inv = invoice(lines=[*taxed, exempt])
    data = invoice_workbook_bytes([inv], [])
    wb = load(data)
    header = [c.value for c in wb["Invoices"][1]]
    row = dict(zip(header, read_invoice_workbook(data)["Invoices"][0], strict=False))
    # 30.03 at 20 % is 6.006, rounded once for the group: 6.01 (three lines rounded apart: 6.00)
    assert (row["NetAmount"], row["TaxAmount"], row["GrossAmount"]) == (
        Decimal("35.03"), Decimal("6.01"), Decimal("41.04")
    )
    lines_header = [c.value for c in wb["InvoiceLines"][1]]
    tax_columns = [lines_header.index("TaxCategory"), lines_header.index("TaxPercent")]
    lines = [[r[i].value for i in tax_columns] for r in wb["InvoiceLines"].iter_rows(min_row=2)]
    assert lines == [["S", 20], ["S", 20], ["S", 20], ["E", 0]]
    assert wb["InvoiceLines"].cell(2, tax_columns[1] + 1).number_format == PERCENT_FORMAT


def test_fixed_price_lines_have_no_cutoff_and_milestone_details_no_class_quantity_or_price():
    fp = line(1, [detail("M1", "10.00", milestone=True)], fixed_price=True)
    rows = read_invoice_workbook(invoice_workbook_bytes([invoice(lines=[fp])], []))
    assert rows["InvoiceLines"][0][5] is None
    assert rows["InvoiceLineDetails"][0][4] is None
    assert rows["InvoiceLineDetails"][0][7:9] == (None, None)


def test_draft_invoices_have_no_number_and_confirmed_ones_show_theirs():
    draft = invoice("C1", "K1")
    confirmed = invoice("C1", "K2", status=Status.CONFIRMED, number="INV-000001")
    cancelled = invoice("C1", "K3", status=Status.CANCELLED)
    rows = read_invoice_workbook(invoice_workbook_bytes([cancelled, confirmed, draft], []))
    assert [(r[1], r[2]) for r in rows["Invoices"]] == [
        (None, "Draft"), ("INV-000001", "Confirmed"), (None, "Cancelled"),
    ]


@pytest.mark.parametrize(
    ("currency", "amount", "number_format"),
    [("USD", "1234.56", "#,##0.00"), ("JPY", "1235", "#,##0"), ("KWD", "10.125", "#,##0.000"),
     ("CLF", "1.2345", "#,##0.0000")],
)
def test_money_cells_are_numbers_formatted_with_the_currency_decimals(
    currency, amount, number_format
):
    inv = invoice(lines=[line(1, [detail("T1", amount, quantity=None)])], currency=currency)
    log = [log_entry(contract_id="C1", amount=amount)]
    wb = load(invoice_workbook_bytes([inv], log))
    cells = [
        wb["Invoices"]["K2"], wb["InvoiceLines"]["G2"], wb["InvoiceLineDetails"]["K2"],
        wb["RunLog"]["F2"],
    ]
    for cell in cells:
        assert cell.data_type == "n"
        assert isinstance(cell.value, int | float)
        assert Decimal(format(cell.value, ".15g")) == Decimal(amount)
        assert cell.number_format == number_format


def test_money_formats_per_number_of_decimals():
    assert [money_format(p) for p in (0, 2, 3)] == ["#,##0", "#,##0.00", "#,##0.000"]


def test_mixed_currencies_in_one_sheet_each_get_their_own_format():
    wb = load(invoice_workbook_bytes(sample_invoices(), []))
    formats = {row[9].value: row[10].number_format for row in wb["Invoices"].iter_rows(min_row=2)}
    assert formats == {"USD": "#,##0.00", "JPY": "#,##0", "KWD": "#,##0.000"}


def test_run_log_amount_of_a_contract_without_invoices_uses_the_given_currency():
    log = [log_entry(contract_id="CX", outcome=Outcome.HELD, amount="12.5")]
    wb = load(invoice_workbook_bytes([], log, currencies={"CX": "KWD"}))
    assert wb["RunLog"]["F2"].number_format == "#,##0.000"
    wb = load(invoice_workbook_bytes([], log))  # unknown: the decimals the amount carries
    assert wb["RunLog"]["F2"].number_format == "#,##0.0"


def test_decimal_amounts_are_written_exactly_in_the_sheet_xml():
    amounts = ["1234567890123.45", "0.01", "0.10", "999999999.99", "7", "100.125"]
    details = [detail(f"T{i}", a, quantity=None) for i, a in enumerate(amounts)]
    data = invoice_workbook_bytes([invoice(lines=[line(1, details)])], [])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read("xl/worksheets/sheet3.xml").decode()
    written = re.findall(r'<c r="K(\d+)"[^>]*><v>([^<]*)</v>', xml)
    assert [Decimal(v) for _, v in written] == [Decimal(a) for a in amounts]
    assert [v for _, v in written] == [format(Decimal(a).normalize(), "f") for a in amounts]


def test_dates_are_real_dates_with_a_date_format():
    wb = load(invoice_workbook_bytes(sample_invoices(), [log_entry()]))
    cells = [wb["Invoices"]["H2"], wb["Invoices"]["I2"], wb["InvoiceLines"]["F2"],
             wb["InvoiceLineDetails"]["F2"], wb["RunLog"]["A2"]]
    for cell in cells:
        assert cell.is_date, cell.coordinate
        assert isinstance(cell.value, datetime)
        assert cell.number_format == "yyyy-mm-dd"


def test_counts_quantities_and_percentages_are_numbers():
    wb = load(invoice_workbook_bytes(sample_invoices(), [log_entry(items=3)]))
    assert wb["Invoices"]["L2"].value == 2  # LineCount
    assert wb["InvoiceLines"]["B2"].data_type == "n"
    details = wb["InvoiceLineDetails"]
    assert all(details.cell(2, c).data_type == "n" for c in (2, 8, 9, 10))
    assert wb["RunLog"]["E2"].value == 3


# ---- order --------------------------------------------------------------------------------------


def test_invoices_are_sorted_by_date_contract_and_customer_with_lines_and_details_in_order():
    invoices = [
        invoice("C2", "K1", "2020-10-05"),
        invoice("C1", "K2", "2020-10-19"),
        invoice("C1", "K2", "2020-10-05",
                [line(1, [detail("B"), detail("A")]), line(2, [detail("C")], line_id="L2")]),
        invoice("C1", "K1", "2020-10-05"),
    ]
    rows = read_invoice_workbook(invoice_workbook_bytes(iter(invoices), []))
    assert [(r[7], r[3], r[5]) for r in rows["Invoices"]] == [
        (D("2020-10-05"), "C1", "K1"), (D("2020-10-05"), "C1", "K2"),
        (D("2020-10-05"), "C2", "K1"), (D("2020-10-19"), "C1", "K2"),
    ]
    order = [r[0] for r in rows["Invoices"]]
    assert [r[0] for r in rows["InvoiceLines"]] == [order[0], order[1], order[1], *order[2:]]
    c1k2 = [(r[1], r[3]) for r in rows["InvoiceLineDetails"] if r[0] == order[1]]
    assert c1k2 == [(1, "B"), (1, "A"), (2, "C")]


def test_run_log_rows_are_sorted_by_run_date_then_contract_keeping_the_given_order():
    log = [
        log_entry("2020-10-19", "C1", "L1", Outcome.SKIPPED, 0, "0", "nothing ready"),
        log_entry("2020-10-05", "C2", "L1"),
        log_entry("2020-10-05", "C1", "L2", Outcome.INVOICED, 2, "300.00"),
        log_entry("2020-10-05", "C1", "L1", Outcome.HELD, 1, "99.99", "held: =1+1"),
    ]
    rows = read_invoice_workbook(invoice_workbook_bytes([], iter(log)))["RunLog"]
    assert rows == [
        (D("2020-10-05"), "C1", "L2", "Invoiced", 2, Decimal("300"), "cut-off 2020-10-04"),
        (D("2020-10-05"), "C1", "L1", "Held", 1, Decimal("99.99"), "held: =1+1"),
        (D("2020-10-05"), "C2", "L1", "Invoiced", 1, Decimal("100"), "cut-off 2020-10-04"),
        (D("2020-10-19"), "C1", "L1", "Skipped", 0, Decimal(0), "nothing ready"),
    ]


# ---- output safety (L4) -------------------------------------------------------------------------


def _hostile_invoice(text: str):
    """Every text field of an invoice set to ``text`` (the id stays a real R16 id)."""
    base = invoice(
        "C1", "K1", "2020-10-05",
        [line(1, [detail(text, description=text)], line_id=text, name=text)],
        contract_name=text, customer_name=text, status=Status.CONFIRMED, number=text,
    )
    return base._replace(contract_id=text, customer_id=text)


@pytest.mark.parametrize("text", DANGEROUS)
def test_text_that_looks_like_a_formula_or_error_stays_the_same_text(text):
    data = invoice_workbook_bytes([_hostile_invoice(text)], [log_entry(contract_id=text,
                                                                       line_id=text, note=text)])
    assert formula_cells(data) == []
    wb = load(data)
    text_columns = {
        "Invoices": ["B", "D", "E", "F", "G"],
        "InvoiceLines": ["C", "D"],
        "InvoiceLineDetails": ["D", "G"],
        "RunLog": ["B", "C", "G"],
    }
    for sheet, letters in text_columns.items():
        for letter in letters:
            cell = wb[sheet][f"{letter}2"]
            assert cell.value == text, cell.coordinate
            assert cell.data_type == "s", cell.coordinate
            assert cell.quotePrefix == text.startswith(("=", "+", "-", "@", "\t")), cell.coordinate


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("\r=1", "\n=1"),  # XML turns a raw CR into LF for every reader: we write the LF
        ("a\r\nb", "a\nb"),
        ("bell\x07 and nul\x00 gone", "bell and nul gone"),
        ("\x1b=cmd|' /C calc'!A0", "=cmd|' /C calc'!A0"),
        ("\x00=1+1", "=1+1"),
        ("\ufffe\ud800ok", "ok"),
        ("tab\tand\nnewline kept", "tab\tand\nnewline kept"),
    ],
)
def test_control_characters_are_removed_and_what_remains_is_still_text(text, stored):
    data = invoice_workbook_bytes([_hostile_invoice(text)], [])
    assert formula_cells(data) == []
    wb = load(data)
    for cell in (wb["Invoices"]["E2"], wb["InvoiceLineDetails"]["G2"]):
        assert cell.value == stored
        assert cell.data_type == "s"
        assert cell.quotePrefix == stored.startswith(("=", "\n"))


def test_excel_escape_sequences_in_text_survive_as_the_same_visible_text():
    text = "A_x0041_ and _x000D_"
    data = invoice_workbook_bytes([_hostile_invoice(text)], [])
    wb = load(data)
    assert wb["Invoices"]["E2"].value == "A_x005F_x0041_ and _x005F_x000D_"  # the stored form
    assert excel_text(wb["Invoices"]["E2"].value) == text  # what Excel shows
    assert read_invoice_workbook(data)["Invoices"][0][4] == text


def test_text_longer_than_an_excel_cell_is_cut_at_32767_characters():
    text = "=" + "x" * 40_000
    wb = load(invoice_workbook_bytes([_hostile_invoice(text)], []))
    cell = wb["InvoiceLineDetails"]["G2"]
    assert cell.value == text[:32_767]
    assert cell.data_type == "s"


def test_no_cell_of_a_workbook_full_of_hostile_text_is_a_formula():
    invoices = [_hostile_invoice(t + str(i)) for i, t in enumerate(DANGEROUS)]
    log = [log_entry(contract_id=t, line_id=t, note=t) for t in DANGEROUS]
    data = invoice_workbook_bytes(invoices, log)
    assert formula_cells(data) == []
    wb = load(data)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type in ("s", "n", "d"), f"{ws.title}!{cell.coordinate}"


@pytest.mark.parametrize(
    "text", [*(t for t in DANGEROUS if not t.startswith(" ")), "\r=1", "x\x00y", "A_x0041_"]
)
def test_text_cell_is_always_typed_as_text(text):
    ws = Workbook(write_only=True).create_sheet("S")
    cell = text_cell(ws, text)
    assert cell.data_type == "s"
    assert cell.value == clean_text(text)
    fast = text_value(ws, text)
    assert fast is not None and fast is not text  # anything risky becomes a typed cell


def test_text_value_passes_plain_text_through_without_a_cell():
    ws = Workbook(write_only=True).create_sheet("S")
    assert text_value(ws, "Adatum Corporation") == "Adatum Corporation"
    assert text_value(ws, "a-b=c") == "a-b=c"
    assert text_value(ws, "") is None
    assert text_value(ws, None) is None
    assert text_value(ws, "\x00") is None


# ---- targets and helpers ------------------------------------------------------------------------


def test_writes_to_a_path_a_binary_file_and_bytes_alike(tmp_path):
    invoices, log = sample_invoices(), [log_entry()]
    path = tmp_path / "out.xlsx"
    write_invoice_workbook(invoices, log, path)
    write_invoice_workbook(invoices, log, str(tmp_path / "out2.xlsx"))
    buffer = io.BytesIO()
    write_invoice_workbook(invoices, log, buffer)
    expected = read_invoice_workbook(invoice_workbook_bytes(invoices, log))
    assert read_invoice_workbook(path.read_bytes()) == expected
    assert read_invoice_workbook((tmp_path / "out2.xlsx").read_bytes()) == expected
    assert read_invoice_workbook(buffer.getvalue()) == expected


def test_plain_rows_are_the_rows_the_workbook_holds():
    invoices, log = sample_invoices(), [log_entry(), log_entry("2020-10-06", "C3")]
    written = read_invoice_workbook(invoice_workbook_bytes(invoices, log))
    plain = plain_rows(invoices, log)
    for sheet in SHEETS:
        assert plain[sheet][0] == list(read_headers(invoice_workbook_bytes([], []))[sheet])
        assert len(plain[sheet]) - 1 == len(written[sheet])
        for expected, got in zip(plain[sheet][1:], written[sheet], strict=True):
            assert _trimmed(tuple(_as_read(v) for v in expected)) == _trimmed(got)


def _trimmed(row: tuple) -> tuple:
    """A row without its trailing empty cells (a reader stops at the last written cell)."""
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    return row[:end]


def _as_read(value):
    if isinstance(value, int):
        return Decimal(value)
    return value


def test_decision_columns_carry_the_drop_downs_of_r23():
    data = invoice_workbook_bytes(sample_invoices(), [log_entry()])
    wb = load(data)
    for sheet, allowed in (
        ("Invoices", "Confirm,Cancel,Credit"),
        ("InvoiceLineDetails", "Remove,WriteOff,Credit,CreditWriteOff"),
    ):
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        letter = chr(ord("A") + header.index("Decision"))
        (validation,) = ws.data_validations.dataValidation
        assert validation.formula1 == f'"{allowed}"'
        assert str(validation.sqref).startswith(f"{letter}2:{letter}")


# ---- chunks (an export streamed a window of dates at a time) ------------------------------------


def test_a_workbook_written_in_chunks_holds_what_one_written_at_once_holds():
    invoices = sorted(sample_invoices(), key=lambda i: (i.invoice_date, i.contract_id))
    log = [log_entry("2020-10-05", "C1"), log_entry("2020-10-05", "C2"),
           log_entry("2020-10-06", "C3")]
    buffer = io.BytesIO()
    chunks = [(invoices[:2], log[:2]), ([], []), (invoices[2:], log[2:])]
    counts = write_invoice_chunks(chunks, buffer)
    whole = invoice_workbook_bytes(invoices, log)
    assert read_invoice_workbook(buffer.getvalue()) == read_invoice_workbook(whole)
    assert counts == {"Invoices": 3, "InvoiceLines": 4, "InvoiceLineDetails": 5, "RunLog": 3}
    wb = load(buffer.getvalue())
    for sheet, rows in counts.items():  # each table spans its rows across every chunk
        (table,) = wb[sheet].tables.values()
        assert table.ref.endswith(str(1 + rows)), (sheet, table.ref)
    (validation,) = wb["InvoiceLineDetails"].data_validations.dataValidation
    assert str(validation.sqref).endswith(str(1 + counts["InvoiceLineDetails"]))


def test_a_workbook_of_no_chunk_is_the_empty_workbook():
    buffer = io.BytesIO()
    assert write_invoice_chunks([], buffer) == dict.fromkeys(SHEETS, 0)
    assert read_invoice_workbook(buffer.getvalue()) == read_invoice_workbook(
        invoice_workbook_bytes([], [])
    )


def test_chunked_column_widths_are_measured_on_the_first_chunk():
    short = invoice("C1", "K1", "2020-10-05", [line(1, [detail("T1", "1.00")])])
    long_name = invoice("C2", "K2", "2020-10-06", [line(1, [detail("T2", "1.00")])],
                        contract_name="N" * 60)
    buffer = io.BytesIO()
    write_invoice_chunks([([short], []), ([long_name], [])], buffer)
    at_once = load(invoice_workbook_bytes([short, long_name], []))
    chunked = load(buffer.getvalue())
    column = chr(ord("A") + INVOICE_COLUMNS.index("ContractName"))
    assert chunked["Invoices"].column_dimensions[column].width < (
        at_once["Invoices"].column_dimensions[column].width
    )
    assert chunked["Invoices"][f"{column}3"].value == "N" * 60  # the text itself is whole
