"""The Azure Functions app (SPEC H): bindings from the indexed app, every status code of the
H table from the real registered handlers against real Azurite."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from invoicing.settings import Settings
from invoicing.storage.lease import lock_blob
from tests.support.invoices import read_invoice_workbook
from tests.support.workbooks import minimal_rows, put, xlsx

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "templates" / "sample-adatum.xlsx").read_bytes()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

EXPECTED = [
    # name, trigger, route, methods, auth level
    ("daily_invoice_run", "timerTrigger", None, None, None),
    ("health", "httpTrigger", "health", ["GET"], "ANONYMOUS"),
    ("template", "httpTrigger", "template", ["GET"], "FUNCTION"),
    ("preview", "httpTrigger", "preview", ["POST"], "FUNCTION"),
    ("imports", "httpTrigger", "imports", ["POST"], "FUNCTION"),
    ("runs", "httpTrigger", "runs", ["POST"], "ADMIN"),
    ("list_invoices", "httpTrigger", "invoices", ["GET"], "FUNCTION"),
    ("get_invoice", "httpTrigger", "invoices/{id}", ["GET"], "FUNCTION"),
    ("confirm_invoice", "httpTrigger", "invoices/{id}/confirm", ["POST"], "FUNCTION"),
    ("cancel_invoice", "httpTrigger", "invoices/{id}/cancel", ["POST"], "FUNCTION"),
    ("invoice_contracts", "queueTrigger", None, None, None),
    ("decisions", "httpTrigger", "decisions", ["POST"], "FUNCTION"),
    ("adjust_invoice", "httpTrigger", "invoices/{id}/adjust", ["POST"], "FUNCTION"),
    ("credit_invoice", "httpTrigger", "invoices/{id}/credit", ["POST"], "FUNCTION"),
    ("invoice_document", "httpTrigger", "invoices/{id}/document", ["GET"], "FUNCTION"),
]


@pytest.fixture(scope="session")
def indexed():
    """The app's functions as the host indexes them (get_functions works once per app)."""
    import function_app

    functions = function_app.app.get_functions()
    return {f.get_function_name(): (f, json.loads(f.get_function_json())) for f in functions}


@pytest.fixture
def env(monkeypatch, storage_settings: Settings) -> Settings:
    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection or "")
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    monkeypatch.setenv("INVOICE_LEASE_SECONDS", "15")
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    return storage_settings


def call(
    indexed,
    name: str,
    method: str = "GET",
    *,
    params=None,
    route_params=None,
    body: bytes = b"",
    headers=None,
) -> func.HttpResponse:
    function, _ = indexed[name]
    handler = function.get_user_function()
    url = "http://localhost/api/" + (function.get_trigger().route or "")
    request = func.HttpRequest(
        method,
        url,
        headers=headers or {},
        params=params or {},
        route_params=route_params or {},
        body=body,
    )
    return handler(request)


def problem_of(response: func.HttpResponse) -> dict:
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.get_body())
    assert body["status"] == response.status_code
    assert {"type", "title", "status", "detail"} <= set(body)
    return body


def test_functions_names_triggers_routes_methods_and_auth_levels(indexed):
    assert list(indexed) == [name for name, *_ in EXPECTED]
    for name, trigger, route, methods, auth in EXPECTED:
        _, spec = indexed[name]
        binding = spec["bindings"][0]
        assert binding["type"] == trigger
        if trigger == "timerTrigger":
            assert binding["schedule"] == "%INVOICE_RUN_SCHEDULE%"
            assert binding["useMonitor"] is True and binding["runOnStartup"] is False
            continue
        if trigger == "queueTrigger":  # H11: the queue named by a setting, the tables' connection
            assert binding["queueName"] == "%INVOICE_QUEUE%"
            assert binding["connection"] == "INVOICING_STORAGE"
            assert binding["direction"].lower() == "in" and binding["name"] == "msg"
            continue
        assert binding["route"] == route
        assert [m.upper() for m in binding["methods"]] == methods
        assert binding["authLevel"].upper() == auth
        assert spec["bindings"][1]["type"] == "http"


# ---- H2, H3 -----------------------------------------------------------------------------------


def test_health_is_200_when_storage_answers(indexed, env):
    response = call(indexed, "health")
    assert response.status_code == 200
    assert json.loads(response.get_body())["storage"] is True


