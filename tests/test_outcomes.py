"""The one table of failures (``invoicing.outcomes``): each error's exit code (SPEC C) and HTTP
status (SPEC H), and both surfaces answering from it."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import azure.functions as func
import pytest
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from invoicing import outcomes
from invoicing.cli import UsageError, exit_code
from invoicing.errors import BadRequest, InputRejected, Problem, UploadRejected
from invoicing.functions.http import handle_errors
from invoicing.settings import SettingsError
from invoicing.storage.errors import (
    LeaseHeld,
    LeaseLost,
    NotFound,
    StorageError,
    StorageNotConfigured,
    WriteRefused,
    WrongState,
)

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = [Problem("Contracts", "C2", 'currency "XYZ" is not ISO 4217'), Problem("Lines", "", "x")]

EXPECTED = [
    # failure, exit code, HTTP status, problem title
    (InputRejected(PROBLEMS), 2, 422, "The workbook has errors"),
    (
        InputRejected(PROBLEMS, title="The upload changes invoiced items"),
        2,
        422,
        "The workbook has errors",
    ),
    (UploadRejected("too big", status=413), 2, 413, "Upload too large"),
    (UploadRejected("not an xlsx"), 2, 415, "Not an xlsx workbook"),
    (UploadRejected("a zip bomb", status=422), 2, 422, "The workbook has errors"),
    (BadRequest("bad date"), 2, 400, "Bad request"),
    (UsageError("no such file"), 2, 400, "Bad request"),
    (SettingsError("INVOICE_TIMEZONE"), 1, 500, "Internal error"),
    (LeaseHeld(), 3, 409, "Another run holds the lease"),
    (LeaseLost("expired"), 1, 503, "The run lost its lease"),
    (StorageNotConfigured(), 1, 503, "Storage is not configured"),
    (NotFound("INV-1"), 1, 404, "Not found"),
    (WrongState("INV-1", "Confirmed"), 1, 409, "Conflict"),
    (WriteRefused("seam"), 1, 500, "Internal error"),
    (StorageError("other"), 1, 500, "Internal error"),
    (ServiceRequestError("refused"), 1, 503, "Storage unavailable"),
    (ServiceResponseError("reset"), 1, 503, "Storage unavailable"),
    (HttpResponseError("nonsense"), 1, 500, "Internal error"),
    (AzureError("other"), 1, 500, "Internal error"),
    (ValueError("bug"), 1, 500, "Internal error"),
]


def _http(exc: BaseException) -> func.HttpResponse:
    @handle_errors
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        raise exc

    return handler(func.HttpRequest("POST", "http://localhost/api/x", body=b""))


def _cli(exc: BaseException, capsys) -> tuple[int, str]:
    def command() -> int:
        raise exc

    code = exit_code(command)
    return code, capsys.readouterr().err


def test_no_row_is_hidden_behind_an_earlier_one():
    rows = outcomes.table()
    for i, later in enumerate(rows):
        for earlier in rows[:i]:
            assert not issubclass(later.error, earlier.error), (later.error, earlier.error)
    assert rows[-1] is outcomes.UNFORESEEN and rows[-1].error is BaseException


@pytest.mark.parametrize(
    ("exc", "code", "status", "title"), EXPECTED, ids=[type(row[0]).__name__ for row in EXPECTED]
)
def test_each_failure_has_one_exit_code_and_one_status(exc, code, status, title, capsys):
    assert _cli(exc, capsys)[0] == code
    response = _http(exc)
    body = json.loads(response.get_body())
    assert (response.status_code, body["status"], body["title"]) == (status, status, title)
    assert response.mimetype == "application/problem+json"


def test_the_command_line_says_each_failure_in_one_line(capsys):
    said = {
        BadRequest(
            "run date 2999-01-01 is after today"
        ): "error: run date 2999-01-01 is after today",
        LeaseHeld(): "error: another run holds the lease; nothing done (run not started)",
        NotFound("INV-1"): "error: INV-1: no such invoice",
        ServiceRequestError("refused\nmore"): "error: cannot reach the storage account: refused",
        ServiceRequestError(""): "error: cannot reach the storage account: ServiceRequestError",
        ServiceResponseError("reset\nmore"): "error: storage: reset",
        AzureError(""): "error: storage: AzureError",
        ValueError("bug"): "error: ValueError: bug",
    }
    for exc, line in said.items():
        assert _cli(exc, capsys)[1] == line + "\n"


def test_a_rejected_workbook_lists_every_problem_and_a_count(capsys):
    code, err = _cli(InputRejected(PROBLEMS), capsys)
    assert code == 2
    assert err.splitlines() == [
        'Contracts!C2: currency "XYZ" is not ISO 4217',
        "Lines: x",
        "2 error(s); nothing was written",
    ]


def test_an_interrupt_is_exit_1_on_the_command_line_and_not_answered_over_http(capsys):
    assert _cli(KeyboardInterrupt(), capsys) == (1, "interrupted\n")
    with pytest.raises(KeyboardInterrupt):
        _http(KeyboardInterrupt())
    with pytest.raises(SystemExit):
        _cli(SystemExit(5), capsys)


def test_a_rejected_workbook_over_http_is_422_listing_each_problem():
    body = json.loads(_http(InputRejected(PROBLEMS)).get_body())
    assert body["detail"] == "2 problem(s) in the workbook; nothing was imported or previewed"
    assert body["errors"] == [p.as_dict() for p in PROBLEMS]


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (_raised_from(StorageError("wrapped"), ServiceRequestError("refused")), 503),
        (_raised_from(RuntimeError("wrapped"), ServiceResponseError("reset")), 503),
        (
            _raised_from(
                RuntimeError("a"), _raised_from(ValueError("b"), ServiceRequestError("c"))
            ),
            503,
        ),
        (_raised_from(RuntimeError("wrapped"), ValueError("not storage")), 500),
        (_raised_from(NotFound("INV-1"), ServiceRequestError("refused")), 404),
        (_raised_from(LeaseLost("renewal failed"), ServiceRequestError("refused")), 503),
    ],
)
def test_a_failure_raised_from_unreachable_storage_is_503_over_http(exc, status, caplog):
    with caplog.at_level(logging.ERROR, logger="invoicing"):
        response = _http(exc)
    body = json.loads(response.get_body())
    assert response.status_code == status
    if status == 503 and not isinstance(exc, LeaseLost):
        assert body["title"] == "Storage unavailable"
        assert body["detail"] == "the storage account cannot be reached; try again later"
        assert [r.getMessage() for r in caplog.records] == [
            f"handler: cannot reach the storage account: {str(exc).splitlines()[0]}"
        ]


def test_the_command_line_words_a_wrapped_storage_failure_by_its_own_row(capsys):
    exc = _raised_from(StorageError("the store said no"), ServiceRequestError("refused"))
    assert _cli(exc, capsys) == (1, "error: the store said no\n")


def test_an_unforeseen_failure_over_http_is_500_with_a_logged_correlation_id(caplog):
    with caplog.at_level(logging.ERROR, logger="invoicing"):
        response = _http(ValueError("secret internals"))
    body = json.loads(response.get_body())
    assert "secret internals" not in response.get_body().decode()
    assert body["correlationId"] in body["detail"]
    (record,) = caplog.records
    assert body["correlationId"] in record.getMessage() and record.exc_info is not None


def test_storage_not_configured_is_logged_for_the_operator(caplog):
    with caplog.at_level(logging.ERROR, logger="invoicing"):
        response = _http(StorageNotConfigured())
    assert "INVOICING_STORAGE" in json.loads(response.get_body())["detail"]
    assert [r.getMessage() for r in caplog.records] == [
        f"storage is not configured: {StorageNotConfigured()}"
    ]


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules imported, modules and names imported) by the file at ``path``."""
    modules, names = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules, modules | names


def test_the_table_sits_at_the_bindings_level():
    package = ROOT / "invoicing"
    importers = {
        path.relative_to(package).parts[0]
        for path in package.rglob("*.py")
        if "invoicing.outcomes" in _imports(path)[1] and path.name != "outcomes.py"
    }
    assert importers == {"cli", "functions"}
    modules = _imports(package / "outcomes.py")[0]
    own = {m for m in modules if m.split(".")[0] in ("invoicing", "azure")}
    assert own == {
        "invoicing.errors",
        "invoicing.settings",
        "invoicing.storage.errors",
        "azure.core.exceptions",
    }
