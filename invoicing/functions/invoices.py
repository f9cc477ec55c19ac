"""H6-H10: run now, list, get, confirm and cancel invoices."""

from __future__ import annotations

import azure.functions as func

from invoicing import requests, services
from invoicing.functions.http import (
    date_bounds,
    handle_errors,
    json_response,
    query_date,
    settings,
    wants_json,
    xlsx_response,
)
from invoicing.views import invoice_full, invoice_header

bp = func.Blueprint()


@bp.function_name("runs")
@bp.route(route="runs", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
@handle_errors
def runs(req: func.HttpRequest) -> func.HttpResponse:
    config = settings()
    day = query_date(req, "date")
    store = services.open_store(config)
    summary = services.run_daily(store, config, today=day)
    # S6: the answer shows the ledger too (the latest entries, newest first).
    return json_response({**summary.as_dict(), "ledger": services.ledger_entries(store)[:31]})


@bp.function_name("list_invoices")
@bp.route(route="invoices", methods=["GET"])
@handle_errors
def list_invoices(req: func.HttpRequest) -> func.HttpResponse:
    start, end = date_bounds(req)
    status = requests.parse_status(req.params.get("status"), "status")
    contract = (req.params.get("contract") or "").strip() or None
    store = services.open_store(settings())
    if wants_json(req):
        invoices, _ = services.list_invoices(store, start, end, status, contract)
        return json_response({"invoices": [invoice_header(i) for i in invoices]})
    export = services.export_workbook(store, start, end, status, contract)
    return xlsx_response(export.data, "invoices.xlsx")


@bp.function_name("get_invoice")
@bp.route(route="invoices/{id}", methods=["GET"])
@handle_errors
def get_invoice(req: func.HttpRequest) -> func.HttpResponse:
    config = settings()
    invoice = services.get_invoice(services.open_store(config), req.route_params["id"])
    return json_response(invoice_full(invoice))


@bp.function_name("confirm_invoice")
@bp.route(route="invoices/{id}/confirm", methods=["POST"])
@handle_errors
def confirm_invoice(req: func.HttpRequest) -> func.HttpResponse:
    config = settings()
    invoice = services.confirm(services.open_store(config), config, req.route_params["id"])
    return json_response(invoice_header(invoice))


@bp.function_name("cancel_invoice")
@bp.route(route="invoices/{id}/cancel", methods=["POST"])
@handle_errors
def cancel_invoice(req: func.HttpRequest) -> func.HttpResponse:
    config = settings()
    invoice = services.cancel(services.open_store(config), config, req.route_params["id"])
    return json_response(invoice_header(invoice))
