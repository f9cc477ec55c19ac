"""H2-H5: health, template, stateless preview, import."""

from __future__ import annotations

import azure.functions as func

from invoicing import services
from invoicing.errors import BadRequest
from invoicing.functions.http import (
    date_span,
    handle_errors,
    json_response,
    settings,
    upload_bytes,
    xlsx_response,
)
from invoicing.preview import preview_workbook
from invoicing.workbook.template import build_template

bp = func.Blueprint()

# A preview plans every date of its range in memory inside one HTTP request (230 s to answer).
MAX_PREVIEW_DAYS = 1096


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        report = services.health_report(services.open_store(settings()))
    except Exception:
        report = {"status": "unavailable", "storage": False}
    # Missed dates and unfinished imports are listed but keep 200: the app itself works.
    return json_response(report, 200 if report["storage"] else 503)


@bp.function_name("template")
@bp.route(route="template", methods=["GET"])
@handle_errors
def template(req: func.HttpRequest) -> func.HttpResponse:
    return xlsx_response(build_template(), "invoicing-template.xlsx")


@bp.function_name("preview")
@bp.route(route="preview", methods=["POST"])
@handle_errors
def preview(req: func.HttpRequest) -> func.HttpResponse:
    start, end = date_span(req)
    if (end - start).days >= MAX_PREVIEW_DAYS:
        raise BadRequest(f"a preview covers at most {MAX_PREVIEW_DAYS} days")
    config = settings()
    data = upload_bytes(req, config.max_upload_bytes)
    result = preview_workbook(data, start, end, settings=config)
    return xlsx_response(result.workbook, f"invoices-{start:%Y%m%d}-{end:%Y%m%d}.xlsx")


@bp.function_name("imports")
@bp.route(route="imports", methods=["POST"])
@handle_errors
def imports(req: func.HttpRequest) -> func.HttpResponse:
    config = settings()
    data = upload_bytes(req, config.max_upload_bytes)
    result = services.import_upload(data, config)
    return json_response(result.as_dict())
