"""What the input template says about each column (§W): prompts, checks, drop-downs, widths and
the Instructions sheet's text. One table per concern; ``template`` builds the workbook from them.
"""

from __future__ import annotations

from invoicing.model import BillingMethod, TaxCategory, TxnClass
from invoicing.schedule import Frequency
from invoicing.workbook._cells import MAX_DATE, MAX_ID_LENGTH, MAX_PAYMENT_TERMS, MIN_DATE
from invoicing.workbook.columns import INPUT_HEADERS as HEADERS
from invoicing.workbook.columns import INPUT_SHEETS as COLUMNS
from invoicing.workbook.columns import INSTRUCTIONS_SHEET, SELLER

CONTRACTS = "Contracts"
CUSTOMERS = "Customers"
CONTRACT_LINES = "ContractLines"
INVOICE_SCHEDULE = "InvoiceSchedule"
MILESTONES = "Milestones"
TRANSACTIONS = "Transactions"

# W1-W6 and W11, exactly as the spec names them, in the spec's order.
SHEETS: dict[str, tuple[str, ...]] = HEADERS
TABLE_NAMES = {sheet: f"tbl{sheet}" for sheet in SHEETS}

DATE_COLUMNS = frozenset(
    {
        "FirstRunDate",
        "LastRunDate",
        "InvoiceRunDate",
        "TransactionCutoffDate",
        "MilestoneDate",
        "Date",
    }
)

YES_NO = ("Yes", "No")
# (sheet, column) -> the drop-down's values.
DROP_DOWNS: dict[tuple[str, str], tuple[str, ...]] = {
    (CUSTOMERS, "RoundingCustomer"): YES_NO,
    (CONTRACT_LINES, "BillingMethod"): tuple(m.value for m in BillingMethod),
    (CONTRACT_LINES, "Frequency"): tuple(f.value for f in Frequency),
    (MILESTONES, "ReadyToInvoice"): YES_NO,
    (TRANSACTIONS, "Class"): tuple(c.value for c in TxnClass),
    (TRANSACTIONS, "ReadyToInvoice"): YES_NO,
    (CONTRACT_LINES, "TaxCategory"): tuple(c.value for c in TaxCategory),
}
ID_COLUMNS = frozenset({"ContractId", "CustomerId", "LineId", "MilestoneId", "TransactionId"})
TEXT_FORMAT = "@"  # Excel's "Text" number format: what is typed stays text
REQUIRED = frozenset(
    (sheet, column)
    for sheet, columns in COLUMNS.items()
    for column, required in columns
    if required
)
DATE_PROMPT = "YYYY-MM-DD or an Excel date"
LAST_ROW = 1_048_576  # validations cover the whole column below the header


class Check:
    """One column's data validation: what Excel and LibreOffice check as it is typed."""

    __slots__ = ("error", "formula1", "formula2", "kind", "operator")

    def __init__(
        self,
        kind: str | None = None,  # DataValidation's type; None: a prompt alone
        operator: str | None = None,
        formula1: str | None = None,
        formula2: str | None = None,
        error: str | None = None,
    ) -> None:
        self.kind = kind
        self.operator = operator
        self.formula1 = formula1
        self.formula2 = formula2
        self.error = error


def _date_check() -> Check:
    low, high = MIN_DATE, MAX_DATE
    return Check(
        "date",
        "between",
        f"DATE({low.year},{low.month},{low.day})",
        f"DATE({high.year},{high.month},{high.day})",
        f"must be a date: type YYYY-MM-DD, between {low.isoformat()} and {high.isoformat()}.",
    )


_ID_CHECK = Check(
    "textLength",
    "lessThanOrEqual",
    str(MAX_ID_LENGTH),
    error=f"must be at most {MAX_ID_LENGTH} characters.",
)
_POSITIVE = Check("decimal", "greaterThan", "0", error="must be a number above 0.")
_NOT_NEGATIVE = Check("decimal", "greaterThanOrEqual", "0", error="must be a number, 0 or more.")
_ANY = Check()  # a prompt alone

