"""Shared HTTP plumbing: uploads, query dates, xlsx/JSON answers, problem+json errors (H)."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import azure.functions as func

from invoicing import outcomes, requests
from invoicing.errors import BadRequest, DocumentRefused, InputRejected
from invoicing.outcomes import TITLES
from invoicing.settings import Settings
from invoicing.views import dumps

log = logging.getLogger("invoicing.http")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PROBLEM = "application/problem+json"
JSON = "application/json"
MULTIPART_ALLOWANCE = 64 * 1024  # what a multipart body may carry beyond the file itself


def problem(
    status: int, detail: str, *, title: str | None = None, **extra: Any
) -> func.HttpResponse:
    body = {
        "type": f"https://httpstatuses.io/{status}",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return func.HttpResponse(dumps(body), status_code=status, mimetype=PROBLEM, charset="utf-8")


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(dumps(body), status_code=status, mimetype=JSON, charset="utf-8")


def xlsx_response(data: bytes, filename: str) -> func.HttpResponse:
    return func.HttpResponse(
        data,
        status_code=200,
        mimetype=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def file_response(data: bytes, media_type: str, filename: str) -> func.HttpResponse:
    return func.HttpResponse(
        data,
        status_code=200,
        mimetype=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def settings() -> Settings:
    return Settings.from_env()


def upload_bytes(req: func.HttpRequest, limit: int) -> bytes:
    """The uploaded workbook: multipart field ``file``, else the raw body (413 past ``limit``,
    ``requests.check_upload_size`` as on the command line)."""
    declared = requests.declared_length(req.headers.get("Content-Length"))
    if declared is not None:  # refused before the body is looked at
        requests.check_upload_size(declared, limit, allowance=MULTIPART_ALLOWANCE)
    body = req.get_body() or b""
    content_type = (req.headers.get("Content-Type") or "").lower()
    if content_type.startswith("multipart/form-data"):
        upload = req.files.get("file")
        if upload is None:
            if req.form.get("file") is not None:
                raise BadRequest(
                    'the multipart field "file" was sent as text, not as a file: '
                    "send it with a filename (curl -F file=@book.xlsx)"
                )
            raise BadRequest('multipart upload without a field named "file"')
        data = upload.read(limit + 1)  # a bounded read: past the limit, the size is not known
        requests.check_upload_size(len(data), limit, exact=False)
        return data
    requests.check_upload_size(len(body), limit)
    return body


def query_date(req: func.HttpRequest, name: str) -> date | None:
    """An optional date query parameter: absent or blank is None; otherwise strictly YYYY-MM-DD."""
    return requests.optional_date(req.params.get(name), name)


def date_span(req: func.HttpRequest) -> tuple[date, date]:
    """``?date=D`` or ``?from=A&to=B`` (400 otherwise)."""
    p = req.params
    span = requests.date_span(
        p.get("date"), p.get("from"), p.get("to"), requests.HTTP, required=True
    )
    assert span is not None
    return span


def date_bounds(req: func.HttpRequest) -> tuple[date | None, date | None]:
    """``?from=A`` and ``?to=B``, each optional (400 when B is before A)."""
    return requests.date_bounds(req.params.get("from"), req.params.get("to"), requests.HTTP)


def wants_json(req: func.HttpRequest) -> bool:
    """Content negotiation between the invoice workbook (the default) and JSON (RFC 9110)."""
    return requests.negotiate(req.headers.get("Accept"), (XLSX, JSON)) == JSON


Handler = Callable[[func.HttpRequest], func.HttpResponse]


def handle_errors(fn: Handler) -> Handler:
    """Map every failure to problem+json by the table of ``invoicing.outcomes`` (shared with the
    command line); nothing internal ever reaches the response body."""

    @functools.wraps(fn)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return fn(req)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # pyo3's PanicException is a BaseException
            return answer(exc, fn.__name__)

    return wrapper


def answer(exc: BaseException, handler: str) -> func.HttpResponse:
    """The problem+json answer to ``exc`` raised in the function ``handler``."""
    outcome = outcomes.http_outcome(exc)
    if outcome.unexpected:
        correlation = uuid.uuid4().hex
        log.error(
            "unexpected error in %s (correlation id %s)",
            handler,
            correlation,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return problem(
            outcome.status,
            f"unexpected error; quote correlation id {correlation} to support",
            correlationId=correlation,
        )
    if outcome.log:
        log.error(
            "%s", outcome.log.format(handler=handler, error=exc, line=outcomes.first_line(exc))
        )
    status = outcome.status_of(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, InputRejected):  # every problem, located (SPEC H)
        extra["errors"] = [p.as_dict() for p in exc.problems]
        if exc.warnings:  # W12: warnings with the errors
            extra["warnings"] = list(exc.warnings)
    if isinstance(exc, DocumentRefused):  # E3: everything missing, at once
        extra["missing"] = list(exc.problems)
    return problem(status, outcome.detail(exc), title=outcome.title_of(status), **extra)
