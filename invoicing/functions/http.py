"""Shared HTTP plumbing: uploads, query dates, xlsx/JSON answers, problem+json errors (H)."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import azure.functions as func
from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from invoicing import requests
from invoicing.errors import BadRequest, InputRejected, UploadRejected
from invoicing.settings import Settings
from invoicing.views import dumps

log = logging.getLogger("invoicing.http")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PROBLEM = "application/problem+json"
JSON = "application/json"
TITLES = {
    400: "Bad request",
    404: "Not found",
    409: "Conflict",
    413: "Upload too large",
    415: "Not an xlsx workbook",
    422: "The workbook has errors",
    500: "Internal error",
    503: "Service unavailable",
}


class HttpProblem(Exception):
    """Raised by handlers for a known client-facing failure; becomes problem+json."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, **extra: Any):
        self.status = status
        self.detail = detail
        self.title = title or TITLES.get(status, "Error")
        self.extra = extra
        super().__init__(detail)


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


def settings() -> Settings:
    return Settings.from_env()


def upload_bytes(req: func.HttpRequest, limit: int) -> bytes:
    """The uploaded workbook: multipart field ``file``, else the raw body (413 past ``limit``)."""
    declared = req.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise UploadRejected(
            f"the upload is {int(declared):,} bytes; the limit is {limit:,} bytes", status=413
        )
    body = req.get_body() or b""
    content_type = (req.headers.get("Content-Type") or "").lower()
    if content_type.startswith("multipart/form-data"):
        upload = req.files.get("file")
        if upload is None:
            if req.form.get("file") is not None:
                raise HttpProblem(
                    400,
                    'the multipart field "file" was sent as text, not as a file: '
                    "send it with a filename (curl -F file=@book.xlsx)",
                )
            raise HttpProblem(400, 'multipart upload without a field named "file"')
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise UploadRejected(f"the upload is over the limit of {limit:,} bytes", status=413)
        return data
    if len(body) > limit:
        raise UploadRejected(
            f"the upload is {len(body):,} bytes; the limit is {limit:,} bytes", status=413
        )
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
    """Map every failure to problem+json; nothing internal ever reaches the response body."""

    @functools.wraps(fn)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return fn(req)
        except HttpProblem as exc:
            return problem(exc.status, exc.detail, title=exc.title, **exc.extra)
        except BadRequest as exc:
            return problem(400, str(exc))
        except InputRejected as exc:
            return problem(
                422,
                f"{exc.total:,} problem(s) in the workbook; nothing was imported or previewed",
                errors=[p.as_dict() for p in exc.problems],
            )
        except UploadRejected as exc:
            return problem(exc.status, str(exc))
        except BaseException as exc:  # pyo3's PanicException is a BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            mapped = _service_error(exc)
            if mapped is None and _storage_unreachable(exc):
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.error("%s: cannot reach the storage account: %s", fn.__name__, first)
                mapped = problem(
                    503,
                    "the storage account cannot be reached; try again later",
                    title="Storage unavailable",
                )
            if mapped is not None:
                return mapped
            correlation = uuid.uuid4().hex
            log.exception("unexpected error in %s (correlation id %s)", fn.__name__, correlation)
            return problem(
                500,
                f"unexpected error; quote correlation id {correlation} to support",
                correlationId=correlation,
            )

    return wrapper


def _storage_unreachable(exc: BaseException) -> bool:
    """A connection to storage failed: refused, reset, timed out, name not resolved (L6: 503).

    The SDK raises ``ServiceRequestError`` when the request could not be sent and
    ``ServiceResponseError`` when no answer came back; an exception raised ``from`` one of them
    (our own ``StorageError`` wrapping it, say) counts too.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (ServiceRequestError, ServiceResponseError)):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def _service_error(exc: BaseException) -> func.HttpResponse | None:
    from invoicing import services

    if isinstance(exc, services.NotFound):
        return problem(404, str(exc))
    if isinstance(exc, services.WrongState):
        return problem(409, str(exc))
    if isinstance(exc, services.LeaseHeld):
        return problem(409, str(exc), title="Another run holds the lease")
    if isinstance(exc, services.LeaseLost):
        return problem(503, str(exc), title="The run lost its lease")
    if isinstance(exc, services.StorageNotConfigured):
        log.error("storage is not configured: %s", exc)
        return problem(503, str(exc), title="Storage is not configured")
    return None
