"""Request values shared by the CLI and HTTP (L6): strict dates, spans, status, Accept."""

from __future__ import annotations

from datetime import date

import pytest

from invoicing.errors import BadRequest, UploadRejected
from invoicing.model import Status
from invoicing.requests import (
    CLI,
    HTTP,
    check_upload_size,
    date_bounds,
    date_span,
    declared_length,
    media_ranges,
    negotiate,
    optional_date,
    parse_date,
    parse_status,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JSON = "application/json"
OFFERED = (XLSX, JSON)


# ---- dates ---------------------------------------------------------------------------------


def test_a_date_is_exactly_yyyy_mm_dd():
    assert parse_date("2020-10-05", "date") == date(2020, 10, 5)
    assert parse_date("1900-01-01", "date") == date(1900, 1, 1)
    assert parse_date("9899-12-31", "date") == date(9899, 12, 31)


@pytest.mark.parametrize(
    "text",
    [
        "20201005",  # ISO basic form: date.fromisoformat takes it since Python 3.11
        "2020-W41-1",  # ISO week date: likewise
        "2020-W41",
        "2020-10-5",
        "2020-1-05",
        "2020-279",  # ordinal date
        "２０２０-10-05",  # fullwidth digits match a Unicode \d
        "2020-10-05T00:00",
        "2020-10-05 ",
        " 2020-10-05",
        "2020-10-05\n",
        "2020/10/05",
        "05/10/2020",
        "2020-02-30",
        "2020-13-01",
        "yesterday",
    ],
)
def test_anything_else_is_refused_naming_the_parameter(text):
    with pytest.raises(BadRequest) as caught:
        parse_date(text, "--date")
    assert str(caught.value).startswith('--date "')
    assert "is not a date in YYYY-MM-DD form" in str(caught.value)


def test_a_date_outside_the_run_date_bounds_is_refused():
    with pytest.raises(BadRequest, match=r"^to 9999-12-31 is outside 1900-01-01 to 9899-12-31$"):
        parse_date("9999-12-31", "to")
    with pytest.raises(BadRequest, match="outside"):
        parse_date("1899-12-31", "to")


def test_a_long_wrong_value_is_shortened_in_the_message():
    with pytest.raises(BadRequest) as caught:
        parse_date("x" * 10_000, "date")
    assert len(str(caught.value)) < 100


@pytest.mark.parametrize("text", [None, "", "  "])
def test_an_absent_or_blank_optional_date_is_none(text):
    assert optional_date(text, "from") is None


def test_a_span_is_one_date_or_from_and_to():
    assert date_span("2020-10-05", None, None, HTTP, required=True) == (
        date(2020, 10, 5),
        date(2020, 10, 5),
    )
    assert date_span(None, "2020-10-01", "2020-10-31", CLI, required=True) == (
        date(2020, 10, 1),
        date(2020, 10, 31),
    )
    assert date_span(None, None, None, CLI, required=False) is None
    assert date_span("", "", "", HTTP, required=False) is None


@pytest.mark.parametrize(
    ("names", "given", "message"),
    [
        (CLI, (None, None, None), "give --date D or --from A --to B"),
        (HTTP, (None, None, None), "give ?date=YYYY-MM-DD or ?from=YYYY-MM-DD&to=YYYY-MM-DD"),
        (CLI, ("2020-10-05", "2020-10-01", None), "give either --date or --from/--to, not both"),
        (HTTP, ("2020-10-05", None, "2020-10-09"), "give either date or from/to, not both"),
        (CLI, (None, "2020-10-05", None), "--from and --to go together"),
        (HTTP, (None, None, "2020-10-05"), "from and to go together"),
        (CLI, (None, "2020-10-05", "2020-10-01"), "--to 2020-10-01 is before --from 2020-10-05"),
        (HTTP, (None, "2020-10-05", "20201009"), 'to "20201009" is not a date'),
        (HTTP, ("2020-W41-1", None, None), 'date "2020-W41-1" is not a date'),
    ],
)
def test_a_wrong_span_says_what_is_wrong_in_the_callers_words(names, given, message):
    with pytest.raises(BadRequest) as caught:
        date_span(*given, names, required=True)
    assert message in str(caught.value)


def test_filter_bounds_may_each_be_open_but_not_reversed():
    assert date_bounds(None, None, HTTP) == (None, None)
    assert date_bounds("2020-10-01", None, HTTP) == (date(2020, 10, 1), None)
    assert date_bounds(None, "2020-10-01", CLI) == (None, date(2020, 10, 1))
    with pytest.raises(BadRequest) as caught:
        date_bounds("2020-10-10", "2020-10-01", HTTP)
    assert str(caught.value) == "to 2020-10-01 is before from 2020-10-10"
    with pytest.raises(BadRequest, match='--from "20201001"'):
        date_bounds("20201001", None, CLI)


def test_status_is_one_of_the_three_in_any_case():
    assert parse_status("draft", "status") is Status.DRAFT
    assert parse_status(" Confirmed ", "status") is Status.CONFIRMED
    assert parse_status("CANCELLED", "--status") is Status.CANCELLED
    assert parse_status(None, "status") is None
    assert parse_status("", "status") is None
    with pytest.raises(BadRequest) as caught:
        parse_status("Paid", "status")
    assert str(caught.value) == 'status "Paid" is not one of Draft, Confirmed, Cancelled'


# ---- Accept (RFC 9110 §12.5.1) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, XLSX),
        ("", XLSX),
        ("*/*", XLSX),
        (JSON, JSON),
        ("APPLICATION/JSON", JSON),
        (f"application/json;q=0, {XLSX}", XLSX),  # the substring test answered JSON here
        (f"application/json; q=0, {XLSX}", XLSX),
        (f"application/json;Q=0.000, {XLSX}", XLSX),
        (f"application/json;q=0.9, {XLSX};q=1", XLSX),
        (f"{XLSX};q=0.5, application/json;q=0.6", JSON),
        (f"application/json, {XLSX}", XLSX),  # tie: the default
        (f"{XLSX}, application/json", XLSX),
        (f"{XLSX};q=0.8, application/json;q=0.8", XLSX),
        ("application/*;q=0.5, application/json", JSON),
        ("application/*", XLSX),
        ("application/json;q=0, */*", XLSX),
        (f"{XLSX};q=0, */*", JSON),
        (f"{XLSX};q=0, application/*;q=0.2", JSON),
        # a type named outright beats one reached through a wildcard at the same q
        ("application/json, text/plain, */*", JSON),  # axios' default
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", XLSX),  # browsers
        ("text/csv", XLSX),  # nothing we offer is acceptable: the default, not 406
        (f"application/json;q=0, {XLSX};q=0", XLSX),
        # the most specific range decides, even when a wider one has a higher q
        ("application/json;q=0.1, application/*;q=1", XLSX),
        ('application/json;profile="a,b;c";q=1, */*;q=0.1', JSON),
        # malformed elements are ignored
        ("application/json;q=2", XLSX),
        ("application/json;q=0.0001", XLSX),
        ("application/json;q=x", XLSX),
        ("*/json", XLSX),
        ("json", XLSX),
        (",,, ;q=1", XLSX),
    ],
)
def test_accept_is_negotiated_with_q_values(accept, chosen):
    assert negotiate(accept, OFFERED) == chosen


