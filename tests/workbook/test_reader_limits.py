"""The reader bounds what it computes and what it keeps (SPEC L4, L5): a schedule cell that would
cost a run seconds or gigabytes, a Quantity × UnitPrice over the number limit and a text longer
than Table Storage holds are each a ``Sheet!Cell: message`` problem, never a crash."""

from __future__ import annotations

import io
import zipfile
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from invoicing.errors import InputRejected
from invoicing.workbook.reader import read_workbook
from tests.core.test_schedule import HOSTILE_TIMES
from tests.support.workbooks import Book, Text, add, minimal_rows, put, xlsx

M = 32_767  # Excel's own cell limit; Table Storage holds 32,768 UTF-16 units in a string
EMOJI = "🙂"  # outside the BMP: two UTF-16 units


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def problems(book: Book, texts: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(InputRejected) as caught:
        read_workbook(long_text_xlsx(book, texts or {}))
    return [str(p) for p in caught.value.problems]


def long_text_xlsx(book: Book, texts: dict[str, str]) -> bytes:
    """``xlsx(book)`` with each marker cell's shared string replaced by its text. openpyxl cuts
    any text to 32,767 code points when it writes a cell; other producers (and hand-made files)
    do not, and the reader must not rely on it."""
    data = xlsx(book)
    if not texts:
        return data
    out = io.BytesIO()
    replaced = set()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            if info.filename.startswith("xl/") and info.filename.endswith(".xml"):
                xml = body.decode("utf-8")
                for marker, text in texts.items():
                    if f">{marker}<" in xml:
                        xml = xml.replace(f">{marker}<", f">{text}<")
                        replaced.add(marker)
                body = xml.encode("utf-8")
            zout.writestr(info, body, compress_type=zipfile.ZIP_DEFLATED)
    assert replaced == set(texts)
    return out.getvalue()


def exact_amount(qty: str, price: str) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(qty) * Decimal(price)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def only_contract(book: Book):
    (contract,) = read_workbook(xlsx(book)).portfolio.contracts
    return contract


def txn(contract, transaction_id: str):
    return next(t for t in contract.transactions if t.transaction_id == transaction_id)


# ---- RRule cost (L5) ----------------------------------------------------------------------------


def rrule_book(*rules: str) -> Book:
    book = minimal_rows()
    for n, rule in enumerate(rules):
        add(
            book,
            "ContractLines",
            ContractId="C1",
            LineId=f"R{n}",
            BillingMethod="Time and material",
            FirstRunDate="2020-01-01",
            RRule=rule,
        )
    return book


def test_costly_rrules_are_problems_at_their_rrule_cells():
    book = rrule_book(
        HOSTILE_TIMES,
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY",
        "FREQ=MONTHLY;COUNT=500",
        "FREQ=WEEKLY;BYDAY=FR",  # fine
    )
    assert problems(book) == [
        f'ContractLines!K5: RRule "{HOSTILE_TIMES[:77]}..." has BYHOUR, BYMINUTE, BYSECOND: a '
        "schedule runs at most daily, so BYHOUR, BYMINUTE and BYSECOND are not allowed",
        'ContractLines!K6: RRule "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30" has no occurrence within '
        "ten years of FirstRunDate 2020-01-01",
        'ContractLines!K7: RRule "FREQ=HOURLY" runs more often than daily; a schedule needs '
        "FREQ=DAILY, WEEKLY, MONTHLY or YEARLY",
        'ContractLines!K8: RRule "FREQ=MONTHLY;COUNT=500" has COUNT=500, more occurrences than it '
        "has within ten years of FirstRunDate 2020-01-01; end it with UNTIL or LastRunDate instead",
    ]


def test_a_cheap_rrule_still_generates_the_schedule():
    book = rrule_book("FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1;COUNT=2")
    (line,) = [x for x in only_contract(book).lines if x.line_id == "R0"]
    assert [d for d in _run_dates(line.schedule, "2020-01-01", "2020-12-31")] == [
        "2020-01-31",
        "2020-02-28",
    ]


def _run_dates(schedule, start: str, end: str) -> list[str]:
    from datetime import date

    from invoicing.schedule import run_dates

    lo, hi = date.fromisoformat(start), date.fromisoformat(end)
    return [r.run_date.isoformat() for r in run_dates(schedule, lo, hi)]


# ---- Quantity × UnitPrice over the number limit (L5) --------------------------------------------


def test_a_product_over_the_number_limit_is_a_problem_at_the_quantity_cell():
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", 99999999999999)
    put(book, "Transactions", 2, "UnitPrice", 99999999999999)
    put(book, "Transactions", 3, "Quantity", Text("99999999999999"))  # with an Amount too
    put(book, "Transactions", 3, "UnitPrice", Text("99999999999999"))
    put(book, "Transactions", 3, "Amount", 5)
    message = (
        "Quantity × UnitPrice = 99999999999999 × 99999999999999 is too large "
        "(amounts are below 10^15)"
    )
    assert problems(book) == [f"Transactions!H2: {message}", f"Transactions!H3: {message}"]


def test_a_product_that_rounds_up_to_the_limit_is_refused_and_one_just_below_is_exact():
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", Text("999999999999999.995"))
    put(book, "Transactions", 2, "UnitPrice", 1)
    assert problems(book) == [
        "Transactions!H2: Quantity × UnitPrice = 999999999999999.995 × 1 is too large "
        "(amounts are below 10^15)"
    ]
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", Text("999999999.123456"))
    put(book, "Transactions", 2, "UnitPrice", Text("999999.654321"))
    assert txn(only_contract(book), "T1").amount == exact_amount(
        "999999999.123456", "999999.654321"
    )


def test_the_reader_computes_in_its_own_decimal_context():
    book = minimal_rows()
    put(book, "Transactions", 2, "Quantity", Text("123456789.123456"))
    put(book, "Transactions", 2, "UnitPrice", Text("7654321.654321"))
    with localcontext() as ctx:
        ctx.prec = 6  # a caller's context must neither round nor raise inside the reader
        amount = txn(only_contract(book), "T1").amount
    assert amount == exact_amount("123456789.123456", "7654321.654321")
    assert amount == Decimal("944977974360610.57")


def test_a_float_that_shows_as_the_limit_is_too_large():
    book = put(minimal_rows(), "Transactions", 3, "Amount", 999999999999999.9)
    assert problems(book) == ["Transactions!J3: Amount 1e+15 is too large"]


# ---- text the store cannot hold (L4) ------------------------------------------------------------


def too_long(units: int) -> str:
    return f"text is {units:,} characters (UTF-16 units) long; at most {M:,}"


def test_a_description_of_20000_emoji_is_a_problem_at_its_cell():
    book = put(minimal_rows(), "Transactions", 2, "Description", EMOJI * 20_000)
    assert problems(book) == [f"Transactions!F2: {too_long(40_000)}"]


def test_text_at_the_limit_is_kept_and_one_unit_more_is_refused():
    at_limit = {
        "plain": "d" * M,
        "emoji": EMOJI * (M // 2) + "e",  # 16,383 emoji and one letter: 32,767 units
        "cjk": "契" * M,  # one unit each (three UTF-8 bytes)
    }
    for text in at_limit.values():
        assert utf16_units(text) == M
    book = minimal_rows()
    put(book, "Transactions", 2, "Description", at_limit["plain"])
    put(book, "Transactions", 3, "Description", at_limit["emoji"])
    put(book, "Transactions", 4, "Resource", at_limit["cjk"])
    contract = only_contract(book)
    assert txn(contract, "T1").description == at_limit["plain"]
    assert txn(contract, "T2").description == at_limit["emoji"]
    assert txn(contract, "T3").resource == at_limit["cjk"]
    book = minimal_rows()
    put(book, "Transactions", 2, "Description", "LONG-PLAIN")
    put(book, "Transactions", 3, "Description", EMOJI * (M // 2 + 1))
    put(book, "Transactions", 4, "Resource", "LONG-CJK")
    assert problems(book, {"LONG-PLAIN": "d" * (M + 1), "LONG-CJK": "契" * M + "!"}) == [
        f"Transactions!F2: {too_long(M + 1)}",
        f"Transactions!F3: {too_long(M + 1)}",
        f"Transactions!G4: {too_long(M + 1)}",
    ]


def test_every_stored_name_is_bounded_like_descriptions():
    long = EMOJI * 16_400  # 32,800 units in 16,400 characters
    book = minimal_rows()
    put(book, "Contracts", 2, "ContractName", long)
    put(book, "Customers", 2, "CustomerName", long)
    put(book, "ContractLines", 3, "LineName", long)
    put(book, "Milestones", 2, "MilestoneName", long)
    put(book, "Transactions", 2, "Resource", long)
    assert problems(book) == [
        f"Contracts!B2: {too_long(32_800)}",
        f"Customers!C2: {too_long(32_800)}",
        f"ContractLines!C3: {too_long(32_800)}",
        f"Milestones!D2: {too_long(32_800)}",
        f"Transactions!G2: {too_long(32_800)}",
    ]


def test_a_long_text_is_reported_with_the_other_problems_of_its_row():
    book = minimal_rows()
    put(book, "Transactions", 2, "Description", "LONG")
    put(book, "Transactions", 2, "Quantity", -1)
    assert problems(book, {"LONG": "x" * (M + 10)}) == [
        "Transactions!F2: " + too_long(M + 10),
        "Transactions!H2: Quantity -1 must be more than 0",
    ]