def test_health_is_503_when_storage_does_not_answer(indexed, monkeypatch):
    monkeypatch.setenv(
        "INVOICING_STORAGE",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",
    )
    response = call(indexed, "health")
    assert response.status_code == 503
    assert json.loads(response.get_body())["storage"] is False


def test_template_is_an_xlsx_attachment(indexed):
    response = call(indexed, "template")
    assert response.status_code == 200
    assert response.mimetype == XLSX
    assert response.headers["Content-Disposition"].startswith('attachment; filename="')
    assert response.get_body()[:4] == b"PK\x03\x04"


# ---- H4 preview ---------------------------------------------------------------------------------


def test_preview_of_a_range_is_the_invoice_workbook(indexed):
    response = call(
        indexed, "preview", "POST", body=SAMPLE, params={"from": "2020-10-01", "to": "2020-11-30"}
    )
    assert response.status_code == 200 and response.mimetype == XLSX
    assert 'filename="invoices-20201001-20201130.xlsx"' in response.headers["Content-Disposition"]
    assert len(read_invoice_workbook(response.get_body())["Invoices"]) == 5


def test_preview_over_http_equals_preview_on_the_command_line(indexed, tmp_path):
    from invoicing.cli import main

    source = tmp_path / "in.xlsx"
    source.write_bytes(SAMPLE)
    out = tmp_path / "cli.xlsx"
    assert (
        main(["preview", str(source), "--from", "2020-10-01", "--to", "2020-11-30", "-o", str(out)])
        == 0
    )
    response = call(
        indexed, "preview", "POST", body=SAMPLE, params={"from": "2020-10-01", "to": "2020-11-30"}
    )
    assert read_invoice_workbook(response.get_body()) == read_invoice_workbook(out.read_bytes())


BOUNDARY = "----invoicingtest"


def multipart_preview(indexed, content: bytes, filename: str | None) -> func.HttpResponse:
    """POST /api/preview?date=2020-10-05 with ``content`` as the multipart field ``file``."""
    disposition = 'form-data; name="file"' + (f'; filename="{filename}"' if filename else "")
    type_line = f"Content-Type: {XLSX}\r\n" if filename else ""
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{type_line}\r\n".encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return call(
        indexed,
        "preview",
        "POST",
        body=body,
        params={"date": "2020-10-05"},
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


def test_preview_accepts_a_multipart_file_field(indexed):
    response = multipart_preview(indexed, SAMPLE, "a.xlsx")
    assert response.status_code == 200
    assert len(read_invoice_workbook(response.get_body())["Invoices"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"date": "9999-12-31"},
        {"date": "1899-12-31"},
        {"date": "2020-02-30"},
        {"date": "05/10/2020"},
        {"date": "20201005"},  # L6: date.fromisoformat takes it, we do not
        {"date": "2020-W41-1"},
        {"date": "2020-10-5"},
        {"from": "2020-10-01", "to": "20201031"},
        {"from": "2020-10-05"},
        {"from": "2020-10-05", "to": "2020-10-01"},
        {"date": "2020-10-05", "from": "2020-10-01"},
    ],
)
def test_preview_with_bad_dates_is_400(indexed, params):
    response = call(indexed, "preview", "POST", body=SAMPLE, params=params)
    assert response.status_code == 400
    problem_of(response)


def test_multipart_field_sent_as_text_is_a_400_that_says_so(indexed):
    response = multipart_preview(indexed, b"not a file", None)
    assert response.status_code == 400
    assert "filename" in problem_of(response)["detail"]


