"""VAT of an invoice or credit note (SPEC E2, EN 16931 BR-CO-14/17).

Tax is computed per (category, percent) group: the group's line nets are summed first and the
tax of that sum is rounded half-up to the currency's minor unit once, never line by line. Credit
notes mirror invoices: their nets are negative and so is their tax (half-up rounding is symmetric:
``compute`` of the negated lines is exactly the negated result).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from invoicing.model import DetailStatus, Invoice, TaxCategory
from invoicing.money import HUNDRED, ZERO, decimals_of, minor_unit, round_half_up

MAX_PERCENT_DECIMALS = 2


CATEGORY_NAMES: dict[TaxCategory, str] = {
    TaxCategory.STANDARD: "Standard rate",
    TaxCategory.ZERO: "Zero rated",
    TaxCategory.EXEMPT: "Exempt from VAT",
    TaxCategory.REVERSE_CHARGE: "Reverse charge",
    TaxCategory.INTRA_COMMUNITY: "Intra-community supply",
    TaxCategory.EXPORT: "Export outside the EU",
    TaxCategory.NOT_SUBJECT: "Not subject to VAT",
}

# Categories whose rate is 0 by definition (BR-Z-05, BR-E-05, BR-AE-05, BR-IC-05, BR-G-05);
# O carries no rate at all (BR-O-05) and is held here as 0. S needs a rate above 0 (BR-S-05).
ZERO_RATED: frozenset[TaxCategory] = frozenset(TaxCategory) - {TaxCategory.STANDARD}


class Exemption(NamedTuple):
    """An exemption reason: a VATEX code (BT-121) and/or a text (BT-120)."""

    code: str
    text: str


# EN 16931 requires a reason for E (BR-E-10), AE (BR-AE-10), K (BR-IC-10), G (BR-G-10) and
# O (BR-O-10), and forbids one for S (BR-S-10) and Z (BR-Z-10). E has no generic VATEX code (each
# code cites a specific article of Directive 2006/112/EC), so its default is a text only.
NEEDS_EXEMPTION: frozenset[TaxCategory] = frozenset(
    {
        TaxCategory.EXEMPT,
        TaxCategory.REVERSE_CHARGE,
        TaxCategory.INTRA_COMMUNITY,
        TaxCategory.EXPORT,
        TaxCategory.NOT_SUBJECT,
    }
)
DEFAULT_EXEMPTIONS: dict[TaxCategory, Exemption] = {
    TaxCategory.EXEMPT: Exemption("", "Exempt from VAT"),
    TaxCategory.REVERSE_CHARGE: Exemption("VATEX-EU-AE", "Reverse charge"),
    TaxCategory.INTRA_COMMUNITY: Exemption("VATEX-EU-IC", "Intra-community supply"),
    TaxCategory.EXPORT: Exemption("VATEX-EU-G", "Export outside the EU"),
    TaxCategory.NOT_SUBJECT: Exemption("VATEX-EU-O", "Not subject to VAT"),
}


class TaxError(ValueError):
    """A tax category or percent EN 16931 does not allow (a reader reports it as a cell error)."""


def percent_problem(percent: Decimal) -> str | None:
    """Why a TaxPercent cell is not allowed (0-100, at most 2 decimals), or None."""
    if not percent.is_finite() or percent < 0 or percent > HUNDRED:
        return f"tax percent {percent} is not between 0 and 100"
    if decimals_of(percent.normalize()) > MAX_PERCENT_DECIMALS:
        return f"tax percent {percent} has more than {MAX_PERCENT_DECIMALS} decimals"
    return None


def category_problem(category: TaxCategory, percent: Decimal) -> str | None:
    """Why a (category, percent) pair is not allowed by EN 16931, or None."""
    if category is TaxCategory.STANDARD and percent <= 0:
        return "tax category S (standard rate) needs a tax percent above 0 (BR-S-05)"
    if category in ZERO_RATED and percent != 0:
        return (
            f"tax category {category.value} ({CATEGORY_NAMES[category].lower()}) "
            f"has a tax percent of 0, not {percent}"
        )
    return None


def parse_category(text: str) -> TaxCategory:
    """A TaxCategory cell's text (any case, spaces around ignored); ``TaxError`` otherwise."""
    code = text.strip().upper()
    try:
        return TaxCategory(code)
    except ValueError:
        codes = ", ".join(c.value for c in TaxCategory)
        raise TaxError(f'tax category "{text}" is not one of {codes}') from None


