"""What the reader builds while it reads: drafts of contracts, lines and split groups, the lookups
the per-sheet rules share, and the model's records built from the drafts once nothing is wrong.

Cross-sheet checks do not cascade: a row that names a contract or line whose own row is broken is
not checked against it (the root problem is reported once).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal

from invoicing.model import (
    ALL_CLASSES,
    BillingMethod,
    Contract,
    ContractLine,
    Customer,
    Milestone,
    Party,
    TaxCategory,
    Transaction,
    TxnClass,
)
from invoicing.schedule import ExplicitSchedule, GeneratedSchedule, ScheduleRow
from invoicing.tax import LineTax
from invoicing.workbook.loading import Sheets, SheetTable

NO_TAX = LineTax(TaxCategory.EXEMPT, Decimal(0))
TM = BillingMethod.TIME_AND_MATERIAL
FP = BillingMethod.FIXED_PRICE


class ContractDraft:
    """A contract being read."""

    __slots__ = (
        "addresses",
        "contract_id",
        "currency",
        "customer_groups",
        "customer_ids",
        "lines",
        "milestone_rows",
        "milestones",
        "name",
        "ok",
        "places",
        "row",
        "tax_percent",
        "terms",
        "txn_rows",
        "txns",
    )

    def __init__(self, contract_id: str, row: int):
        self.contract_id = contract_id
        self.row = row
        self.ok = True
        self.name = ""
        self.currency = ""
        self.places: int | None = None  # the currency's minor unit (a fallback if it is bad)
        self.terms = 30
        self.tax_percent: Decimal | None = None  # E2: the rate of the lines that give none
        # customer id -> field -> (value, first row): one address per customer (E1)
        self.addresses: dict[str, dict[str, tuple[str, int]]] = {}
        self.lines: dict[str, LineDraft] = {}
        # line id (None = contract level) -> its customers
        self.customer_groups: dict[str | None, SplitGroup] = {}
        self.customer_ids: set[str] = set()
        self.milestones: list[Milestone] = []
        self.milestone_rows: list[int] = []
        self.txns: list[Transaction] = []
        self.txn_rows: list[int] = []


class LineDraft:
    """A contract line being read."""

    __slots__ = (
        "checkable",
        "classes",
        "contract",
        "generated",
        "line_id",
        "method",
        "milestone_count",
        "name",
        "nte",
        "ok",
        "row",
        "schedule_cell",
        "schedule_rows",
        "schedule_seen",
        "tax",
    )

    def __init__(self, contract: ContractDraft, line_id: str, row: int):
        self.contract = contract
        self.line_id = line_id
        self.row = row
        self.ok = True
        self.checkable = False  # its method and classes are good: transactions check against it
        self.name = ""
        self.method: BillingMethod | None = None
        self.classes: frozenset[TxnClass] = ALL_CLASSES
        self.nte: Decimal | None = None
        self.generated: GeneratedSchedule | None = None
        self.schedule_cell = ""  # first schedule column given on the line (T&M)
        self.schedule_rows: list[ScheduleRow] = []
        self.schedule_seen: dict[date, int] = {}
        self.milestone_count = 0
        self.tax = NO_TAX  # E2, after its defaults


class SplitGroup:
    """The customers splitting one contract (or one line, for a line-level split): R2."""

    __slots__ = ("customers", "first_row", "ids", "ok", "rounding_row", "total")

    def __init__(self, first_row: int):
        self.customers: list[Customer] = []
        self.first_row = first_row
        self.ids: dict[str, int] = {}  # customer id -> row
        self.ok = True
        self.total = Decimal(0)
        self.rounding_row = 0


class Reading(Sheets):
    """The loaded sheets plus the contracts drafted so far: the state every rule works on."""

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.contracts: dict[str, ContractDraft] = {}
        self.transaction_rows: dict[str, int] = {}
        self.seller: Party | None = None
        self.seller_row = 0

    def contract_of(self, table: SheetTable, row: int, cid: object) -> ContractDraft | None:
        """The contract a row names; reports an unknown one (unless Contracts is unusable)."""
        if not isinstance(cid, str):
            return None
        contract = self.contracts.get(cid)
        if contract is None and "Contracts" in self.usable:
            self.problem(
                table, "ContractId", row, f'contract "{cid}" is not on the Contracts sheet'
            )
        return contract

    def line_of(
        self, table: SheetTable, row: int, contract: ContractDraft | None, lid: object
    ) -> LineDraft | None:
        if contract is None or not isinstance(lid, str):
            return None
        line = contract.lines.get(lid)
        if line is None and "ContractLines" in self.usable:
            self.problem(
                table,
                "LineId",
                row,
                f'line "{lid}" is not a line of contract "{contract.contract_id}"',
            )
        return line

    def money_ok(
        self,
        table: SheetTable,
        row: int,
        column: str,
        value: Decimal,
        contract: ContractDraft | None,
    ) -> bool:
        """At most the contract currency's decimals (unchecked while the currency is unusable)."""
        if contract is None or contract.places is None:
            return True
        return self.decimals_ok(table, row, column, value, contract.places, contract.currency)


