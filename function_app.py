"""The Azure Functions app (Python v2 programming model): registers the blueprints, nothing else.

Settings are validated at import so a bad INVOICE_TIMEZONE or schedule fails at startup.
"""

import azure.functions as func

from invoicing.functions import corrections, documents, invoices, queue, timer, workbooks
from invoicing.settings import Settings

Settings.from_env()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(timer.bp)  # H1
app.register_functions(workbooks.bp)  # H2-H5
app.register_functions(invoices.bp)  # H6-H10
app.register_functions(queue.bp)  # H11
app.register_functions(corrections.bp)  # H12-H14
app.register_functions(documents.bp)  # H15
