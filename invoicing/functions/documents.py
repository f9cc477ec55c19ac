"""H15: an invoice or credit note as a document (E3)."""

from __future__ import annotations

import azure.functions as func

from invoicing import requests, services
from invoicing.functions.http import file_response, handle_errors, settings

bp = func.Blueprint()


@bp.function_name("invoice_document")
@bp.route(route="invoices/{id}/document", methods=["GET"])
@handle_errors
def invoice_document(req: func.HttpRequest) -> func.HttpResponse:
    fmt = requests.parse_format(req.params.get("format"), "format")
    store = services.open_store(settings())
    document = services.invoice_document(store, req.route_params["id"], fmt)
    return file_response(document.content, document.media_type, document.filename)