class LineTax(NamedTuple):
    """A contract line's VAT after the defaults of E2."""

    category: TaxCategory
    percent: Decimal


def resolve(
    percent: Decimal | None,
    category: TaxCategory | str | None,
    contract_percent: Decimal | None = None,
) -> LineTax:
    """Apply E2's defaults and check the result.

    Percent blank -> the contract's ``TaxPercent``, else 0. Category blank -> S when the percent
    is above 0, else E. A line that names a zero-rated category (Z, E, AE, K, G, O) and leaves its
    percent blank is at 0, whatever the contract's rate: the contract's rate is for the lines that
    say nothing. Raises ``TaxError`` for a percent out of range or a category that does not allow
    the percent (E at 20 %, S at 0 %).
    """
    for given in (percent, contract_percent):
        if given is not None and (why := percent_problem(given)):
            raise TaxError(why)
    code: TaxCategory | None = None
    if isinstance(category, TaxCategory):
        code = category
    elif category is not None and category.strip():
        code = parse_category(category)
    if percent is not None:
        rate = percent
    elif code in ZERO_RATED:
        rate = ZERO
    else:
        rate = ZERO if contract_percent is None else contract_percent
    if code is None:
        code = TaxCategory.STANDARD if rate > 0 else TaxCategory.EXEMPT
    if why := category_problem(code, rate):
        raise TaxError(why)
    return LineTax(code, rate)


class TaxableLine(NamedTuple):
    """One invoice line as the tax computation sees it."""

    net: Decimal
    category: TaxCategory
    percent: Decimal


@dataclass(frozen=True, slots=True)
class TaxLine:
    """One VAT breakdown group (EN 16931 BG-23)."""

    category: TaxCategory
    percent: Decimal
    basis: Decimal  # BT-116: the sum of the group's line nets
    tax: Decimal  # BT-117: basis x percent / 100, rounded half-up once
    exemption: Exemption | None  # BT-120/121, for the categories that need one

    def negated(self) -> TaxLine:
        return TaxLine(self.category, self.percent, -self.basis, -self.tax, self.exemption)


@dataclass(frozen=True, slots=True)
class TaxSummary:
    """An invoice's VAT breakdown and totals (E2; X5's NetAmount, TaxAmount, GrossAmount)."""

    currency: str
    lines: tuple[TaxLine, ...]
    net: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax

    def negated(self) -> TaxSummary:
        """The mirror (a credit note's figures from its credited amounts, or back)."""
        return TaxSummary(
            self.currency, tuple(t.negated() for t in self.lines), -self.net, -self.tax
        )


_ORDER = {category: i for i, category in enumerate(TaxCategory)}


def compute(
    lines: Iterable[TaxableLine],
    currency: str,
    exemptions: dict[TaxCategory, Exemption] | None = None,
) -> TaxSummary:
    """The VAT breakdown of an invoice's lines (E2, BR-CO-14/17).

    Groups are (category, percent); a group's tax is ``round_half_up(sum(nets) * percent / 100)``
    to the currency's minor unit. Groups come in category order (S, Z, E, AE, K, G, O), higher
    rates first. ``exemptions`` overrides ``DEFAULT_EXEMPTIONS`` per category.
    """
    places = minor_unit(currency)
    taxable = list(lines)
    for line in taxable:
        category = TaxCategory(line.category)
        if why := percent_problem(line.percent) or category_problem(category, line.percent):
            raise TaxError(why)
        if decimals_of(line.net) > places:
            raise TaxError(f"net amount {line.net} has more decimals than {currency} allows")
    if TaxCategory.NOT_SUBJECT in {TaxCategory(t.category) for t in taxable} and (
        len({(TaxCategory(t.category), t.percent.normalize()) for t in taxable}) > 1
    ):
        raise TaxError(
            "a document with a line not subject to VAT (category O) can have no other VAT "
            "category or rate (BR-O-11)"
        )
    return summarize(taxable, currency, exemptions)


