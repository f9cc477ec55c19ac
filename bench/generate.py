"""Deterministic benchmark data (SPEC P): 1,000 contracts, 3,000 lines, 100,000 transactions.

A fifth of the contracts have two customers; every line is T&M with a generated schedule whose run
dates fall inside the 60-day benchmark range. ``scale`` shrinks everything proportionally.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

from openpyxl import Workbook

from invoicing.workbook.columns import HEADERS

RANGE_START = date(2024, 1, 1)
RANGE_DAYS = 60
SCHEDULES = [
    ("Weekly", "Monday"),
    ("Biweekly", "Friday"),
    ("Monthly", "Last"),
    ("Semimonthly", "15, Last"),
    ("Monthly", "First Monday"),
    ("Daily", None),
]
CLASSES = ["Time", "Expense", "Material", "Fee"]


def sizes(scale: float) -> tuple[int, int, int]:
    contracts = max(1, round(1000 * scale))
    return contracts, contracts * 3, max(1, round(100_000 * scale))


def generate_workbook(
    path: Path,
    scale: float = 1.0,
    seed: int = 20240101,
    *,
    start: date = RANGE_START,
    days: int = RANGE_DAYS,
    lead: int = 20,
    limits: bool = True,
) -> dict[str, int]:
    """The workbook at ``path``. By default (P1-P5, P7) transactions fall from ``lead`` days
    before ``start`` to the end of the ``days``-day range; P6 spreads them over a year, with
    no not-to-exceed (``limits``), so that a store holding only the open work has the same
    work to do."""
    rng = random.Random(seed)
    n_contracts, n_lines, n_txns = sizes(scale)
    wb = Workbook(write_only=True)
    contracts = wb.create_sheet("Contracts")
    customers = wb.create_sheet("Customers")
    lines = wb.create_sheet("ContractLines")
    transactions = wb.create_sheet("Transactions")
    for sheet, name in (
        (contracts, "Contracts"),
        (customers, "Customers"),
        (lines, "ContractLines"),
        (transactions, "Transactions"),
    ):
        sheet.append(list(HEADERS[name]))
    line_ids: list[tuple[str, str]] = []
    for c in range(n_contracts):
        cid = f"CON-{c:05d}"
        currency = rng.choice(["USD", "USD", "EUR", "GBP", "JPY"])
        contracts.append([cid, f"Contract {c}", currency, rng.choice([14, 30, 45, 60])])
        if c % 5 == 0:
            customers.append([cid, f"CUS-{c:05d}-A", f"Customer {c} A", 60, None, "Yes"])
            customers.append([cid, f"CUS-{c:05d}-B", f"Customer {c} B", 40, None, "No"])
        else:
            customers.append([cid, f"CUS-{c:05d}", f"Customer {c}", 100, None, None])
        for n in range(3):
            lid = f"L{n + 1}"
            freq, run_day = SCHEDULES[(c + n) % len(SCHEDULES)]
            nte = 50_000 if limits and (c + n) % 7 == 0 else None
            lines.append(
                [
                    cid,
                    lid,
                    f"Line {n + 1}",
                    "Time and material",
                    None,
                    nte,
                    freq,
                    run_day,
                    start,
                    None,
                    None,
                ]
            )
            line_ids.append((cid, lid))
    for t in range(n_txns):
        cid, lid = line_ids[t % len(line_ids)]
        day = start + timedelta(days=rng.randrange(-lead, days))
        qty = rng.randrange(1, 40) / 4
        price = rng.choice([85, 100, 120.5, 150, 210])
        transactions.append(
            [
                f"TX-{t:07d}",
                cid,
                lid,
                rng.choice(CLASSES),
                day,
                f"Work item {t}",
                f"Resource {t % 97}",
                qty,
                price,
                None,
                "Yes" if rng.random() < 0.9 else "No",
            ]
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return {"contracts": n_contracts, "lines": n_lines, "transactions": n_txns}