# Column (or (sheet, column)) -> (prompt, check). A prompt is at most 255 characters (Excel).
_CONTRACT_REF = "The ContractId of a row on Contracts."
_HELP: dict[str | tuple[str, str], tuple[str, Check]] = {
    (CONTRACTS, "ContractId"): (
        "The contract's id, unique in the workbook. Text: 00123 stays 00123.",
        _ID_CHECK,
    ),
    "ContractId": (_CONTRACT_REF, _ID_CHECK),
    "ContractName": ("The contract's name, shown on its invoices.", _ANY),
    "Currency": (
        "The ISO 4217 code of the contract's currency: USD, EUR, GBP, JPY, CHF ... Every amount "
        "of the contract is in it, with its decimals (JPY 0, USD 2, KWD 3).",
        Check("textLength", "equal", "3", error="must be a 3-letter ISO 4217 code such as USD."),
    ),
    "PaymentTermsDays": (
        f"Days from the invoice date to its due date: a whole number from 0 to "
        f"{MAX_PAYMENT_TERMS}.",
        Check(
            "whole",
            "between",
            "0",
            str(MAX_PAYMENT_TERMS),
            error=f"must be a whole number of days from 0 to {MAX_PAYMENT_TERMS}.",
        ),
    ),
    (CUSTOMERS, "CustomerId"): ("The customer's id, unique within the contract.", _ID_CHECK),
    "CustomerName": ("The customer's name, shown on its invoices.", _ANY),
    "SplitPercent": (
        "The customer's share in percent: 60 means 60 %. More than 0, at most 100, at most 4 "
        "decimals; a contract's splits (or a line's) sum to 100.",
        Check(
            "decimal",
            "between",
            "0.0001",
            "100",
            error="must be a percentage above 0 and at most 100: 60 means 60 %.",
        ),
    ),
    (CUSTOMERS, "LineId"): (
        "Blank: the customer shares the whole contract. A LineId of the contract: this split is "
        "for that line only (the line's splits sum to 100).",
        _ID_CHECK,
    ),
    "RoundingCustomer": (
        "Yes for the customer who takes the rounding remainder (default: the first).",
        _ANY,
    ),
    (CONTRACT_LINES, "LineId"): ("The line's id, unique within its contract.", _ID_CHECK),
    "LineName": ("The line's name, shown on its invoices.", _ANY),
    "BillingMethod": (
        "Time and material (billed by schedule) or Fixed price (billed by milestones).",
        _ANY,
    ),
    "TransactionClasses": (
        "The classes this Time and material line bills, comma separated: Time, Expense, "
        "Material, Fee. Blank: all four.",
        _ANY,
    ),
    "NotToExceed": (
        "A cap on what this Time and material line bills in all, in the contract's currency. "
        "Blank: no cap.",
        _NOT_NEGATIVE,
    ),
    "Frequency": (
        "Generate the run dates from a frequency, or leave blank and list them on InvoiceSchedule.",
        _ANY,
    ),
    "RunDay": (
        'Weekly, Biweekly: a weekday ("Monday"). Monthly, Quarterly: 1-31, "Last" or "First '
        'Monday". Semimonthly: two days ("15, Last"). Blank: from FirstRunDate.',
        _ANY,
    ),
    "FirstRunDate": (
        f"The first run date a Frequency or RRule may give (inclusive). {DATE_PROMPT}.",
        _date_check(),
    ),
    "LastRunDate": (
        f"The last run date a Frequency or RRule may give (inclusive); blank: no end. "
        f"{DATE_PROMPT}.",
        _date_check(),
    ),
    "RRule": (
        "Instead of Frequency: an RFC 5545 RRULE starting at FirstRunDate, e.g. "
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1.",
        _ANY,
    ),
    (INVOICE_SCHEDULE, "LineId"): ("A Time and material line of the contract.", _ID_CHECK),
    "InvoiceRunDate": (f"The day this line is invoiced. {DATE_PROMPT}.", _date_check()),
    "TransactionCutoffDate": (
        f"Transactions up to this day (inclusive) are billed; blank: the day before the run "
        f"date. {DATE_PROMPT}.",
        _date_check(),
    ),
    (MILESTONES, "LineId"): ("A Fixed price line of the contract.", _ID_CHECK),
    "MilestoneId": ("The milestone's id, unique within the contract.", _ID_CHECK),
    "MilestoneName": ("The milestone's name, shown on its invoice.", _ANY),
    "MilestoneDate": (f"The day the milestone is invoiced. {DATE_PROMPT}.", _date_check()),
    (MILESTONES, "Amount"): (
        "The milestone's amount in the contract's currency: above 0, at most its decimals.",
        _POSITIVE,
    ),
    "ReadyToInvoice": ("Only items marked Yes are invoiced.", _ANY),
    "TransactionId": ("The transaction's id, unique in the workbook.", _ID_CHECK),
    (TRANSACTIONS, "LineId"): ("A Time and material line of the contract.", _ID_CHECK),
    "Class": ("Time, Expense, Material or Fee: must be one of the classes the line bills.", _ANY),
    "Date": (f"The day of the work or expense. {DATE_PROMPT}.", _date_check()),
    "Description": ("What was done, shown on the invoice.", _ANY),
    "Resource": ("Who did it (kept with the transaction).", _ANY),
    "Quantity": (
        "Above 0, at most 6 decimals. With UnitPrice; or leave both blank and give Amount.",
        _POSITIVE,
    ),
    "UnitPrice": (
        "0 or more, at most 6 decimals, in the contract's currency. Amount (blank) is Quantity "
        "x UnitPrice, rounded half-up.",
        _NOT_NEGATIVE,
    ),
    (TRANSACTIONS, "Amount"): (
        "0 or more, in the contract's currency. Blank: Quantity x UnitPrice; given with both, "
        "it must agree with them.",
        _NOT_NEGATIVE,
    ),
    # E1, E2: tax and the parties' data
    "TaxPercent": (
        "The VAT rate in percent: 20 means 20 %. From 0 to 100, at most 2 decimals. On a line, "
        "blank: the contract's TaxPercent, else 0.",
        Check("decimal", "between", "0", "100", error="must be a percentage from 0 to 100."),
    ),
    "TaxCategory": (
        "The EN 16931 VAT category: S standard, Z zero rated, E exempt, AE reverse charge, K "
        "intra-EU, G export, O not subject. Blank: S if the rate is above 0, else E.",
        _ANY,
    ),
    (SELLER, "Name"): ("Your company's legal name, shown as the seller on every invoice.", _ANY),
    "Street": ("Street and number of the address.", _ANY),
    "City": ("City of the address.", _ANY),
    "PostalCode": ("Postal code of the address.", _ANY),
    "CountryCode": (
        "The ISO 3166 two-letter country code of the address: DE, FR, GB, US ...",
        Check("textLength", "equal", "2", error="must be a 2-letter ISO 3166 code such as DE."),
    ),
    "VatId": (
        "The VAT id, with its country prefix and no spaces: DE123456789.",
        Check("textLength", "lessThanOrEqual", "15", error="must be at most 15 characters."),
    ),
    "Email": ("An e-mail address for invoices: name@example.com.", _ANY),
    "Iban": ("The account the seller is paid to (shown on invoices as the payment means).", _ANY),
}