def invoice_tax(invoice: Invoice) -> TaxSummary:
    """An invoice's or credit note's VAT from its lines (E2, X5): what the store and the invoice
    workbook carry. Unlike ``compute`` it checks nothing: the reader validated every line's
    category and percent, and a document (which must satisfy EN 16931) checks again. A credit
    note's ``stated_tax`` replaces its groups' own rounding (``credit_tax``)."""
    summary = summarize(
        [TaxableLine(li.amount, li.tax_category, li.tax_percent) for li in invoice.lines],
        invoice.currency,
    )
    return with_stated(summary, invoice.stated_tax)


def with_stated(
    summary: TaxSummary, stated: Iterable[tuple[TaxCategory, Decimal, Decimal]]
) -> TaxSummary:
    """``summary`` with the groups' tax given in ``stated`` ((category, percent, tax) each)."""
    given = {(TaxCategory(c), p.normalize() + ZERO): t for c, p, t in stated}
    if not given:
        return summary
    lines = tuple(
        dataclasses.replace(t, tax=given.get((t.category, t.percent.normalize() + ZERO), t.tax))
        for t in summary.lines
    )
    tax = sum((t.tax for t in lines), round_half_up(ZERO, minor_unit(summary.currency)))
    return TaxSummary(summary.currency, lines, summary.net, tax)


def credit_tax(
    note: Invoice, invoice: Invoice, before: Iterable[str], now: Iterable[str]
) -> tuple[tuple[TaxCategory, Decimal, Decimal], ...]:
    """The ``stated_tax`` of ``note``, a credit note of ``invoice`` that credits the details
    ``now`` after earlier credit notes credited ``before`` (SourceIds): empty when it is the
    note's own rounding (most of the time), else every group's tax, negative, computed as
    the group's tax on everything credited so far minus its tax on what was credited before.
    Rounding each credit note on its own would give back up to half a minor unit per note more
    (or less) than the invoice charged; these differences add up to exactly the invoice's tax
    once everything is credited, and each stays within one minor unit of its own rounding
    (which EN 16931's BR-CO-17 tolerates)."""
    places = minor_unit(invoice.currency)
    earlier, current = set(before), set(now)
    groups: dict[tuple[TaxCategory, Decimal], list[Decimal]] = {}
    for line in invoice.lines:
        key = (line.tax_category, line.tax_percent.normalize() + ZERO)
        sums = groups.setdefault(key, [ZERO, ZERO])
        for d in line.details:
            if d.status is not DetailStatus.INVOICED:
                continue
            if d.source_id in earlier:
                sums[0] += d.amount
            elif d.source_id in current:
                sums[1] += d.amount
    stated = []
    for (category, percent), (done, taking) in groups.items():
        if not taking:
            continue
        after = round_half_up((done + taking) * percent / HUNDRED, places)
        prior = round_half_up(done * percent / HUNDRED, places)
        stated.append((category, percent, prior - after))
    own = {(t.category, t.percent): t.tax for t in invoice_tax(note._replace(stated_tax=())).lines}
    if all(own.get((c, p)) == t for c, p, t in stated):
        return ()
    return tuple(stated)


def summarize(
    lines: Iterable[TaxableLine],
    currency: str,
    exemptions: Mapping[TaxCategory, Exemption] | None = None,
) -> TaxSummary:
    """The (category, percent) groups of ``lines``, each group's tax rounded half-up once."""
    places = minor_unit(currency)
    reasons = {**DEFAULT_EXEMPTIONS, **(exemptions or {})}
    groups: dict[tuple[TaxCategory, Decimal], Decimal] = {}
    net = ZERO
    for line in lines:
        key = (TaxCategory(line.category), line.percent.normalize() + ZERO)
        groups[key] = groups.get(key, ZERO) + line.net
        net += line.net
    breakdown: list[TaxLine] = []
    for (category, percent), basis in sorted(groups.items(), key=_group_order):
        breakdown.append(
            TaxLine(
                category,
                percent,
                round_half_up(basis, places),
                round_half_up(basis * percent / HUNDRED, places),
                reasons.get(category) if category in NEEDS_EXEMPTION else None,
            )
        )
    tax = sum((t.tax for t in breakdown), round_half_up(ZERO, places))
    return TaxSummary(currency, tuple(breakdown), round_half_up(net, places), tax)


def _group_order(group: tuple[tuple[TaxCategory, Decimal], Decimal]) -> tuple[int, Decimal]:
    (category, percent), _ = group
    return _ORDER[category], -percent
