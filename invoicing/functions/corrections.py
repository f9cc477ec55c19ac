"""H12-H14: decisions from the invoice workbook, draft adjustments, credit notes."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from invoicing import services
from invoicing.errors import BadRequest
from invoicing.functions.http import handle_errors, json_response, settings, upload_bytes
from invoicing.views import invoice_full

bp = func.Blueprint()


@bp.function_name("decisions")
@bp.route(route="decisions", methods=["POST"])
@handle_errors
def decisions(req: func.HttpRequest) -> func.HttpResponse:
    config = settings()
    data = upload_bytes(req, config.max_upload_bytes)
    return json_response(services.decide_upload(data, config).as_dict())


@bp.function_name("adjust_invoice")
@bp.route(route="invoices/{id}/adjust", methods=["POST"])
@handle_errors
def adjust_invoice(req: func.HttpRequest) -> func.HttpResponse:
    body = _json_body(req)
    remove = _ids(body, "remove")
    write_off = _ids(body, "writeOff")
    note = body.get("note") or ""
    if not isinstance(note, str):
        raise BadRequest('"note" must be a text')
    config = settings()
    invoice = services.adjust(
        services.open_store(config), config, req.route_params["id"], remove, write_off, note
    )
    return json_response(invoice_full(invoice))


@bp.function_name("credit_invoice")
@bp.route(route="invoices/{id}/credit", methods=["POST"])
@handle_errors
def credit_invoice(req: func.HttpRequest) -> func.HttpResponse:
    body = _json_body(req)
    items = _ids(body, "items") if "items" in body else None
    write_off = body.get("writeOff", False)
    if not isinstance(write_off, bool):
        raise BadRequest('"writeOff" must be true or false')
    config = settings()
    note = services.credit(
        services.open_store(config), config, req.route_params["id"], items, write_off
    )
    return json_response(invoice_full(note))


def _json_body(req: func.HttpRequest) -> dict[str, Any]:
    raw = req.get_body() or b"{}"
    if len(raw) > 1_000_000:
        raise BadRequest("the JSON body is over 1 MB")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _ids(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f'"{name}" must be a list of SourceIds (texts)')
    return value
