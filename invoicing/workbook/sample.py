"""The seed's worked example (Adatum, October-November 2020) as input rows (``templates/``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from invoicing.model import BillingMethod
from invoicing.workbook.columns import SELLER
from invoicing.workbook.template_help import (
    CONTRACT_LINES,
    CONTRACTS,
    CUSTOMERS,
    INVOICE_SCHEDULE,
    MILESTONES,
    TRANSACTIONS,
)

Row = Sequence[Any]

# ---- the Adatum sample --------------------------------------------------------------------------
# Seed: "Prototype work" fixed price with two milestones (Oct 5: 5,000 USD; Nov 3: 12,000 USD);
# "Implementation work", Time, billed bi-weekly on Mondays (generated on the line: Oct 5, Oct 19,
# Nov 2, Nov 16); "Expenses incurred" billed on the first Monday of the month (written out row by
# row on InvoiceSchedule: Oct 5 with cut-off Oct 4, Nov 2 with cut-off Nov 1). A preview from
# 2020-10-01 to 2020-11-30 gives five invoices, one per run date of the seed:
#   Oct 5  PROTOTYPE 5,000.00 (M1) + IMPLEMENTATION 1,800.00 (T001, T002) + EXPENSES 350.00 (E001)
#   Oct 19 IMPLEMENTATION 2,400.00 (T003 dated Oct 5, the day after the cut-off; T004)
#   Nov 2  IMPLEMENTATION 1,500.00 (T005, T006 on the cut-off) + EXPENSES 487.70 (E002, E004)
#   Nov 3  PROTOTYPE 12,000.00 (M2)
#   Nov 16 IMPLEMENTATION 900.00 (T007)
# Every line is at the contract's TaxPercent of 20 % (category S by default); the Seller sheet and
# the customer's address and VAT id make the invoices' documents complete (E1, E2).
# T008 and E003 are not ready to invoice and are never invoiced.

_C = "ADATUM-001"
_D = date.fromisoformat
_Y, _N = "Yes", "No"

ADATUM_ROWS: dict[str, list[Row]] = {
    CONTRACTS: [[_C, "Adatum implementation services", "USD", 30, 20]],
    CUSTOMERS: [
        [
            _C,
            "ADATUM",
            "Adatum Corporation",
            100,
            None,
            _Y,
            "1 Deansgate",
            "Manchester",
            "M3 1AZ",
            "GB",
            "GB987654321",
            "accounts@adatum.example",
        ]
    ],
    CONTRACT_LINES: [
        [
            _C,
            "PROTOTYPE",
            "Prototype work",
            BillingMethod.FIXED_PRICE.value,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ],
        [
            _C,
            "IMPLEMENTATION",
            "Implementation work",
            BillingMethod.TIME_AND_MATERIAL.value,
            "Time",
            None,
            "Biweekly",
            "Monday",
            _D("2020-10-05"),
            _D("2020-11-16"),
            None,
            None,
            None,
        ],
        [
            _C,
            "EXPENSES",
            "Expenses incurred",
            BillingMethod.TIME_AND_MATERIAL.value,
            "Expense",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ],
    ],
    INVOICE_SCHEDULE: [
        [_C, "EXPENSES", _D("2020-10-05"), _D("2020-10-04")],
        [_C, "EXPENSES", _D("2020-11-02"), _D("2020-11-01")],
    ],
    MILESTONES: [
        [
            _C,
            "PROTOTYPE",
            "M1",
            "Prototype: design sign-off",
            _D("2020-10-05"),
            Decimal("5000.00"),
            _Y,
        ],
        [_C, "PROTOTYPE", "M2", "Prototype: accepted", _D("2020-11-03"), Decimal("12000.00"), _Y],
    ],
    TRANSACTIONS: [
        [
            "T001",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-09-28"),
            "Requirements workshop",
            "Alex Rivera",
            8,
            150,
            None,
            _Y,
        ],
        [
            "T002",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-10-04"),
            "Weekend cut-over preparation (on the Oct 4 cut-off)",
            "Alex Rivera",
            4,
            150,
            None,
            _Y,
        ],
        [
            "T003",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-10-05"),
            "Configuration (day after the cut-off: Oct 19 invoice)",
            "Sam Chen",
            8,
            150,
            None,
            _Y,
        ],
        [
            "T004",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-10-12"),
            "Data migration",
            "Sam Chen",
            8,
            150,
            None,
            _Y,
        ],
        [
            "T005",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-10-26"),
            "Integration testing",
            "Alex Rivera",
            6,
            150,
            None,
            _Y,
        ],
        [
            "T006",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-11-01"),
            "Go-live support (on the Nov 1 cut-off)",
            "Sam Chen",
            4,
            150,
            None,
            _Y,
        ],
        [
            "T007",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-11-09"),
            "Hypercare",
            "Alex Rivera",
            6,
            150,
            None,
            _Y,
        ],
        [
            "T008",
            _C,
            "IMPLEMENTATION",
            "Time",
            _D("2020-10-14"),
            "Internal rework (not ready to invoice)",
            "Sam Chen",
            5,
            150,
            None,
            _N,
        ],
        [
            "E001",
            _C,
            "EXPENSES",
            "Expense",
            _D("2020-10-04"),
            "Flight to Adatum head office",
            "Alex Rivera",
            None,
            None,
            Decimal("350.00"),
            _Y,
        ],
        [
            "E002",
            _C,
            "EXPENSES",
            "Expense",
            _D("2020-10-05"),
            "Hotel, two nights (after the Oct 4 cut-off: Nov 2 invoice)",
            "Alex Rivera",
            None,
            None,
            Decimal("420.50"),
            _Y,
        ],
        [
            "E003",
            _C,
            "EXPENSES",
            "Expense",
            _D("2020-10-20"),
            "Team dinner (not ready to invoice)",
            "Sam Chen",
            None,
            None,
            Decimal("180.00"),
            _N,
        ],
        [
            "E004",
            _C,
            "EXPENSES",
            "Expense",
            _D("2020-10-30"),
            "Mileage, 120 km at 0.56",
            "Sam Chen",
            120,
            Decimal("0.56"),
            None,
            _Y,
        ],
    ],
    SELLER: [
        [
            "Northwind Consulting Ltd",
            "20 Finsbury Square",
            "London",
            "EC2A 1AB",
            "GB",
            "GB123456789",
            "billing@northwind.example",
            "GB33BUKB20201555555555",
        ]
    ],
}