def test_preview_over_the_byte_cap_is_413(indexed, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    response = call(indexed, "preview", "POST", body=SAMPLE, params={"date": "2020-10-05"})
    assert response.status_code == 413
    assert "1,000" in problem_of(response)["detail"]


def test_a_declared_content_length_over_the_cap_is_413_before_the_body_is_read(indexed):
    response = call(
        indexed,
        "preview",
        "POST",
        body=SAMPLE,
        params={"date": "2020-10-05"},
        headers={"Content-Length": str(200 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert problem_of(response)["detail"] == (
        "the upload is 209,715,200 bytes; the limit is 20,971,520 bytes"
    )


@pytest.mark.parametrize("declared", ["²", "-5", "1e9", "abc"])
def test_a_content_length_that_is_not_a_number_is_ignored_not_a_500(indexed, declared):
    response = call(
        indexed,
        "preview",
        "POST",
        body=SAMPLE,
        params={"date": "2020-10-05"},
        headers={"Content-Length": declared},
    )
    assert response.status_code == 200


def test_a_multipart_file_over_the_cap_is_413(indexed, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    response = multipart_preview(indexed, SAMPLE, "a.xlsx")
    assert response.status_code == 413
    assert problem_of(response)["detail"] == "the upload is over the limit of 1,000 bytes"


@pytest.mark.parametrize(
    "body",
    [b"", b"ContractId,Currency\nC1,USD\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600],
)
def test_preview_of_something_not_xlsx_is_415(indexed, body):
    response = call(indexed, "preview", "POST", body=body, params={"date": "2020-10-05"})
    assert response.status_code == 415
    assert problem_of(response)["detail"]


def test_preview_of_a_workbook_with_errors_is_422_listing_each(indexed):
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", "31/12/2020")
    put(book, "Contracts", 2, "Currency", "XYZ")
    response = call(indexed, "preview", "POST", body=xlsx(book), params={"date": "2020-10-05"})
    assert response.status_code == 422
    errors = problem_of(response)["errors"]
    assert {
        "sheet": "Transactions",
        "cell": "E2",
        "message": 'date "31/12/2020" is not YYYY-MM-DD or an Excel date',
    } in errors
    assert any(e["sheet"] == "Contracts" and e["cell"] == "C2" for e in errors)


# ---- H5 imports ----------------------------------------------------------------------------


def test_import_answers_counts_per_sheet(indexed, env):
    response = call(indexed, "imports", "POST", body=SAMPLE)
    assert response.status_code == 200 and response.mimetype == "application/json"
    first = json.loads(response.get_body())["sheets"]
    assert first["Transactions"]["created"] == 12
    assert first["Transactions"]["unchanged"] == 0
    again = json.loads(call(indexed, "imports", "POST", body=SAMPLE).get_body())["sheets"]
    assert again["Transactions"] == {"created": 0, "updated": 0, "unchanged": 12, "removed": 0}


@pytest.mark.parametrize(("body", "status"), [(b"not a workbook", 415), (b"", 415)])
def test_import_of_a_non_workbook_writes_nothing(indexed, env, body, status):
    response = call(indexed, "imports", "POST", body=body)
    assert response.status_code == status
    problem_of(response)
    assert _invoice_list(indexed) == []


def test_import_of_a_workbook_with_errors_is_422_and_writes_nothing(indexed, env):
    book = minimal_rows()
    put(book, "Transactions", 3, "Quantity", -1)
    response = call(indexed, "imports", "POST", body=xlsx(book))
    assert response.status_code == 422
    assert problem_of(response)["errors"][0]["sheet"] == "Transactions"
    from invoicing import services

    assert services.open_store(Settings.from_env()).contracts() == []


def test_import_over_the_byte_cap_is_413(indexed, env, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    assert call(indexed, "imports", "POST", body=SAMPLE).status_code == 413


# ---- H6 runs, H1 timer --------------------------------------------------------------------------


def test_run_now_answers_the_run_summary(indexed, env):
    call(indexed, "imports", "POST", body=SAMPLE)
    response = call(indexed, "runs", "POST", params={"date": "2020-10-05"})
    assert response.status_code == 200
    summary = json.loads(response.get_body())
    assert summary["dates_run"]
    assert [(e["date"], e["state"]) for e in summary["ledger"]] == [("2020-10-05", "completed")]
    assert len(_invoice_list(indexed)) == 1


def test_run_now_is_409_while_another_run_holds_the_lease(indexed, env):
    blob = lock_blob(
        BlobServiceClient.from_connection_string(env.storage_connection),
        f"{env.table_prefix.lower()}-locks",
    )
    lease = blob.acquire_lease(lease_duration=15)
    try:
        response = call(indexed, "runs", "POST", params={"date": "2020-10-05"})
    finally:
        lease.release()
    assert response.status_code == 409
    assert "lease" in problem_of(response)["detail"].lower()


def test_run_now_with_a_bad_date_is_400(indexed, env):
    assert call(indexed, "runs", "POST", params={"date": "yesterday"}).status_code == 400


@pytest.mark.parametrize(
    ("name", "method", "params", "detail"),
    [
        ("preview", "POST", {"date": "20201005"}, 'date "20201005" is not a date in YYYY-MM-DD'),
        ("preview", "POST", {"from": "2020-W41-1", "to": "2020-10-09"}, 'from "2020-W41-1"'),
        ("runs", "POST", {"date": "20201005"}, 'date "20201005" is not a date in YYYY-MM-DD'),
        ("runs", "POST", {"date": "2020-W41-1"}, 'date "2020-W41-1" is not a date'),
        ("runs", "POST", {"date": "2020-10-5"}, 'date "2020-10-5" is not a date'),
        ("list_invoices", "GET", {"from": "20201001"}, 'from "20201001" is not a date'),
        ("list_invoices", "GET", {"to": "2020-W41-1"}, 'to "2020-W41-1" is not a date'),
        ("list_invoices", "GET", {"status": "Paid"}, 'status "Paid" is not one of Draft'),
    ],
)
def test_dates_are_exactly_yyyy_mm_dd_and_a_400_names_the_parameter(
    indexed, env, name, method, params, detail
):
    response = call(indexed, name, method, params=params, body=SAMPLE)
    assert response.status_code == 400
    assert detail in problem_of(response)["detail"]
    assert _invoice_list(indexed) == []  # nothing was run


def test_a_bad_request_raised_by_a_handler_is_a_400_problem():
    # The mapping every HTTP handler goes through (R19's future run date raises BadRequest).
    from invoicing.errors import BadRequest
    from invoicing.functions.http import handle_errors

    @handle_errors
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        raise BadRequest("run date 2999-01-01 is after today")

    response = handler(func.HttpRequest("POST", "http://localhost/api/runs", body=b""))
    assert response.status_code == 400
    body = problem_of(response)
    assert body["detail"] == "run date 2999-01-01 is after today"
    assert body["title"] == "Bad request"


def test_two_timer_invocations_at_once_one_runs_the_other_logs_the_held_lease(
    indexed, env, monkeypatch, caplog
):
    call(indexed, "imports", "POST", body=SAMPLE)
    monkeypatch.setenv("INVOICE_TIMEZONE", "UTC")
    timer = indexed["daily_invoice_run"][0].get_user_function()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def fire(past_due: bool) -> None:
        try:
            barrier.wait()
            timer(TimerRequest(past_due=past_due))
        except BaseException as exc:  # the test fails on any exception from either invocation
            errors.append(exc)

    with caplog.at_level(logging.INFO, logger="invoicing"):
        threads = [threading.Thread(target=fire, args=(flag,)) for flag in (False, True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    messages = [r.getMessage() for r in caplog.records]
    done = [m for m in messages if "done:" in m]
    held = [m for m in messages if "skipped" in m and "lease" in m.lower()]
    # Either the two overlapped (one ran, one saw the lease) or the second found today done.
    assert len(done) + len(held) == 2 and len(done) >= 1


# ---- H7-H10 --------------------------------------------------------------------------------


def test_in_queue_mode_a_run_enqueues_and_the_queue_function_invoices_what_the_sender_wrote(
    indexed, env, monkeypatch
):
    """H6 then H11 (S9): the run answers what it enqueued; the real handler, given each message as
    the host gives it (the base64 text the SDK stored, decoded), invoices and completes the
    ledger; a message that is not work raises, so the host retries it and then poisons it."""
    from invoicing import services

    queue_name = "q" + uuid.uuid4().hex[:12]
    monkeypatch.setenv("INVOICE_DISPATCH", "queue")
    monkeypatch.setenv("INVOICE_QUEUE", queue_name)
    call(indexed, "imports", "POST", body=SAMPLE)
    response = call(indexed, "runs", "POST", params={"date": "2020-10-05"})
    assert response.status_code == 200
    summary = json.loads(response.get_body())
    assert summary["dispatch"] == "queue" and summary["queue"] == queue_name
    assert summary["contracts_queued"] >= 1
    assert _invoice_list(indexed) == []
    raw = QueueClient.from_connection_string(env.storage_connection or "", queue_name)
    messages = list(raw.receive_messages(max_messages=32, visibility_timeout=60))
    assert len(messages) == summary["contracts_queued"]
    handler = indexed["invoice_contracts"][0].get_user_function()
    for message in messages:
        body = base64.b64decode(message.content)  # what the host hands the function
        assert json.loads(body)["dates"] == ["2020-10-05"]
        handler(QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count))
    assert len(_invoice_list(indexed)) == 1
    ledger = services.ledger_entries(services.open_store(env))
    states = [(e["date"], e["state"], e["invoices"]) for e in ledger]
    assert states == [("2020-10-05", "completed", 1)]
    with pytest.raises(ValueError, match="not a work message"):
        handler(QueueMessage(id="x", body=b"not json", dequeue_count=1))


def _invoice_list(indexed) -> list[dict]:
    response = call(indexed, "list_invoices", headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    return json.loads(response.get_body())["invoices"]


@pytest.fixture
def drafts(indexed, env) -> list[dict]:
    call(indexed, "imports", "POST", body=SAMPLE)
    response = call(indexed, "runs", "POST", params={"date": "2020-10-05"})
    assert response.status_code == 200
    call(indexed, "runs", "POST", params={"date": "2020-10-19"})
    return _invoice_list(indexed)


def test_invoice_list_is_an_xlsx_by_default_and_json_on_request(indexed, drafts):
    response = call(indexed, "list_invoices", params={"from": "2020-10-01", "to": "2020-10-10"})
    assert response.status_code == 200 and response.mimetype == XLSX
    sheets = read_invoice_workbook(response.get_body())
    assert [row[0] for row in sheets["Invoices"]] == [drafts[0]["InvoiceId"]]
    assert [d["InvoiceDate"] for d in drafts] == ["2020-10-05", "2020-10-19"]


ACCEPTED = [
    # Accept header, the answer (L6: q-values, RFC 9110; not a substring test)
    (None, XLSX),
    ("*/*", XLSX),
    ("application/json", "application/json"),
    (f"application/json;q=0, {XLSX}", XLSX),  # the substring test answered JSON
    (f"application/json;q=0.9, {XLSX};q=1", XLSX),
    (f"{XLSX};q=0.5, application/json", "application/json"),
    (f"application/json, {XLSX}", XLSX),  # a tie: the default
    ("application/json, text/plain, */*", "application/json"),
    ("text/html", XLSX),  # nothing we offer: the default rather than 406
]


def test_the_invoice_list_negotiates_accept_with_q_values(indexed, drafts):
    for accept, expected in ACCEPTED:
        headers = {} if accept is None else {"Accept": accept}
        response = call(indexed, "list_invoices", headers=headers)
        assert (response.status_code, response.mimetype) == (200, expected), accept
        if expected == XLSX:
            assert len(read_invoice_workbook(response.get_body())["Invoices"]) == len(drafts)
        else:
            assert len(json.loads(response.get_body())["invoices"]) == len(drafts)


@pytest.mark.parametrize(
    "params",
    [{"from": "last week"}, {"status": "Paid"}, {"from": "2020-10-10", "to": "2020-10-01"}],
)
def test_invoice_list_with_bad_filters_is_400(indexed, env, params):
    assert call(indexed, "list_invoices", params=params).status_code == 400


def test_get_invoice_answers_lines_and_details(indexed, drafts):
    invoice_id = drafts[0]["InvoiceId"]
    response = call(indexed, "get_invoice", route_params={"id": invoice_id})
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert body["InvoiceId"] == invoice_id and body["Status"] == "Draft"
    assert [ln["ContractLineId"] for ln in body["Lines"]] == [
        "PROTOTYPE",
        "IMPLEMENTATION",
        "EXPENSES",
    ]
    assert body["Amount"] == "7150.00"


def test_unknown_invoice_is_404_everywhere(indexed, env):
    for name, method in (
        ("get_invoice", "GET"),
        ("confirm_invoice", "POST"),
        ("cancel_invoice", "POST"),
    ):
        response = call(indexed, name, method, route_params={"id": "INV-20200101-0000000000"})
        assert response.status_code == 404
        problem_of(response)


def test_confirm_gives_a_number_and_a_second_confirm_is_409(indexed, drafts):
    invoice_id = drafts[0]["InvoiceId"]
    response = call(indexed, "confirm_invoice", "POST", route_params={"id": invoice_id})
    assert response.status_code == 200
    assert json.loads(response.get_body())["InvoiceNumber"] == "INV-000001"
    again = call(indexed, "confirm_invoice", "POST", route_params={"id": invoice_id})
    assert again.status_code == 409
    problem_of(again)
    cancel = call(indexed, "cancel_invoice", "POST", route_params={"id": invoice_id})
    assert cancel.status_code == 409
    assert "Confirmed" in problem_of(cancel)["detail"]


def test_cancel_a_draft_then_confirming_it_is_409(indexed, drafts):
    invoice_id = drafts[1]["InvoiceId"]
    response = call(indexed, "cancel_invoice", "POST", route_params={"id": invoice_id})
    assert response.status_code == 200
    assert json.loads(response.get_body())["Status"] == "Cancelled"
    assert (
        call(indexed, "confirm_invoice", "POST", route_params={"id": invoice_id}).status_code == 409
    )


def test_bad_settings_fail_at_startup_with_a_clear_message(monkeypatch):
    from invoicing.settings import SettingsError

    monkeypatch.setenv("INVOICE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="INVOICE_TIMEZONE"):
        Settings.from_env()
    monkeypatch.setenv("INVOICE_TIMEZONE", "UTC")
    monkeypatch.setenv("INVOICE_RUN_SCHEDULE", "every day")
    with pytest.raises(SettingsError, match="INVOICE_RUN_SCHEDULE"):
        Settings.from_env()


def test_run_date_is_the_calendar_date_in_the_configured_time_zone():
    from datetime import UTC, datetime

    from invoicing.services import today_in

    late_evening_utc = datetime(2020, 10, 4, 22, 30, tzinfo=UTC)
    assert today_in(Settings(timezone="UTC"), late_evening_utc) == date(2020, 10, 4)
    assert today_in(Settings(timezone="Europe/Paris"), late_evening_utc) == date(2020, 10, 5)
    assert today_in(Settings(timezone="America/New_York"), late_evening_utc) == date(2020, 10, 4)


@pytest.mark.parametrize("prefix", ["facturé", "x" * 57, "1abc", "a-b"])
def test_table_prefix_must_make_valid_table_names(prefix):
    from invoicing.settings import SettingsError

    with pytest.raises(SettingsError, match="INVOICE_TABLE_PREFIX"):
        Settings.from_env({"INVOICE_TABLE_PREFIX": prefix})


def test_a_malformed_connection_string_is_503_naming_the_setting(indexed, monkeypatch):
    monkeypatch.setenv("INVOICING_STORAGE", "not a connection string")
    response = call(indexed, "list_invoices")
    assert response.status_code == 503
    assert "INVOICING_STORAGE" in problem_of(response)["detail"]


def test_an_unexpected_storage_failure_is_500_with_a_logged_correlation_id(
    indexed, azurite, monkeypatch, caplog
):
    # A table endpoint that is really the blob service answers nonsense to table requests.
    blob = next(p for p in azurite.connection_string.split(";") if p.startswith("BlobEndpoint="))
    wrong = azurite.connection_string.replace(
        next(p for p in azurite.connection_string.split(";") if p.startswith("TableEndpoint=")),
        "TableEndpoint=" + blob.split("=", 1)[1],
    )
    monkeypatch.setenv("INVOICING_STORAGE", wrong)
    with caplog.at_level(logging.ERROR, logger="invoicing"):
        response = call(indexed, "get_invoice", route_params={"id": "INV-20201005-0000000000"})
    assert response.status_code == 500
    body = problem_of(response)
    assert "Traceback" not in response.get_body().decode()
    assert body["correlationId"] in body["detail"]
    assert any(body["correlationId"] in r.getMessage() for r in caplog.records)


@pytest.fixture
def refused_port():
    """A local port that refuses connections: bound (so nobody else takes it), never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def resetting_port():
    """A local server that accepts each connection and closes it without an answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def _unreachable_storage(monkeypatch, port: int) -> None:
    monkeypatch.setenv(
        "INVOICING_STORAGE",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
    )
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)


STORAGE_ROUTES = [
    ("runs", "POST", {"params": {"date": "2020-10-05"}}),
    ("imports", "POST", {"body": SAMPLE}),
    ("list_invoices", "GET", {}),
    ("list_invoices", "GET", {"headers": {"Accept": "application/json"}}),
    ("get_invoice", "GET", {"route_params": {"id": "INV-20201005-0000000000"}}),
    ("confirm_invoice", "POST", {"route_params": {"id": "INV-20201005-0000000000"}}),
    ("cancel_invoice", "POST", {"route_params": {"id": "INV-20201005-0000000000"}}),
]


@pytest.mark.parametrize("unreachable", ["refused_port", "resetting_port"])
@pytest.mark.parametrize(("name", "method", "request_parts"), STORAGE_ROUTES)
def test_storage_that_cannot_be_reached_is_503_on_every_route(
    indexed, monkeypatch, request, caplog, unreachable, name, method, request_parts
):
    port = request.getfixturevalue(unreachable)
    _unreachable_storage(monkeypatch, port)
    with caplog.at_level(logging.ERROR, logger="invoicing"):
        response = call(indexed, name, method, **request_parts)
    assert response.status_code == 503
    body = problem_of(response)
    assert body["title"] == "Storage unavailable"
    assert "cannot be reached" in body["detail"]
    assert str(port) not in response.get_body().decode()  # no infrastructure detail leaks
    assert any("cannot reach the storage account" in r.getMessage() for r in caplog.records)


def test_no_storage_setting_is_503_naming_the_setting(indexed, monkeypatch):
    monkeypatch.delenv("INVOICING_STORAGE", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    response = call(indexed, "imports", "POST", body=SAMPLE)
    assert response.status_code == 503
    assert "INVOICING_STORAGE" in problem_of(response)["detail"]


def test_a_bad_upload_is_answered_as_such_even_without_storage(indexed, monkeypatch):
    monkeypatch.delenv("INVOICING_STORAGE", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    assert call(indexed, "imports", "POST", body=b"a,b\n1,2\n").status_code == 415


# ---- H12-H14: corrections ----------------------------------------------------------------------


def _details_of(indexed, invoice_id: str) -> list[dict]:
    body = json.loads(call(indexed, "get_invoice", route_params={"id": invoice_id}).get_body())
    return [d for line in body["Lines"] for d in line["Details"]]


def test_adjust_removes_a_detail_and_refuses_bad_bodies_and_non_drafts(indexed, drafts):
    invoice_id = drafts[0]["InvoiceId"]
    route = {"id": invoice_id}
    first, *rest = _details_of(indexed, invoice_id)
    body = json.dumps({"remove": [first["SourceId"]]}).encode()
    response = call(indexed, "adjust_invoice", "POST", route_params={"id": invoice_id}, body=body)
    assert response.status_code == 200
    adjusted = json.loads(response.get_body())
    assert Decimal(adjusted["Amount"]) == Decimal(drafts[0]["Amount"]) - Decimal(first["Amount"])
    assert [d["SourceId"] for ln in adjusted["Lines"] for d in ln["Details"]] == [
        d["SourceId"] for d in rest
    ]
    for bad in (b"[1]", b"not json", json.dumps({"remove": "T1"}).encode()):
        response = call(indexed, "adjust_invoice", "POST", route_params=route, body=bad)
        assert response.status_code == 400, bad
        problem_of(response)
    unknown = json.dumps({"writeOff": ["NO-SUCH"]}).encode()
    response = call(indexed, "adjust_invoice", "POST", route_params=route, body=unknown)
    assert response.status_code == 400 and "NO-SUCH" in problem_of(response)["detail"]
    call(indexed, "confirm_invoice", "POST", route_params={"id": invoice_id})
    response = call(indexed, "adjust_invoice", "POST", route_params={"id": invoice_id}, body=body)
    assert response.status_code == 409
    missing = call(
        indexed, "adjust_invoice", "POST", route_params={"id": "INV-20200101-0000000000"}, body=body
    )
    assert missing.status_code == 404


def test_credit_answers_the_credit_note_and_a_second_credit_of_a_share_is_409(indexed, drafts):
    invoice_id = drafts[0]["InvoiceId"]
    draft = call(indexed, "credit_invoice", "POST", route_params={"id": invoice_id}, body=b"{}")
    assert draft.status_code == 409  # a draft is not credited: cancel it
    call(indexed, "confirm_invoice", "POST", route_params={"id": invoice_id})
    source = _details_of(indexed, invoice_id)[0]["SourceId"]
    body = json.dumps({"items": [source], "writeOff": False}).encode()
    response = call(indexed, "credit_invoice", "POST", route_params={"id": invoice_id}, body=body)
    assert response.status_code == 200
    note = json.loads(response.get_body())
    assert note["DocumentType"] == "CreditNote" and note["InvoiceNumber"] == "CRN-000001"
    assert note["CreditedInvoiceId"] == invoice_id
    assert note["CreditedInvoiceNumber"] == "INV-000001"
    assert Decimal(note["Amount"]) < 0
    again = call(indexed, "credit_invoice", "POST", route_params={"id": invoice_id}, body=body)
    assert again.status_code == 409 and "already credited" in problem_of(again)["detail"]
    original = json.loads(
        call(indexed, "get_invoice", route_params={"id": invoice_id}).get_body()
    )
    assert original["CreditNotes"] == [
        {"CreditNoteId": note["InvoiceId"], "CreditNoteNumber": "CRN-000001"}
    ]
    bad = json.dumps({"writeOff": "yes"}).encode()
    response = call(indexed, "credit_invoice", "POST", route_params={"id": invoice_id}, body=bad)
    assert response.status_code == 400


def test_decisions_upload_applies_a_marked_workbook_and_answers_bad_cells_with_422(
    indexed, drafts
):
    import openpyxl

    listing = call(indexed, "list_invoices", params={})
    workbook_bytes = listing.get_body()

    def marked(decision: str) -> bytes:
        wb = openpyxl.load_workbook(io.BytesIO(workbook_bytes))
        ws = wb["Invoices"]
        header = [c.value for c in ws[1]]
        column = header.index("Decision") + 1 if "Decision" in header else len(header) + 1
        ws.cell(row=1, column=column, value="Decision")
        ws.cell(row=2, column=column, value=decision)
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()

    response = call(indexed, "decisions", "POST", body=marked("Approve"))
    assert response.status_code == 422
    (error,) = problem_of(response)["errors"]
    assert error["sheet"] == "Invoices" and "Approve" in error["message"]
    response = call(indexed, "decisions", "POST", body=marked("Confirm"))
    assert response.status_code == 200
    result = json.loads(response.get_body())
    assert result["done"] == {"confirmed": 1}
    assert result["numbers"][0]["Number"] == "INV-000001"
    again = json.loads(call(indexed, "decisions", "POST", body=marked("Confirm")).get_body())
    assert again["done"] == {} and again["already_done"] == 1
    response = call(indexed, "decisions", "POST", body=b"not a workbook")
    assert response.status_code == 415


# ---- H15 ----------------------------------------------------------------------------------------


def test_document_answers_a_pdf_or_xml_attachment_and_409_lists_what_is_missing(indexed, env):
    from invoicing import services
    from tests.storage.documents_setup import stored_invoice

    store = services.open_store(env)
    bare = stored_invoice(store, env, seller=None, address=False)
    refused = call(indexed, "invoice_document", route_params={"id": bare})
    assert refused.status_code == 409
    body = problem_of(refused)
    assert any("seller" in m.lower() for m in body["missing"]), body
    # the same draft once the seller and the buyer's address are uploaded
    invoice_id = stored_invoice(store, env)
    assert invoice_id == bare
    pdf = call(indexed, "invoice_document", route_params={"id": invoice_id})
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.get_body().startswith(b"%PDF-")
    assert f'filename="{invoice_id}.pdf"' in pdf.headers["Content-Disposition"]
    xml = call(
        indexed, "invoice_document", params={"format": "xml"}, route_params={"id": invoice_id}
    )
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert b"CrossIndustryInvoice" in xml.get_body()
    bad = call(
        indexed, "invoice_document", params={"format": "docx"}, route_params={"id": invoice_id}
    )
    assert bad.status_code == 400 and "format" in problem_of(bad)["detail"]
    missing = call(indexed, "invoice_document", route_params={"id": "INV-20991231-0000000000"})
    assert missing.status_code == 404
