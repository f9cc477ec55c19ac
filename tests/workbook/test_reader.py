"""The input workbook reader (SPEC §W, W7-W10): real .xlsx files written with openpyxl."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from decimal import Decimal

import pytest

from invoicing.errors import InputRejected, UploadRejected
from invoicing.model import BillingMethod, TxnClass
from invoicing.schedule import ExplicitSchedule, Frequency, GeneratedSchedule, ScheduleRow
from invoicing.settings import Settings
from invoicing.workbook import loading
from invoicing.workbook.reader import WorkbookRead, read_workbook
from tests.support.workbooks import (
    Book,
    Formatted,
    Text,
    add,
    drop_column,
    minimal_rows,
    put,
    xlsx,
)

D = date.fromisoformat


def read(book: Book, **settings: object) -> WorkbookRead:
    return read_workbook(xlsx(book), settings=Settings(**settings))  # type: ignore[arg-type]


def problems(book: Book, **settings: object) -> list[str]:
    with pytest.raises(InputRejected) as caught:
        read(book, **settings)
    return [str(p) for p in caught.value.problems]


def rejects(book: Book, *expected: str) -> None:
    assert problems(book) == list(expected)


def only_contract(book: Book):
    (contract,) = read(book).portfolio.contracts
    return contract


def line(contract, line_id: str):
    return next(x for x in contract.lines if x.line_id == line_id)


def txn(contract, transaction_id: str):
    return next(t for t in contract.transactions if t.transaction_id == transaction_id)


# ---- a valid workbook builds the model ----------------------------------------------------------


def test_minimal_workbook_builds_contract_with_customers_lines_milestones_and_transactions():
    result = read(minimal_rows())
    (c,) = result.portfolio.contracts
    assert (c.contract_id, c.name, c.currency, c.payment_terms_days) == ("C1", "Adatum", "USD", 30)
    assert [(k.customer_id, k.name, k.split_percent, k.rounding) for k in c.customers] == [
        ("K1", "Fabrikam", Decimal(60), True),
        ("K2", "Contoso", Decimal(40), False),
    ]
    l1, l2, l3 = c.lines
    assert (l1.line_id, l1.name, l1.billing_method) == (
        "L1",
        "Design",
        BillingMethod.TIME_AND_MATERIAL,
    )
    assert l1.classes == {TxnClass.TIME, TxnClass.EXPENSE}
    assert l1.not_to_exceed == Decimal("10000.00")
    assert l1.schedule == GeneratedSchedule(
        first=D("2020-10-01"),
        last=D("2020-12-31"),
        frequency=Frequency.MONTHLY,
        month_days=("last",),
    )
    assert l2.classes == set(TxnClass) and l2.not_to_exceed is None
    assert l2.schedule == ExplicitSchedule(
        (
            ScheduleRow(D("2020-10-05"), D("2020-10-04")),
            ScheduleRow(D("2020-11-02"), D("2020-10-31")),
        )
    )
    assert (l3.billing_method, l3.schedule) == (BillingMethod.FIXED_PRICE, None)
    (m,) = c.milestones
    assert (m.milestone_id, m.line_id, m.name, m.date, m.amount, m.ready) == (
        "M1",
        "L3",
        "Kick-off",
        D("2020-10-15"),
        Decimal("5000.00"),
        True,
    )
    assert [t.transaction_id for t in c.transactions] == ["T1", "T2", "T3"]
    t1, t2, t3 = c.transactions
    assert (t1.line_id, t1.txn_class, t1.date, t1.quantity, t1.unit_price, t1.amount, t1.ready) == (
        "L1",
        TxnClass.TIME,
        D("2020-10-02"),
        Decimal(8),
        Decimal("125.5"),
        Decimal("1004.00"),
        True,
    )
    assert (t1.description, t1.resource) == ("Workshop", "Ana")
    assert (t2.amount, t2.quantity, t2.unit_price, t2.ready) == (
        Decimal("99.90"),
        None,
        None,
        False,
    )
    assert (t3.amount, t3.resource, t3.ready) == (Decimal("7.50"), "", True)
    assert result.warnings == () and result.portfolio.warnings == ()


def test_locations_give_the_sheet_and_row_of_every_contract_line_milestone_and_transaction():
    locations = read(minimal_rows()).locations
    assert locations[("C1", "Contract", "C1")] == ("Contracts", 2)
    assert locations[("C1", "Line", "L3")] == ("ContractLines", 4)
    assert locations[("C1", "Milestone", "M1")] == ("Milestones", 2)
    assert locations[("C1", "Transaction", "T3")] == ("Transactions", 4)
    assert len(locations) == 8


def test_contracts_keep_workbook_order():
    book = minimal_rows()
    book["Contracts"].insert(1, ["B0", "First", "EUR", None])
    add(book, "Customers", ContractId="B0", CustomerId="K", SplitPercent=100)
    add(book, "ContractLines", ContractId="B0", LineId="X", BillingMethod="Fixed price")
    add(
        book,
        "Milestones",
        ContractId="B0",
        LineId="X",
        MilestoneId="M",
        MilestoneDate=D("2021-01-01"),
        Amount=1,
    )
    assert [c.contract_id for c in read(book).portfolio.contracts] == ["B0", "C1"]


def test_reads_a_workbook_from_a_path(tmp_path):
    path = tmp_path / "input.xlsx"
    path.write_bytes(xlsx(minimal_rows()))
    assert read_workbook(path).portfolio.contracts[0].contract_id == "C1"
    assert read_workbook(str(path)).portfolio.contracts[0].contract_id == "C1"


# ---- sheets and headers -------------------------------------------------------------------------


def test_each_missing_required_sheet_is_reported_and_nothing_cascades_from_it():
    book = minimal_rows()
    del book["Contracts"], book["Customers"], book["ContractLines"]
    rejects(
        book,
        "Contracts: required sheet is missing",
        "Customers: required sheet is missing",
        "ContractLines: required sheet is missing",
    )


def test_missing_optional_sheets_mean_none():
    book = minimal_rows()
    del book["InvoiceSchedule"], book["Milestones"], book["Transactions"]
    result = read(book)
    c = result.portfolio.contracts[0]
    assert (c.milestones, c.transactions, line(c, "L2").schedule) == ((), (), None)
    assert result.warnings == (
        'ContractLines!B3: line "L2" of contract "C1" has no invoice schedule; '
        "it will never be invoiced",
        'ContractLines!B4: line "L3" of contract "C1" has no milestones; it will never be invoiced',
    )


def test_sheet_and_column_names_match_ignoring_case_spaces_and_underscores():
    book = minimal_rows()
    renamed = {
        "Contracts": "CONTRACTS",
        "ContractLines": "contract_lines",
        "InvoiceSchedule": "Invoice Schedule",
        "Transactions": "transactions",
    }
    book = {renamed.get(name, name): rows for name, rows in book.items()}
    book["contract_lines"][0][1] = "line_id"
    book["transactions"][0][0] = "Transaction ID"
    book["transactions"][0][9] = "AMOUNT"
    c = only_contract(book)
    assert [x.line_id for x in c.lines] == ["L1", "L2", "L3"]
    assert txn(c, "T2").amount == Decimal("99.90")


def test_sheets_may_come_in_any_order():
    book = dict(reversed(list(minimal_rows().items())))
    assert len(only_contract(book).transactions) == 3


def test_unknown_sheets_and_columns_are_ignored_with_a_warning():
    book = minimal_rows()
    book["Notes"] = [["anything"]]
    book["Transactions"][0].append("Foo")
    book["Transactions"][1].append("ignored value")
    result = read(book)
    assert result.warnings == (  # in workbook order
        'Transactions!L1: unknown column "Foo" ignored',
        'sheet "Notes" is not an input sheet; ignored',
    )


def test_an_empty_optional_sheet_means_none_but_an_empty_required_sheet_lacks_its_columns():
    book = minimal_rows()
    book["Milestones"] = []
    book["Contracts"] = []
    rejects(
        book,
        'Contracts!A1: required column "ContractId" is missing',
        'Contracts!A1: required column "Currency" is missing',
    )


def test_two_sheets_of_the_same_kind_are_rejected():
    book = minimal_rows()
    book["Con_tracts"] = book["Contracts"]
    rejects(book, 'Con_tracts: a second "Contracts" sheet (after "Contracts")')


def test_missing_required_column_is_reported_once_at_the_header_row():
    book = drop_column(minimal_rows(), "Transactions", "Date")
    rejects(book, 'Transactions!A1: required column "Date" is missing')


def test_missing_optional_column_means_blank():
    book = drop_column(minimal_rows(), "Contracts", "PaymentTermsDays")
    book = drop_column(book, "Transactions", "ReadyToInvoice")
    c = only_contract(book)
    assert c.payment_terms_days == 30
    assert not any(t.ready for t in c.transactions)


def test_duplicated_column_is_rejected():
    book = minimal_rows()
    book["Contracts"][0].append("Currency")  # after the last column (TaxPercent, E)
    rejects(book, 'Contracts!F1: column "Currency" appears twice (also in C1)')


def test_cells_keep_their_real_excel_addresses_when_the_first_column_is_empty():
    book = minimal_rows()
    book["Transactions"] = [[None, *row] for row in book["Transactions"]]
    put(book, "Transactions", 3, "Date", "31/12/2020")
    rejects(book, 'Transactions!F3: date "31/12/2020" is not YYYY-MM-DD or an Excel date')


def test_header_must_be_in_row_one():
    book = minimal_rows()
    book["Milestones"].insert(0, [])
    # W12 (issue 13 item 6): said as such, instead of "required column missing" per column
    rejects(
        book,
        "Milestones!A2: the header must be in row 1; found it in row 2 (delete the rows above it)",
    )


def test_blank_rows_in_the_middle_are_skipped_and_later_rows_keep_their_row_numbers():
    book = minimal_rows()
    book["Transactions"].insert(2, [])
    book["Transactions"].insert(2, [None] * 11)
    put(book, "Transactions", 6, "Class", "Travel")
    rejects(book, 'Transactions!D6: Class "Travel" is not one of Time, Expense, Material, Fee')


def test_trailing_blank_rows_and_columns_are_ignored():
    book = minimal_rows()
    book["Transactions"].extend([[], [None, ""], []])
    book["Transactions"][1].extend(["", None])
    assert len(only_contract(book).transactions) == 3


def test_more_data_rows_than_max_rows_is_rejected():
    book = minimal_rows()
    add(
        book,
        "Milestones",
        ContractId="C1",
        LineId="L3",
        MilestoneId="M2",
        MilestoneDate=D("2020-11-01"),
        Amount=1,
    )
    assert problems(book, max_rows=2) == [
        "ContractLines!A4: the sheet has more than 2 data rows",
        "Transactions!A4: the sheet has more than 2 data rows",
    ]


def test_a_required_empty_cell_is_reported_with_its_column_name():
    book = minimal_rows()
    put(book, "Customers", 3, "CustomerId", None)
    put(book, "Transactions", 3, "Date", "  ")
    rejects(
        book,
        "Customers!B3: CustomerId is required",
        "Transactions!E3: Date is required",
    )


def test_every_problem_is_reported_not_just_the_first():
    book = minimal_rows()
    put(book, "Contracts", 2, "PaymentTermsDays", "soon")
    put(book, "ContractLines", 2, "NotToExceed", -1)
    put(book, "Milestones", 2, "Amount", 0)
    put(book, "Transactions", 2, "Date", "2020-13-01")
    put(book, "Transactions", 4, "ReadyToInvoice", "perhaps")
    rejects(
        book,
        'Contracts!D2: PaymentTermsDays "soon" is not a whole number from 0 to 36500',
        "ContractLines!F2: NotToExceed -1 must be 0 or more",
        "Milestones!F2: Amount 0 must be more than 0",
        'Transactions!E2: date "2020-13-01" is not a real calendar date',
        'Transactions!K4: ReadyToInvoice "perhaps" is not Yes or No',
    )


def test_problems_carry_sheet_cell_and_message_separately():
    book = minimal_rows()
    put(book, "Transactions", 3, "Date", "31/12/2020")
    with pytest.raises(InputRejected) as caught:
        read(book)
    (problem,) = caught.value.problems
    assert problem.as_dict() == {
        "sheet": "Transactions",
        "cell": "E3",
        "message": 'date "31/12/2020" is not YYYY-MM-DD or an Excel date',
    }


# ---- uploads ------------------------------------------------------------------------------------


def test_an_upload_that_is_not_an_xlsx_is_rejected_before_parsing():
    with pytest.raises(UploadRejected):
        read_workbook(b"ContractId,Currency\nC1,USD\n")


def test_a_sheet_calamine_cannot_parse_is_an_upload_rejection():
    data = xlsx(minimal_rows())
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    members[sheet] = members[sheet].replace(b"<v>30</v>", b"<v>thirty</v>")
    damaged = io.BytesIO()
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in members.items():
            target.writestr(name, content)
    with pytest.raises(UploadRejected) as caught:
        read_workbook(damaged.getvalue())
    assert str(caught.value).startswith('the workbook\'s sheet "Contracts" cannot be read')


def test_an_upload_over_the_byte_limit_is_rejected_with_413():
    with pytest.raises(UploadRejected) as caught:
        read_workbook(xlsx(minimal_rows()), settings=Settings(max_upload_bytes=100))
    assert caught.value.status == 413


# ---- W7 types: dates ----------------------------------------------------------------------------


def test_transaction_date_in_day_month_year_form_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 3, "Date", "31/12/2020")
    rejects(book, 'Transactions!E3: date "31/12/2020" is not YYYY-MM-DD or an Excel date')


@pytest.mark.parametrize(
    "text",
    ["03/04/2020", "2020-1-5", "20201231", "Dec 1"],  # 2020-12-31T00:00: a date (W12)
)
def test_date_text_other_than_iso_is_rejected(text):
    book = minimal_rows()
    put(book, "InvoiceSchedule", 2, "InvoiceRunDate", text)
    rejects(book, f'InvoiceSchedule!C2: date "{text}" is not YYYY-MM-DD or an Excel date')


def test_dates_may_be_excel_dates_or_iso_text():
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", "2020-10-12")
    put(book, "Transactions", 3, "Date", Text(" 2020-10-13 "))
    put(book, "Transactions", 4, "Date", datetime(2020, 10, 14))
    c = only_contract(book)
    assert [t.date for t in c.transactions] == [D("2020-10-12"), D("2020-10-13"), D("2020-10-14")]


def test_a_date_with_a_time_of_day_is_rejected():
    book = minimal_rows()
    put(book, "Milestones", 2, "MilestoneDate", datetime(2020, 10, 15, 13, 30))
    rejects(book, 'Milestones!E2: date "2020-10-15 13:30:00" has a time of day; give the date only')


def test_a_date_serial_number_without_a_date_format_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", Formatted(44105, "General"))
    rejects(book, 'Transactions!E2: date "44105" is not YYYY-MM-DD or an Excel date')


def test_an_iso_date_that_does_not_exist_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", "2021-02-29")
    rejects(book, 'Transactions!E2: date "2021-02-29" is not a real calendar date')


def test_a_date_outside_the_supported_years_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", "0001-01-01")
    rejects(book, "Transactions!E2: date 0001-01-01 is outside 1900-01-01 to 9998-12-31")


# ---- W7 types: numbers --------------------------------------------------------------------------


def test_numbers_may_be_plain_decimal_text():
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", Text("8"))
    put(book, "Transactions", 2, "UnitPrice", Text("125.5"))
    put(book, "Transactions", 3, "Amount", "99.90")
    put(book, "Customers", 2, "SplitPercent", Text("60.0"))
    put(book, "ContractLines", 2, "NotToExceed", "10000")
    c = only_contract(book)
    assert (txn(c, "T1").quantity, txn(c, "T1").unit_price, txn(c, "T1").amount) == (
        Decimal(8),
        Decimal("125.5"),
        Decimal("1004.00"),
    )
    assert txn(c, "T2").amount == Decimal("99.90")
    assert c.customers[0].split_percent == 60


@pytest.mark.parametrize("text", ["1.234,5", "1,234.5", "1e3", "12 EUR", "+5", "1 000"])
def test_numbers_with_separators_exponents_or_units_are_rejected(text):
    book = minimal_rows()
    put(book, "Transactions", 3, "Amount", text)
    rejects(book, f'Transactions!J3: Amount "{text}" is not a plain decimal number such as 1234.5')


def test_amount_with_more_decimals_than_the_currency_allows_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 3, "Amount", 10.123)
    put(book, "Milestones", 2, "Amount", "5000.001")
    put(book, "ContractLines", 2, "NotToExceed", 0.5 + 0.005)
    rejects(
        book,
        "ContractLines!F2: NotToExceed 0.505 has more decimals than USD allows (2)",
        "Milestones!F2: Amount 5000.001 has more decimals than USD allows (2)",
        "Transactions!J3: Amount 10.123 has more decimals than USD allows (2)",
    )


def test_a_zero_decimal_currency_rejects_cents_and_trailing_zeros_are_not_decimals():
    book = minimal_rows()
    put(book, "Contracts", 2, "Currency", "JPY")
    put(book, "ContractLines", 2, "NotToExceed", "10000.00")
    put(book, "Transactions", 2, "UnitPrice", 125)
    put(book, "Transactions", 3, "Amount", 99.5)
    put(book, "Transactions", 4, "Amount", None)
    rejects(book, "Transactions!J3: Amount 99.5 has more decimals than JPY allows (0)")


def test_three_decimal_currency_keeps_three_decimals():
    book = minimal_rows()
    put(book, "Contracts", 2, "Currency", "kwd")
    put(book, "Transactions", 3, "Amount", 1.234)
    c = only_contract(book)
    assert c.currency == "KWD"
    assert txn(c, "T2").amount == Decimal("1.234")
    assert txn(c, "T3").amount == Decimal("7.500")


def test_quantity_and_unit_price_allow_six_decimals_but_not_seven():
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", "0.123456")
    put(book, "Transactions", 2, "UnitPrice", 100)
    assert txn(only_contract(book), "T1").amount == Decimal("12.35")
    put(book, "Transactions", 2, "Quantity", "0.1234567")
    put(book, "Transactions", 2, "UnitPrice", 0.0000001)
    rejects(
        book,
        "Transactions!H2: Quantity 0.1234567 has more than 6 decimals",
        "Transactions!I2: UnitPrice 1E-7 has more than 6 decimals",
    )


def test_split_percent_allows_four_decimals_but_not_five():
    book = minimal_rows()
    put(book, "Customers", 2, "SplitPercent", 33.3333)
    put(book, "Customers", 3, "SplitPercent", "66.6667")
    assert [k.split_percent for k in only_contract(book).customers] == [
        Decimal("33.3333"),
        Decimal("66.6667"),
    ]
    put(book, "Customers", 2, "SplitPercent", "33.33333")
    put(book, "Customers", 3, "SplitPercent", "66.66667")
    rejects(
        book,
        "Customers!D2: SplitPercent 33.33333 has more than 4 decimals",
        "Customers!D3: SplitPercent 66.66667 has more than 4 decimals",
    )


def test_a_huge_number_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 3, "Amount", 1e20)
    rejects(book, "Transactions!J3: Amount 1e+20 is too large")


# ---- W7 types: booleans -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("Yes", True),
        ("no", False),
        ("TRUE", True),
        ("false", False),
        ("y", True),
        ("N", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        (True, True),
        (False, False),
        (None, False),
        (" yEs ", True),
    ],
)
def test_booleans_accept_yes_no_true_false_y_n_1_0_in_any_case_and_blank_is_no(cell, expected):
    book = minimal_rows()
    put(book, "Transactions", 2, "ReadyToInvoice", cell)
    put(book, "Milestones", 2, "ReadyToInvoice", cell)
    c = only_contract(book)
    assert txn(c, "T1").ready is expected
    assert c.milestones[0].ready is expected


def test_an_unknown_boolean_word_is_rejected():
    book = minimal_rows()
    put(book, "Customers", 3, "RoundingCustomer", "maybe")
    put(book, "Transactions", 2, "ReadyToInvoice", 2)
    rejects(
        book,
        'Customers!F3: RoundingCustomer "maybe" is not Yes or No',
        'Transactions!K2: ReadyToInvoice "2" is not Yes or No',
    )


# ---- W7 types: ids ------------------------------------------------------------------------------


def _rename_contract(book: Book, cell: object) -> Book:
    for sheet in (
        "Contracts",
        "Customers",
        "ContractLines",
        "InvoiceSchedule",
        "Milestones",
        "Transactions",
    ):
        for row in range(2, len(book[sheet]) + 1):
            put(book, sheet, row, "ContractId", cell)
    return book


@pytest.mark.parametrize("cell", [1001, 1001.0, "1001", Text("1001"), " 1001 "])
def test_a_number_cell_id_is_the_same_text_id(cell):
    book = _rename_contract(minimal_rows(), 1001)
    put(book, "Contracts", 2, "ContractId", cell)
    c = only_contract(book)
    assert c.contract_id == "1001"
    assert len(c.transactions) == 3


@pytest.mark.parametrize(
    "text",
    ["A/B\\C#D?E", 'say "hi"', "it's", "with  inner  spaces", "Ünïcødé 契約 ✓", "=1+1", "%2F"],
)
def test_ids_with_any_printable_characters_round_trip(text):
    book = _rename_contract(minimal_rows(), Text(text))
    put(book, "Transactions", 2, "TransactionId", Text(text))
    put(book, "Milestones", 2, "MilestoneId", Text(text))
    put(book, "Customers", 2, "CustomerId", Text(text))
    c = only_contract(book)
    assert c.contract_id == text
    assert c.transactions[0].transaction_id == text
    assert c.milestones[0].milestone_id == text
    assert c.customers[0].customer_id == text


def test_leading_and_trailing_whitespace_is_stripped_from_ids():
    book = minimal_rows()
    put(book, "Transactions", 2, "TransactionId", "  T1  ")
    put(book, "Transactions", 2, "LineId", " L1")
    c = only_contract(book)
    assert (c.transactions[0].transaction_id, c.transactions[0].line_id) == ("T1", "L1")


def test_an_id_with_a_control_character_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 2, "TransactionId", "T\t1")
    put(book, "Milestones", 2, "MilestoneId", "M\n1")
    rejects(
        book,
        "Milestones!C2: MilestoneId contains a control character",
        "Transactions!A2: TransactionId contains a control character",
    )


def test_an_id_that_is_a_date_or_boolean_cell_is_rejected():
    book = minimal_rows()
    put(book, "Transactions", 2, "TransactionId", date(2020, 1, 1))
    put(book, "Transactions", 3, "TransactionId", True)
    rejects(
        book,
        'Transactions!A2: TransactionId must be text, not the date or time "2020-01-01"',
        "Transactions!A3: TransactionId must be text, not TRUE",
    )


# ---- Contracts ----------------------------------------------------------------------------------


def test_currency_must_be_an_active_iso_4217_code():
    book = minimal_rows()
    put(book, "Contracts", 2, "Currency", "XYZ")
    rejects(book, 'Contracts!C2: Currency "XYZ" is not an active ISO 4217 code')


def test_currency_is_upper_cased_and_required():
    book = minimal_rows()
    put(book, "Contracts", 2, "Currency", " eur ")
    assert only_contract(book).currency == "EUR"
    put(book, "Contracts", 2, "Currency", None)
    rejects(book, "Contracts!C2: Currency is required")


@pytest.mark.parametrize(("cell", "days"), [(None, 30), (0, 0), (45.0, 45), ("60", 60)])
def test_payment_terms_are_whole_days_defaulting_to_30(cell, days):
    book = put(minimal_rows(), "Contracts", 2, "PaymentTermsDays", cell)
    assert only_contract(book).payment_terms_days == days


@pytest.mark.parametrize(("cell", "shown"), [(1.5, "1.5"), (-1, "-1"), ("40000", "40000")])
def test_payment_terms_that_are_not_whole_days_are_rejected(cell, shown):
    book = put(minimal_rows(), "Contracts", 2, "PaymentTermsDays", cell)
    rejects(book, f"Contracts!D2: PaymentTermsDays {shown} is not a whole number from 0 to 36500")


def test_duplicate_contract_id_is_rejected():
    book = minimal_rows()
    book["Contracts"].append(["C1", "Again", "USD", 30])
    rejects(book, 'Contracts!A3: duplicate ContractId "C1" (first in row 2)')


# ---- Customers (R2) -----------------------------------------------------------------------------


def test_contract_splits_must_sum_to_exactly_100():
    book = put(minimal_rows(), "Customers", 3, "SplitPercent", 39.5)
    rejects(book, 'Customers!D2: splits of contract "C1" sum to 99.5, not 100')


@pytest.mark.parametrize("split", [0, -10, 100.01])
def test_a_split_must_be_more_than_zero_and_at_most_100(split):
    book = put(minimal_rows(), "Customers", 3, "SplitPercent", split)
    rejects(book, f"Customers!D3: SplitPercent {split} must be more than 0 and at most 100")


def test_line_level_customers_override_the_contract_list_for_that_line():
    book = minimal_rows()
    add(
        book,
        "Customers",
        ContractId="C1",
        CustomerId="K3",
        CustomerName="Litware",
        SplitPercent=70,
        LineId="L2",
    )
    add(
        book,
        "Customers",
        ContractId="C1",
        CustomerId="K1",
        SplitPercent=30,
        LineId="L2",
        RoundingCustomer="Yes",
    )
    c = only_contract(book)
    assert [k.customer_id for k in c.customers] == ["K1", "K2"]
    override = line(c, "L2").customers
    assert [(k.customer_id, k.split_percent, k.rounding) for k in override] == [
        ("K3", Decimal(70), False),
        ("K1", Decimal(30), True),
    ]
    assert line(c, "L1").customers == ()


def test_line_level_splits_must_also_sum_to_100():
    book = minimal_rows()
    add(book, "Customers", ContractId="C1", CustomerId="K3", SplitPercent=70, LineId="L2")
    rejects(book, 'Customers!D4: splits of line "L2" of contract "C1" sum to 70, not 100')


def test_two_rounding_customers_in_one_group_are_rejected():
    book = put(minimal_rows(), "Customers", 3, "RoundingCustomer", "yes")
    rejects(book, 'Customers!F3: contract "C1" already has a rounding customer (row 2)')


def test_the_same_customer_twice_in_one_group_is_rejected():
    book = put(minimal_rows(), "Customers", 3, "CustomerId", "K1")
    rejects(book, 'Customers!B3: duplicate CustomerId "K1" for contract "C1" (first in row 2)')


def test_more_than_50_customers_on_a_contract_is_rejected():
    book = minimal_rows()
    book["Customers"][1:] = [["C1", f"K{i}", None, 2, None, None] for i in range(50)]
    assert len(only_contract(book).customers) == 50
    add(book, "Customers", ContractId="C1", CustomerId="K50", SplitPercent=1, LineId="L2")
    add(book, "Customers", ContractId="C1", CustomerId="K0", SplitPercent=99, LineId="L2")
    rejects(book, 'Customers!B52: contract "C1" has more than 50 customers')


def test_a_contract_without_contract_level_customers_is_rejected():
    book = minimal_rows()
    put(book, "Customers", 2, "LineId", "L1")
    put(book, "Customers", 3, "LineId", "L1")
    rejects(
        book, 'Contracts!A2: contract "C1" has no customers (Customers rows with a blank LineId)'
    )


def test_a_customer_row_must_name_an_existing_contract_and_line():
    book = minimal_rows()
    add(book, "Customers", ContractId="C9", CustomerId="K", SplitPercent=100)
    add(book, "Customers", ContractId="C1", CustomerId="K", SplitPercent=100, LineId="L9")
    rejects(
        book,
        'Customers!A4: contract "C9" is not on the Contracts sheet',
        'Customers!E5: line "L9" is not a line of contract "C1"',
    )


# ---- ContractLines (R3, R5) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "method"),
    [
        ("time and material", BillingMethod.TIME_AND_MATERIAL),
        ("T&M", BillingMethod.TIME_AND_MATERIAL),
        ("Time & material", BillingMethod.TIME_AND_MATERIAL),
        ("FP", BillingMethod.FIXED_PRICE),
        ("fixed", BillingMethod.FIXED_PRICE),
        ("FIXED PRICE", BillingMethod.FIXED_PRICE),
    ],
)
def test_billing_method_names_and_short_forms_are_accepted(text, method):
    book = minimal_rows()
    del book["Transactions"], book["InvoiceSchedule"], book["Milestones"]
    put(book, "ContractLines", 3, "BillingMethod", text)
    assert line(only_contract(book), "L2").billing_method is method


def test_an_unknown_billing_method_is_rejected_and_its_rows_are_not_checked_against_it():
    book = put(minimal_rows(), "ContractLines", 3, "BillingMethod", "Hourly")
    rejects(
        book, 'ContractLines!D3: BillingMethod "Hourly" is not "Time and material" or "Fixed price"'
    )


def test_transaction_classes_are_a_case_insensitive_comma_list_defaulting_to_all():
    book = put(minimal_rows(), "ContractLines", 2, "TransactionClasses", "time,FEE , expense")
    put(book, "ContractLines", 4, "TransactionClasses", "Anything: fixed price lines ignore it")
    c = only_contract(book)
    assert line(c, "L1").classes == {TxnClass.TIME, TxnClass.FEE, TxnClass.EXPENSE}
    assert line(c, "L2").classes == set(TxnClass)


def test_an_unknown_transaction_class_on_a_line_is_rejected():
    book = put(minimal_rows(), "ContractLines", 2, "TransactionClasses", "Time, Travel")
    rejects(
        book,
        'ContractLines!E2: TransactionClasses "Time, Travel": "Travel" is not one of '
        "Time, Expense, Material, Fee",
    )


def test_not_to_exceed_is_only_for_time_and_material_lines_and_not_negative():
    book = put(minimal_rows(), "ContractLines", 4, "NotToExceed", 100)
    put(book, "ContractLines", 3, "NotToExceed", -0.01)
    rejects(
        book,
        "ContractLines!F3: NotToExceed -0.01 must be 0 or more",
        "ContractLines!F4: NotToExceed applies only to Time and material lines",
    )


def test_duplicate_line_id_in_a_contract_is_rejected():
    book = put(minimal_rows(), "ContractLines", 3, "LineId", "L1")
    problems_found = problems(book)
    assert (
        problems_found[0]
        == 'ContractLines!B3: duplicate LineId "L1" in contract "C1" (first in row 2)'
    )


def test_a_line_of_an_unknown_contract_is_rejected():
    book = minimal_rows()
    add(book, "ContractLines", ContractId="C9", LineId="L1", BillingMethod="Fixed price")
    rejects(book, 'ContractLines!A5: contract "C9" is not on the Contracts sheet')


def test_a_line_with_both_schedule_rows_and_a_generated_schedule_is_rejected():
    book = minimal_rows()
    add(book, "InvoiceSchedule", ContractId="C1", LineId="L1", InvoiceRunDate=D("2020-10-31"))
    rejects(
        book,
        'ContractLines!G2: line "L1" of contract "C1" has InvoiceSchedule rows and a schedule on '
        "the line; use one or the other",
    )


def test_a_time_and_material_line_without_schedule_is_a_warning_not_an_error():
    book = minimal_rows()
    for column in ("Frequency", "RunDay", "FirstRunDate", "LastRunDate"):
        put(book, "ContractLines", 2, column, None)
    result = read(book)
    assert line(result.portfolio.contracts[0], "L1").schedule is None
    assert result.warnings == (
        'ContractLines!B2: line "L1" of contract "C1" has no invoice schedule; '
        "it will never be invoiced",
    )


def test_a_fixed_price_line_with_schedule_columns_is_rejected():
    book = put(minimal_rows(), "ContractLines", 4, "Frequency", "Monthly")
    put(book, "ContractLines", 4, "FirstRunDate", D("2020-10-01"))
    rejects(
        book,
        "ContractLines!G4: Frequency applies only to Time and material lines",
        "ContractLines!I4: FirstRunDate applies only to Time and material lines",
    )


def test_a_schedule_error_points_at_the_column_it_names():
    book = put(minimal_rows(), "ContractLines", 2, "RunDay", "Someday")
    rejects(
        book,
        'ContractLines!H2: RunDay "Someday" is not a day of the month (1-31 or Last) or an ordinal '
        'weekday such as "First Monday"',
    )
    book = put(minimal_rows(), "ContractLines", 2, "FirstRunDate", None)
    rejects(book, "ContractLines!I2: FirstRunDate is required to generate a schedule")


def test_schedule_columns_without_frequency_or_rrule_are_rejected():
    book = put(minimal_rows(), "ContractLines", 2, "Frequency", None)
    rejects(book, "ContractLines!G2: Frequency (or RRule) is required to generate a schedule")


def test_an_rrule_on_the_line_generates_the_schedule():
    book = put(minimal_rows(), "ContractLines", 2, "Frequency", None)
    put(book, "ContractLines", 2, "RunDay", None)
    put(book, "ContractLines", 2, "RRule", "FREQ=WEEKLY;BYDAY=FR")
    schedule = line(only_contract(book), "L1").schedule
    assert isinstance(schedule, GeneratedSchedule) and schedule.rrule is not None
    assert schedule.cutoff_on(D("2020-10-02")) == D("2020-10-01")


# ---- InvoiceSchedule (R4) -----------------------------------------------------------------------


def test_explicit_schedule_rows_are_sorted_by_run_date_with_the_day_before_as_default_cutoff():
    book = minimal_rows()
    book["InvoiceSchedule"][1:] = [
        ["C1", "L2", D("2020-12-07"), None],
        ["C1", "L2", "2020-10-05", "2020-10-05"],
        ["C1", "L2", D("2020-11-02"), D("2020-10-31")],
    ]
    assert line(only_contract(book), "L2").schedule == ExplicitSchedule(
        (
            ScheduleRow(D("2020-10-05"), D("2020-10-05")),
            ScheduleRow(D("2020-11-02"), D("2020-10-31")),
            ScheduleRow(D("2020-12-07"), D("2020-12-06")),
        )
    )


def test_a_cutoff_after_the_run_date_is_rejected():
    book = put(minimal_rows(), "InvoiceSchedule", 2, "TransactionCutoffDate", D("2020-10-06"))
    rejects(
        book,
        "InvoiceSchedule!D2: TransactionCutoffDate 2020-10-06 is after InvoiceRunDate 2020-10-05",
    )


def test_the_same_run_date_twice_on_one_line_is_rejected():
    book = put(minimal_rows(), "InvoiceSchedule", 3, "InvoiceRunDate", "2020-10-05")
    put(book, "InvoiceSchedule", 3, "TransactionCutoffDate", None)
    rejects(
        book,
        'InvoiceSchedule!C3: line "L2" of contract "C1" already has run date 2020-10-05 (row 2)',
    )


def test_schedule_rows_must_name_an_existing_time_and_material_line():
    book = minimal_rows()
    add(book, "InvoiceSchedule", ContractId="C1", LineId="L3", InvoiceRunDate=D("2020-10-05"))
    add(book, "InvoiceSchedule", ContractId="C1", LineId="L9", InvoiceRunDate=D("2020-10-05"))
    add(book, "InvoiceSchedule", ContractId="C2", LineId="L2", InvoiceRunDate=D("2020-10-05"))
    rejects(
        book,
        'InvoiceSchedule!B4: line "L3" of contract "C1" is Fixed price; invoice schedules are for '
        "Time and material lines",
        'InvoiceSchedule!B5: line "L9" is not a line of contract "C1"',
        'InvoiceSchedule!A6: contract "C2" is not on the Contracts sheet',
    )


# ---- Milestones (R6) ----------------------------------------------------------------------------


def test_a_milestone_must_name_a_fixed_price_line():
    book = put(minimal_rows(), "Milestones", 2, "LineId", "L1")
    rejects(
        book,
        'Milestones!B2: line "L1" of contract "C1" is Time and material; milestones are for Fixed '
        "price lines",
    )


@pytest.mark.parametrize(("amount", "shown"), [(0, "0"), (-5, "-5")])
def test_a_milestone_amount_must_be_more_than_zero(amount, shown):
    book = put(minimal_rows(), "Milestones", 2, "Amount", amount)
    rejects(book, f"Milestones!F2: Amount {shown} must be more than 0")


def test_a_milestone_id_is_unique_within_its_contract_and_ready_defaults_to_no():
    book = minimal_rows()
    add(
        book,
        "Milestones",
        ContractId="C1",
        LineId="L3",
        MilestoneId="M2",
        MilestoneDate=D("2020-11-01"),
        Amount=1,
    )
    assert only_contract(book).milestones[1].ready is False
    add(
        book,
        "Milestones",
        ContractId="C1",
        LineId="L3",
        MilestoneId="M1",
        MilestoneDate=D("2020-11-01"),
        Amount=1,
    )
    rejects(book, 'Milestones!C4: duplicate MilestoneId "M1" in contract "C1" (first in row 2)')


def test_a_fixed_price_line_without_milestones_is_a_warning():
    book = minimal_rows()
    del book["Milestones"]
    assert read(book).warnings == (
        'ContractLines!B4: line "L3" of contract "C1" has no milestones; it will never be invoiced',
    )


# ---- Transactions (W8, W9) ----------------------------------------------------------------------


def test_a_transaction_id_is_unique_across_the_workbook():
    book = minimal_rows()
    book["Contracts"].append(["C2", "Other", "EUR", None])
    add(book, "Customers", ContractId="C2", CustomerId="K", SplitPercent=100)
    add(book, "ContractLines", ContractId="C2", LineId="L1", BillingMethod="T&M")
    add(
        book,
        "Transactions",
        TransactionId="T1",
        ContractId="C2",
        LineId="L1",
        Class="Fee",
        Date=D("2020-10-02"),
        Amount=1,
    )
    result = problems(book)
    assert result == ['Transactions!A5: duplicate TransactionId "T1" (first in row 2)']


def test_a_transaction_must_name_an_existing_time_and_material_line():
    book = minimal_rows()
    put(book, "Transactions", 2, "LineId", "L3")
    put(book, "Transactions", 3, "LineId", "L9")
    put(book, "Transactions", 4, "ContractId", "C9")
    rejects(
        book,
        'Transactions!C2: line "L3" of contract "C1" is Fixed price; transactions are for Time and '
        "material lines",
        'Transactions!C3: line "L9" is not a line of contract "C1"',
        'Transactions!B4: contract "C9" is not on the Contracts sheet',
    )


def test_a_transaction_class_must_be_one_the_line_bills():
    book = put(minimal_rows(), "Transactions", 3, "Class", "Material")
    put(book, "Transactions", 4, "Class", "Travel")
    rejects(
        book,
        'Transactions!D3: line "L1" of contract "C1" does not bill Material '
        "(it bills Time, Expense)",
        'Transactions!D4: Class "Travel" is not one of Time, Expense, Material, Fee',
    )


def test_transaction_class_is_case_insensitive():
    book = put(minimal_rows(), "Transactions", 2, "Class", " time ")
    assert txn(only_contract(book), "T1").txn_class is TxnClass.TIME


def test_a_transaction_needs_quantity_and_unit_price_or_amount():
    book = minimal_rows()
    put(book, "Transactions", 2, "UnitPrice", None)
    put(book, "Transactions", 3, "Amount", None)
    put(book, "Transactions", 4, "Quantity", None)
    put(book, "Transactions", 4, "Amount", None)
    rejects(
        book,
        "Transactions!I2: UnitPrice is required with Quantity when Amount is blank",
        "Transactions!J3: give Quantity and UnitPrice, or Amount",
        "Transactions!H4: Quantity is required with UnitPrice when Amount is blank",
    )


def test_amount_is_quantity_times_unit_price_rounded_half_up_to_the_currency():
    book = put(minimal_rows(), "Transactions", 2, "Quantity", 3)
    put(book, "Transactions", 2, "UnitPrice", 0.125)
    put(book, "Transactions", 3, "Quantity", 2)  # Amount given with Quantity only: Amount rules
    c = only_contract(book)
    assert txn(c, "T1").amount == Decimal("0.38")
    assert (txn(c, "T2").amount, txn(c, "T2").quantity) == (Decimal("99.90"), Decimal(2))


def test_quantity_unit_price_and_amount_all_given_must_agree():
    book = put(minimal_rows(), "Transactions", 4, "Amount", 7.49)
    rejects(book, "Transactions!J4: Amount 7.49 does not match Quantity × UnitPrice = 7.50")


def test_quantity_must_be_positive_and_unit_price_and_amount_not_negative():
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", 0)
    put(book, "Transactions", 3, "Amount", -1)
    put(book, "Transactions", 4, "UnitPrice", -2.5)
    put(book, "Transactions", 4, "Amount", None)
    rejects(
        book,
        "Transactions!H2: Quantity 0 must be more than 0",
        "Transactions!J3: Amount -1 must be 0 or more",
        "Transactions!I4: UnitPrice -2.5 must be 0 or more",
    )


def test_a_zero_amount_transaction_is_allowed_as_non_chargeable():
    book = put(minimal_rows(), "Transactions", 3, "Amount", 0)
    put(book, "Transactions", 2, "UnitPrice", 0)
    c = only_contract(book)
    assert (txn(c, "T1").amount, txn(c, "T2").amount) == (Decimal("0.00"), Decimal("0.00"))


def test_description_and_resource_are_text_kept_as_typed_whatever_the_cell_type():
    book = put(minimal_rows(), "Transactions", 2, "Description", 42)
    put(book, "Transactions", 2, "Resource", Text("  Bob  "))
    put(book, "Transactions", 3, "Description", Text("\t=1+1"))
    c = only_contract(book)
    assert (txn(c, "T1").description, txn(c, "T1").resource) == ("42", "  Bob  ")
    assert txn(c, "T2").description == "\t=1+1"


# ---- no cascades (W10: the root problem, once) --------------------------------------------------


def test_rows_of_a_contract_with_a_bad_currency_are_checked_at_two_decimals():
    # W12 / issue 13 item 3: one wave; a bad Currency no longer hides the amounts' problems
    # (this test said "report only the currency" before W12).
    book = put(minimal_rows(), "Contracts", 2, "Currency", "Dollars")
    put(book, "Transactions", 3, "Amount", 99.999)
    rejects(
        book,
        'Contracts!C2: Currency "Dollars" is not an active ISO 4217 code',
        "Transactions!J3: Amount 99.999 has more than 2 decimals",
    )


def test_rows_naming_a_contract_whose_id_cell_is_broken_report_only_that_cell():
    book = put(minimal_rows(), "Contracts", 2, "ContractId", "C\t1")
    book = _rename_contract(book, "C\t1")
    found = problems(book)
    assert found[0] == "Contracts!A2: ContractId contains a control character"
    assert all("ContractId contains a control character" in p for p in found)
    assert not any("not on the Contracts sheet" in p for p in found)


def test_transactions_of_a_line_with_a_bad_billing_method_report_only_the_line():
    book = put(minimal_rows(), "ContractLines", 2, "BillingMethod", "Hourly")
    put(book, "Transactions", 2, "Class", "Fee")
    rejects(
        book, 'ContractLines!D2: BillingMethod "Hourly" is not "Time and material" or "Fixed price"'
    )


def test_a_sheet_missing_a_required_column_reports_that_column_and_not_every_reference_to_it():
    book = drop_column(minimal_rows(), "ContractLines", "LineId")
    rejects(book, 'ContractLines!A1: required column "LineId" is missing')


def test_a_bad_split_does_not_also_report_the_sum():
    book = put(minimal_rows(), "Customers", 3, "SplitPercent", "forty")
    rejects(book, 'Customers!D3: SplitPercent "forty" is not a plain decimal number such as 1234.5')


def _with_error_cells(data: bytes, sheet_member: str, cells: dict[str, str]) -> bytes:
    """Rewrite cells of one sheet part as Excel error cells (t="e"), as Excel saves #N/A."""
    import re

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename == sheet_member:
                for ref, text in cells.items():
                    body, n = re.subn(
                        rb'<c r="' + ref.encode() + rb'"[^>]*?(?:/>|>.*?</c>)',
                        b'<c r="' + ref.encode() + b'" t="e"><v>' + text.encode() + b"</v></c>",
                        body,
                    )
                    assert n == 1, ref
            target.writestr(info, body)
    return out.getvalue()