def test_media_ranges_keep_their_weights_and_parameters():
    ranges = media_ranges('text/html;level=1;q=0.7, text/*;q=0.3, */*;q=0.5, a/b;x="1,2"')
    assert [(r.type, r.subtype, r.params, r.q) for r in ranges] == [
        ("text", "html", 1, 0.7),
        ("text", "*", 0, 0.3),
        ("*", "*", 0, 0.5),
        ("a", "b", 1, 1.0),
    ]


# ---- the upload cap (L1) ------------------------------------------------------------------------


def test_an_upload_at_the_cap_passes_and_one_byte_over_is_413():
    check_upload_size(1000, 1000)
    with pytest.raises(UploadRejected) as caught:
        check_upload_size(1001, 1000)
    assert caught.value.status == 413
    assert str(caught.value) == "the upload is 1,001 bytes; the limit is 1,000 bytes"


def test_the_cap_message_names_the_upload_and_says_when_the_size_is_not_known():
    with pytest.raises(UploadRejected, match=r"^book\.xlsx is 2,000 bytes; the limit is 1,000"):
        check_upload_size(2000, 1000, what="book.xlsx")
    with pytest.raises(UploadRejected) as caught:
        check_upload_size(1001, 1000, exact=False)
    assert str(caught.value) == "the upload is over the limit of 1,000 bytes"


def test_a_declared_size_may_carry_an_allowance_beyond_the_cap():
    check_upload_size(1500, 1000, allowance=500)
    with pytest.raises(UploadRejected, match="is 1,501 bytes; the limit is 1,000 bytes"):
        check_upload_size(1501, 1000, allowance=500)


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("1234", 1234),
        ("0", 0),
        (None, None),
        ("", None),
        ("-1", None),
        (" 12", None),
        ("1e3", None),
        ("²", None),
        ("١٢", None),
    ],
)
def test_a_declared_content_length_is_ascii_digits_or_nothing(text, length):
    assert declared_length(text) == length
