"""The input workbook's layout (SPEC W1-W6, W11): sheets and columns in the spec's order.

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
        ("TaxPercent", False),  # E2
    ),
    "Customers": (
        ("ContractId", True),
        ("CustomerId", True),
        ("CustomerName", False),
        ("SplitPercent", True),
        ("LineId", False),
        ("RoundingCustomer", False),
        ("Street", False),  # E1: the customer's address and VAT id
        ("City", False),
        ("PostalCode", False),
        ("CountryCode", False),
        ("VatId", False),
        ("Email", False),
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
        ("TaxPercent", False),  # E2
        ("TaxCategory", False),
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

# W11 (E1): the optional Seller sheet, one row. Apart from SHEETS (W1-W6), whose six sheets every
# test builder and the benchmark write; INPUT_SHEETS is every sheet the reader and template know.
SELLER = "Seller"
SELLER_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("Name", True),
    ("Street", False),
    ("City", False),
    ("PostalCode", False),
    ("CountryCode", True),
    ("VatId", False),
    ("Email", False),
    ("Iban", False),
)
INPUT_SHEETS: dict[str, tuple[tuple[str, bool], ...]] = {**SHEETS, SELLER: SELLER_COLUMNS}

# sheet -> column names, in order
HEADERS: dict[str, tuple[str, ...]] = {
    sheet: tuple(name for name, _ in columns) for sheet, columns in SHEETS.items()
}
INPUT_HEADERS: dict[str, tuple[str, ...]] = {
    sheet: tuple(name for name, _ in columns) for sheet, columns in INPUT_SHEETS.items()
}

# The template's help sheet (placed last): not an input sheet; the reader ignores it.
INSTRUCTIONS_SHEET = "Instructions"
