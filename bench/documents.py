"""A batch of invoice documents (issue 14, acceptance 4): plan the benchmark workbook's invoices,
give their contracts a seller, buyer addresses and VAT, and time rendering ``--count`` of them
in each format (the rendering alone: reading them from storage is P5's and export's business).

    python -m bench.documents --workbook out/bench/in.xlsx --count 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

from invoicing import engine
from invoicing.model import Party, Status, TaxCategory
from invoicing.requests import DocumentFormat
from invoicing.services.documents import render
from invoicing.workbook.reader import read_workbook

SELLER = Party(
    "Contoso Consulting GmbH",
    street="Friedrichstrasse 100",
    city="Berlin",
    postal_code="10117",
    country_code="DE",
    vat_id="DE123456789",
    iban="DE89370400440532013000",
)
BUYER_ADDRESS = {
    "street": "1 Rue de Rivoli",
    "city": "Paris",
    "postal_code": "75001",
    "country_code": "FR",
    "vat_id": "FR40303265045",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workbook", required=True)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args(argv)
    portfolio = read_workbook(Path(args.workbook).read_bytes()).portfolio
    contracts = {}
    for c in portfolio.contracts:
        lines = tuple(
            dataclasses.replace(li, tax_category=TaxCategory.STANDARD, tax_percent=Decimal("19"))
            for li in c.lines
        )
        customers = tuple(
            dataclasses.replace(x, **BUYER_ADDRESS)
            for x in c.customers
        )
        contracts[c.contract_id] = dataclasses.replace(c, lines=lines, customers=customers)
    taxed = dataclasses.replace(portfolio, contracts=tuple(contracts.values()))
    dates = engine.date_range(*_span())
    invoices = [
        i._replace(status=Status.CONFIRMED, invoice_number=f"INV-{n:06d}")
        for n, i in enumerate(engine.plan_range(taxed, dates).invoices, 1)
        if i.amount > 0 and i.currency != "KWD"
    ][: args.count]
    results = {}
    for fmt in DocumentFormat:
        began = time.perf_counter()
        size = 0
        for inv in invoices:
            size += len(render(inv, contracts[inv.contract_id], SELLER, fmt).content)
        seconds = time.perf_counter() - began
        results[fmt.value] = {
            "documents": len(invoices),
            "seconds": round(seconds, 2),
            "per_document_ms": round(1000 * seconds / max(len(invoices), 1), 1),
            "mean_bytes": size // max(len(invoices), 1),
        }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump({"documents": results, "peak_rss_mb": round(peak, 1)}, sys.stdout, indent=2)
    print()
    return 0


def _span():
    from bench.stage import SPAN

    return SPAN


if __name__ == "__main__":
    raise SystemExit(main())