def test_an_excel_error_cell_is_reported_where_it_is_and_nothing_else_about_it():
    book = minimal_rows()
    data = xlsx(book)  # sheets in order: Contracts, Customers, ContractLines, ... Transactions
    member = f"xl/worksheets/sheet{list(book).index('Transactions') + 1}.xml"
    # T1's Amount is empty (Quantity x UnitPrice) and its Quantity holds #N/A: without the gate's
    # help the parser would read both as blank and report a missing quantity, or worse.
    bad = _with_error_cells(data, member, {"H2": "#N/A", "F3": "#REF!"})
    with pytest.raises(InputRejected) as caught:
        read_workbook(bad)
    assert [str(p) for p in caught.value.problems] == [
        "Transactions!H2: the cell holds the Excel error #N/A; fix the formula or clear the cell",
        "Transactions!F3: the cell holds the Excel error #REF!; fix the formula or clear the cell",
    ]


def test_a_hopeless_workbook_lists_the_first_thousand_problems_and_counts_the_rest(monkeypatch):
    # The cap (L3) on its own: W12's summary of repeated problems in one column switched off.
    monkeypatch.setattr(loading, "SAME_KIND_LISTED", 10**9)
    book = minimal_rows()
    for i in range(1200):
        book["Transactions"].append(
            [f"X{i}", "C1", "L1", "Time", "31/12/2020", None, None, 1, 1, None, "Yes"]
        )
    with pytest.raises(InputRejected) as caught:
        read_workbook(xlsx(book))
    listed = [str(p) for p in caught.value.problems]
    assert len(listed) == 1001
    assert listed[0] == 'Transactions!E5: date "31/12/2020" is not YYYY-MM-DD or an Excel date'
    assert listed[-1] == "... and 200 more problems not listed"
    assert caught.value.total == 1200


def test_error_cells_with_an_unreadable_workbook_part_are_rejected_not_crashed():
    # Found by make fuzz: a workbook.xml declaring an unknown encoding, plus an error cell.
    book = minimal_rows()
    member = f"xl/worksheets/sheet{list(book).index('Transactions') + 1}.xml"
    data = _with_error_cells(xlsx(book), member, {"H2": "#N/A"})
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename == "xl/workbook.xml":
                assert not body.startswith(b"<?xml")
                body = b'<?xml version="1.0" encoding="UTF-a"?>' + body
            target.writestr(info, body)
    with pytest.raises((InputRejected, UploadRejected)):
        read_workbook(out.getvalue())
