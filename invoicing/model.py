"""The records the engine works on: dumb, immutable, validated before they are built.

A ``Contract`` carries everything that belongs to it (customers, lines, milestones, transactions),
because a contract is the unit the engine plans and the store partitions (S4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from invoicing.schedule import Schedule


class BillingMethod(StrEnum):
    TIME_AND_MATERIAL = "Time and material"
    FIXED_PRICE = "Fixed price"


class TxnClass(StrEnum):
    TIME = "Time"
    EXPENSE = "Expense"
    MATERIAL = "Material"
    FEE = "Fee"


ALL_CLASSES: frozenset[TxnClass] = frozenset(TxnClass)

# Run dates the engine accepts: with payment terms of at most 36,500 days (the reader's cap), the
# due date of the latest run date still fits in a Python date.
EARLIEST_RUN_DATE = date(1900, 1, 1)
LATEST_RUN_DATE = date(9899, 12, 31)


class SourceType(StrEnum):
    TRANSACTION = "Transaction"
    MILESTONE = "Milestone"


class Status(StrEnum):
    DRAFT = "Draft"
    CONFIRMED = "Confirmed"
    CANCELLED = "Cancelled"


class DocumentType(StrEnum):
    INVOICE = "Invoice"
    CREDIT_NOTE = "CreditNote"


class DetailStatus(StrEnum):
    """What became of a detail (X5): invoiced, or written off on its draft (R22), or removed from
    its draft (R22: the share went back to the backlog; kept for the share's record, not shown)."""

    INVOICED = "Invoiced"
    WRITTEN_OFF = "WrittenOff"
    REMOVED = "Removed"
    CREDITED = "Credited"  # a credit note's detail (R21), or an invoice detail a credit note took


class TaxCategory(StrEnum):
    """The EN 16931 VAT category codes (UNTDID 5305 subset) a contract line may carry (E2)."""

    STANDARD = "S"
    ZERO = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"  # VAT exempt for EEA intra-community supply of goods and services
    EXPORT = "G"  # free export item, VAT not charged
    NOT_SUBJECT = "O"  # services outside scope of tax


class Outcome(StrEnum):
    INVOICED = "Invoiced"
    SKIPPED = "Skipped"
    HELD = "Held"


@dataclass(frozen=True, slots=True)
class Party:
    """A seller (the ``Seller`` sheet, W11) or a buyer (a contract customer's address columns, E1).

    Blank text means absent. ``legal_id`` (EN 16931 BT-30 / BT-47, the company registration
    number) is not a W11 column yet: a seller without a VAT id needs it (BR-CO-26).
    """

    name: str
    street: str = ""
    city: str = ""
    postal_code: str = ""
    country_code: str = ""
    vat_id: str = ""
    email: str = ""
    iban: str = ""
    legal_id: str = ""


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    name: str
    split_percent: Decimal
    rounding: bool = False
    # E1: the customer's address and VAT id, the buyer of its invoices' documents.
    street: str = ""
    city: str = ""
    postal_code: str = ""
    country_code: str = ""
    vat_id: str = ""
    email: str = ""

    def party(self) -> Party:
        return Party(
            name=self.name or self.customer_id,
            street=self.street,
            city=self.city,
            postal_code=self.postal_code,
            country_code=self.country_code,
            vat_id=self.vat_id,
            email=self.email,
        )


@dataclass(frozen=True, slots=True)
class ContractLine:
    line_id: str
    name: str
    billing_method: BillingMethod
    classes: frozenset[TxnClass] = ALL_CLASSES
    not_to_exceed: Decimal | None = None
    schedule: Schedule | None = None  # T&M only; FP lines are due on their milestone dates
    customers: tuple[Customer, ...] = ()  # line-level override (R2); empty = the contract's list
    # E2, after its defaults (the reader resolves a blank percent and category).
    tax_category: TaxCategory = TaxCategory.EXEMPT
    tax_percent: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Milestone:
    milestone_id: str
    line_id: str
    name: str
    date: date
    amount: Decimal
    ready: bool


@dataclass(frozen=True, slots=True)
class Transaction:
    transaction_id: str
    line_id: str
    txn_class: TxnClass
    date: date
    amount: Decimal
    ready: bool
    description: str = ""
    resource: str = ""
    quantity: Decimal | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Contract:
    contract_id: str
    name: str
    currency: str
    customers: tuple[Customer, ...]
    lines: tuple[ContractLine, ...]
    milestones: tuple[Milestone, ...] = ()
    transactions: tuple[Transaction, ...] = ()
    payment_terms_days: int = 30
    tax_percent: Decimal | None = None  # E2: the rate of the lines that give none

    def customers_for(self, line: ContractLine) -> tuple[Customer, ...]:
        return line.customers or self.customers


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Every contract of one input workbook, in workbook order."""

    contracts: tuple[Contract, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)
    seller: Party | None = None  # W11: the optional Seller sheet

    def contract(self, contract_id: str) -> Contract | None:
        for contract in self.contracts:
            if contract.contract_id == contract_id:
                return contract
        return None


# An item is identified within its contract by its kind and id (TransactionId is unique across
# the workbook, MilestoneId within its contract: W9).
ItemKey = tuple[SourceType, str]


def rounding_index(customers: tuple[Customer, ...]) -> int:
    """The rounding customer (R2): the flagged one, else the first listed."""
    for i, customer in enumerate(customers):
        if customer.rounding:
            return i
    return 0


# ---- what the engine plans and the store keeps ---------------------------------------------------


class Detail(NamedTuple):
    """One item's share on one customer's invoice line (a named tuple: the engine makes one per
    invoiced item and customer, so construction cost matters for P2)."""

    source_type: SourceType
    source_id: str
    txn_class: TxnClass | None
    date: date
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    split_percent: Decimal
    amount: Decimal
    status: DetailStatus = DetailStatus.INVOICED
    note: str = ""  # why it was written off (R22), when someone said
    # the share went out again as fixed by an earlier invoicing (R13, R15), not a fresh split:
    # the share rule finds an item's latest generation by its fresh splits
    rebilled: bool = False


class InvoiceLine(NamedTuple):
    line_number: int
    contract_line_id: str
    line_name: str
    billing_method: BillingMethod
    cutoff: date | None  # T&M: the schedule row's cut-off; FP: none
    amount: Decimal
    details: tuple[Detail, ...]
    # E2: the contract line's VAT, copied when the line is planned (a credit note keeps it)
    tax_category: TaxCategory = TaxCategory.EXEMPT
    tax_percent: Decimal = Decimal(0)


class Invoice(NamedTuple):
    """A planned or stored invoice. Invoices, lines, details and log entries are named tuples:
    immutable records like the dataclasses, and several times cheaper to build (P2)."""

    invoice_id: str
    contract_id: str
    contract_name: str
    customer_id: str
    customer_name: str
    invoice_date: date
    due_date: date
    currency: str
    amount: Decimal
    lines: tuple[InvoiceLine, ...]
    status: Status = Status.DRAFT
    invoice_number: str | None = None
    document_type: DocumentType = DocumentType.INVOICE
    # a credit note: the invoice it credits, and that invoice's number (R21)
    credited_invoice_id: str | None = None
    credited_number: str | None = None
    # an invoice: its credit notes as (CreditNoteId, number), in the order they were made
    credit_notes: tuple[tuple[str, str | None], ...] = ()
    # a credit note's tax per (category, percent) when it is not its own lines' rounding: the
    # credits of one invoice give back exactly its tax, group by group (R21, E2)
    stated_tax: tuple[tuple[TaxCategory, Decimal, Decimal], ...] = ()

    @property
    def is_credit_note(self) -> bool:
        return self.document_type is DocumentType.CREDIT_NOTE


class LogEntry(NamedTuple):
    """One RunLog row (X4): a due line's outcome on a run date, or one held item."""

    run_date: date
    contract_id: str
    line_id: str
    outcome: Outcome
    items: int
    amount: Decimal
    note: str
    currency: str = ""  # the contract's, so the amount can be shown in its minor unit


class Share(NamedTuple):
    """One customer's part of one item (R13): fixed at the item's first invoicing."""

    customer_id: str
    customer_name: str
    split_percent: Decimal
    amount: Decimal
