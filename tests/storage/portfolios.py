"""Input workbooks for the storage tests: random portfolios (seeded) as real .xlsx bytes, and the
helpers that compare what the store holds with what the pure engine (the preview) plans."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from invoicing import engine
from invoicing.engine import Invoice, LogEntry
from invoicing.services import list_invoices
from invoicing.storage.store import Store
from invoicing.workbook.reader import read_workbook
from invoicing.workbook.writer import log_order
from tests.support.workbooks import HEADERS, Book, xlsx

START = date(2020, 10, 1)
END = date(2020, 11, 30)
ODD_IDS = [
    "A/B",
    "back\\slash",
    "hash#1",
    "what?",
    "it's",
    'say "hi"',
    "50%",
    "a+b",
    "Ærø-ü",
    "契約",
    "emoji 🙂",
    "~7E",
    "pipe|semi;colon",
    "x & y <z>",
    "ÿ%2F",
]
CLASSES = ("Time", "Expense", "Material", "Fee")


def random_book(
    seed: int, *, contracts: int = 4, transactions: int = 80, odd_ids: bool = False
) -> Book:
    """A valid workbook: contracts in USD/JPY/KWD with 1-3 customers (line overrides sometimes),
    T&M lines on generated or explicit schedules (some with not-to-exceed), FP lines with
    milestones, and transactions from Sep 15 to Nov 30 2020, some not ready, some zero."""
    rnd = random.Random(seed)
    book: Book = {sheet: [list(header)] for sheet, header in HEADERS.items()}

    def ident(prefix: str, n: int | str) -> str:
        if odd_ids and rnd.random() < 0.6:
            return f"{prefix}{n}{rnd.choice(ODD_IDS)}"
        return f"{prefix}{n}"

    tm_lines: list[tuple[str, str, str, list[str]]] = []  # contract, line, currency, classes
    for c in range(contracts):
        cid = ident("C", c)
        currency = rnd.choice(["USD", "USD", "JPY", "KWD"])
        book["Contracts"].append([cid, f"Contract {c}", currency, rnd.choice([None, 14, 30, 45])])
        splits = rnd.choice([[100], [60, 40], [33.3333, 33.3333, 33.3334], [50, 50]])
        rounding = rnd.randrange(len(splits))
        customer_ids = [ident("K", k) for k in range(len(splits))]
        for k, split in enumerate(splits):
            book["Customers"].append(
                [
                    cid,
                    customer_ids[k],
                    f"Customer {k}",
                    split,
                    None,
                    "Yes" if k == rounding else None,
                ]
            )
        for n in range(rnd.randint(1, 3)):
            lid = ident("L", n)
            kind = rnd.random()
            if kind < 0.25:
                book["ContractLines"].append(
                    [
                        cid,
                        lid,
                        f"Fixed {n}",
                        "Fixed price",
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    ]
                )
                for m in range(rnd.randint(1, 3)):
                    day = START + timedelta(days=rnd.randrange(61))
                    book["Milestones"].append(
                        [
                            cid,
                            lid,
                            ident("M", f"{n}.{m}"),
                            f"Milestone {m}",
                            day,
                            _amount(rnd, currency, 500, 5000),
                            "Yes" if rnd.random() < 0.8 else "No",
                        ]
                    )
                continue
            classes = rnd.choice([None, "Time", "Time, Expense", "Expense, Material, Fee"])
            nte = _amount(rnd, currency, 800, 4000) if rnd.random() < 0.3 else None
            if kind < 0.45:
                book["ContractLines"].append(
                    [
                        cid,
                        lid,
                        f"T&M {n}",
                        "Time and material",
                        classes,
                        nte,
                        None,
                        None,
                        None,
                        None,
                        None,
                    ]
                )
                days = sorted({START + timedelta(days=rnd.randrange(61)) for _ in range(3)})
                for day in days:
                    cutoff = day - timedelta(days=rnd.choice([1, 1, 3]))
                    book["InvoiceSchedule"].append([cid, lid, day, cutoff])
            else:
                freq, run_day = rnd.choice(
                    [
                        ("Weekly", "Monday"),
                        ("Biweekly", "Friday"),
                        ("Monthly", "Last"),
                        ("Monthly", "First Monday"),
                        ("Semimonthly", "15, Last"),
                        ("Daily", None),
                    ]
                )
                book["ContractLines"].append(
                    [
                        cid,
                        lid,
                        f"T&M {n}",
                        "Time and material",
                        classes,
                        nte,
                        freq,
                        run_day,
                        date(2020, 9, 1),
                        None,
                        None,
                    ]
                )
            if rnd.random() < 0.3 and len(splits) > 1:  # a line-level customer override
                for k, split in enumerate([70, 30]):
                    book["Customers"].append(
                        [
                            cid,
                            customer_ids[k],
                            f"Customer {k}",
                            split,
                            lid,
                            "Yes" if k == 0 else None,
                        ]
                    )
            tm_lines.append((cid, lid, currency, classes.split(", ") if classes else list(CLASSES)))
    for t in range(transactions if tm_lines else 0):
        cid, lid, currency, classes = rnd.choice(tm_lines)
        day = date(2020, 9, 15) + timedelta(days=rnd.randrange(77))
        ready = "Yes" if rnd.random() < 0.85 else "No"
        amount = Decimal(0) if rnd.random() < 0.03 else _amount(rnd, currency, 1, 900)
        book["Transactions"].append(
            [
                ident("T", t),
                cid,
                lid,
                rnd.choice(classes),
                day,
                f"work {t}",
                f"R{t % 7}",
                None,
                None,
                amount,
                ready,
            ]
        )
    return book


def _amount(rnd: random.Random, currency: str, low: int, high: int) -> Decimal:
    places = {"JPY": 0, "KWD": 3}.get(currency, 2)
    return Decimal(rnd.randint(low * 10**places, high * 10**places)).scaleb(-places)


def workbook(book: Book) -> bytes:
    return xlsx(book)


def expected(
    data: bytes, start: date = START, end: date = END
) -> tuple[list[Invoice], list[LogEntry]]:
    """What the preview plans for ``data`` over the range: the reference of R20, in the order a
    listing gives (the sheets' own orders; the plan's log is in import order, and contract ids
    imported as C9 then C10 sort C10 first)."""
    plan = engine.plan_range(read_workbook(data).portfolio, engine.date_range(start, end))
    invoices = sorted(plan.invoices, key=lambda i: (i.invoice_date, i.contract_id, i.customer_id))
    return invoices, sorted(plan.log, key=log_order)


def stored(
    store: Store, start: date | None = None, end: date | None = None
) -> tuple[list[Invoice], list[LogEntry]]:
    invoices, log = list_invoices(store, start, end)
    return list(invoices), list(log)


def key_log(log: list[LogEntry]) -> list[Any]:
    """A RunLog as a sorted list (the order among contracts of one date is not part of R20)."""
    return sorted(
        (
            e.run_date,
            e.contract_id,
            e.line_id,
            e.outcome.value,
            e.items,
            e.amount,
            e.note,
            e.currency,
        )
        for e in log
    )