class Locations(Mapping[tuple[str, str, str], tuple[str, int]]):
    """(contract_id, kind, id) -> (sheet, row), built on first use (the engine never needs it)."""

    def __init__(self, contracts: list[ContractDraft], tables: dict[str, SheetTable]):
        self._contracts = contracts
        self._names = {canonical: t.name for canonical, t in tables.items()}
        self._map: dict[tuple[str, str, str], tuple[str, int]] | None = None

    def _built(self) -> dict[tuple[str, str, str], tuple[str, int]]:
        if self._map is None:
            names = self._names
            contracts_sheet = names.get("Contracts", "Contracts")
            lines_sheet = names.get("ContractLines", "ContractLines")
            milestones_sheet = names.get("Milestones", "Milestones")
            txn_sheet = names.get("Transactions", "Transactions")
            built: dict[tuple[str, str, str], tuple[str, int]] = {}
            for c in self._contracts:
                cid = c.contract_id
                built[(cid, "Contract", cid)] = (contracts_sheet, c.row)
                for line in c.lines.values():
                    built[(cid, "Line", line.line_id)] = (lines_sheet, line.row)
                for m, row in zip(c.milestones, c.milestone_rows, strict=True):
                    built[(cid, "Milestone", m.milestone_id)] = (milestones_sheet, row)
                for t, row in zip(c.txns, c.txn_rows, strict=True):
                    built[(cid, "Transaction", t.transaction_id)] = (txn_sheet, row)
            self._map = built
        return self._map

    def __getitem__(self, key: tuple[str, str, str]) -> tuple[str, int]:
        return self._built()[key]

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def build_contract(c: ContractDraft) -> Contract:
    """The model's contract of a draft that had no problem."""
    groups = c.customer_groups
    lines = []
    for line in c.lines.values():
        schedule = None
        if line.method is TM:
            if line.generated is not None:
                schedule = line.generated
            elif line.schedule_rows:
                schedule = ExplicitSchedule(
                    tuple(sorted(line.schedule_rows, key=lambda r: r.run_date))
                )
        override = groups.get(line.line_id)
        lines.append(
            ContractLine(
                line_id=line.line_id,
                name=line.name,
                billing_method=line.method,  # type: ignore[arg-type]
                classes=line.classes if line.method is TM else ALL_CLASSES,
                not_to_exceed=line.nte,
                schedule=schedule,
                customers=_addressed(override.customers, c) if override is not None else (),
                tax_category=line.tax.category,
                tax_percent=line.tax.percent,
            )
        )
    return Contract(
        contract_id=c.contract_id,
        name=c.name,
        currency=c.currency,
        customers=_addressed(groups[None].customers, c),
        lines=tuple(lines),
        milestones=tuple(c.milestones),
        transactions=tuple(c.txns),
        payment_terms_days=c.terms,
        tax_percent=c.tax_percent,
    )


def _addressed(customers: list[Customer], c: ContractDraft) -> tuple[Customer, ...]:
    """The customers with the address their rows give together (E1)."""
    if not c.addresses:
        return tuple(customers)
    out = []
    for customer in customers:
        given = c.addresses.get(customer.customer_id)
        if given:
            customer = replace(customer, **{field: value for field, (value, _) in given.items()})
        out.append(customer)
    return tuple(out)
