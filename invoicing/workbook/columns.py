"""The input workbook's layout (SPEC W1-W6): sheets and columns in the spec's order.

One definition for the reader, the template, the test builders and the benchmark generator.
"""

from __future__ import annotations

# sheet -> ((column, required), ...)
SHEETS: dict[str, tuple[tuple[str, bool], ...]] = {
    "Contracts": (
        ("ContractId", True),
        ("ContractName", False),
        ("Currency", True),
        ("PaymentTermsDays", False),
    ),
    "Customers": (
        ("ContractId", True),
        ("CustomerId", True),
        ("CustomerName", False),
        ("SplitPercent", True),
        ("LineId", False),
        ("RoundingCustomer", False),
    ),
    "ContractLines": (
        ("ContractId", True),
        ("LineId", True),
        ("LineName", False),
        ("BillingMethod", True),
        ("TransactionClasses", False),
        ("NotToExceed", False),
        ("Frequency", False),
        ("RunDay", False),
        ("FirstRunDate", False),
        ("LastRunDate", False),
        ("RRule", False),
    ),
    "InvoiceSchedule": (
        ("ContractId", True),
        ("LineId", True),
        ("InvoiceRunDate", True),
        ("TransactionCutoffDate", False),
    ),
    "Milestones": (
        ("ContractId", True),
        ("LineId", True),
        ("MilestoneId", True),
        ("MilestoneName", False),
        ("MilestoneDate", True),
        ("Amount", True),
        ("ReadyToInvoice", False),
    ),
    "Transactions": (
        ("TransactionId", True),
        ("ContractId", True),
        ("LineId", True),
        ("Class", True),
        ("Date", True),
        ("Description", False),
        ("Resource", False),
        ("Quantity", False),
        ("UnitPrice", False),
        ("Amount", False),
        ("ReadyToInvoice", False),
    ),
}

# sheet -> column names, in order
HEADERS: dict[str, tuple[str, ...]] = {
    sheet: tuple(name for name, _ in columns) for sheet, columns in SHEETS.items()
}

# The template's help sheet (placed last): not an input sheet; the reader ignores it.
INSTRUCTIONS_SHEET = "Instructions"