def column_help(sheet: str, column: str) -> tuple[str, Check]:
    """The prompt and the check of a column of a sheet."""
    return _HELP.get((sheet, column)) or _HELP[column]


WIDTHS = {
    "ContractId": 14,
    "ContractName": 34,
    "Currency": 10,
    "PaymentTermsDays": 18,
    "CustomerId": 14,
    "CustomerName": 26,
    "SplitPercent": 13,
    "LineId": 16,
    "RoundingCustomer": 18,
    "LineName": 24,
    "BillingMethod": 18,
    "TransactionClasses": 20,
    "NotToExceed": 13,
    "Frequency": 13,
    "RunDay": 14,
    "FirstRunDate": 13,
    "LastRunDate": 13,
    "RRule": 24,
    "InvoiceRunDate": 15,
    "TransactionCutoffDate": 21,
    "MilestoneId": 13,
    "MilestoneName": 24,
    "MilestoneDate": 15,
    "Amount": 12,
    "ReadyToInvoice": 15,
    "TransactionId": 14,
    "Class": 10,
    "Date": 12,
    "Description": 52,
    "Resource": 16,
    "Quantity": 10,
    "UnitPrice": 11,
    "TaxPercent": 11,
    "TaxCategory": 13,
    "Name": 34,
    "Street": 28,
    "City": 18,
    "PostalCode": 12,
    "CountryCode": 13,
    "VatId": 16,
    "Email": 28,
    "Iban": 30,
}


# ---- the Instructions sheet's text -------------------------------------------------------------

INSTRUCTIONS_TITLE = "How to fill in this workbook"
INSTRUCTIONS: tuple[str, ...] = (
    "One sheet per kind of record: the header in row 1 (keep the header names as they are), one "
    "record per row.",
    "Contracts, Customers and ContractLines are required; InvoiceSchedule, Milestones and "
    "Transactions may stay empty. Seller (one row: your company) is optional; it is needed for "
    "invoice documents.",
    "An orange header marks a required column: fill it in on every row. A blue header is "
    "optional. Select a cell to see what its column takes.",
    "Dates: a real date, or text YYYY-MM-DD (2020-10-05). 03/04/2020 is ambiguous and rejected.",
    "Numbers: plain numbers (1234.5, never 1.234,5). Amounts have at most the currency's decimals, "
    "Quantity and UnitPrice at most 6, SplitPercent at most 4.",
    "SplitPercent is a percentage: 60 means 60 % (a cell formatted as a percentage, 60 %, is "
    "read as 60 too).",
    "Ids are text: the id columns are formatted as text, so 00123 stays 00123. Any printable "
    "character may be part of an id.",
    "Yes/No columns take Yes, No, True, False, Y, N, 1 or 0; blank is No.",
    "A workbook with any problem is rejected whole, every problem listed as Sheet!Cell: what to "
    "fix. Preview it first; nothing is imported until it is clean.",
    f"This {INSTRUCTIONS_SHEET} sheet is not read: keep it, or delete it.",
)
INSTRUCTIONS_COLUMNS = ("Sheet", "Column", "Required", "What to enter")


def instructions_rows() -> list[tuple[str, ...]]:
    """The column reference on the Instructions sheet: (sheet, column, "Yes" or "", prompt)."""
    return [
        (sheet, column, "Yes" if (sheet, column) in REQUIRED else "", column_help(sheet, column)[0])
        for sheet, columns in SHEETS.items()
        for column in columns
    ]
