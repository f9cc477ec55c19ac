"""VAT per (category, percent) group, rounded once per group (E2, EN 16931 BR-CO-14/17)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing.money import minor_unit, round_half_up
from invoicing.tax import (
    DEFAULT_EXEMPTIONS,
    Exemption,
    LineTax,
    TaxableLine,
    TaxCategory,
    TaxError,
    compute,
    percent_problem,
    resolve,
)

S, Z, E, AE, K, G = (TaxCategory(c) for c in ("S", "Z", "E", "AE", "K", "G"))
O = TaxCategory.NOT_SUBJECT  # noqa: E741 (the EN 16931 code)


def M(text: str) -> Decimal:
    return Decimal(text)


def lines(category: TaxCategory, percent: str, *nets: str) -> list[TaxableLine]:
    return [TaxableLine(M(n), category, M(percent)) for n in nets]


# ---- rounding once per group ---------------------------------------------------------------


def test_three_lines_of_0_333_at_20_percent_round_once_per_group_kwd():
    summary = compute(lines(S, "20", "0.333", "0.333", "0.333"), "KWD")
    per_line = sum(round_half_up(M("0.333") * 20 / 100, 3) for _ in range(3))
    assert per_line == M("0.201")  # 0.0666 -> 0.067, three times
    assert summary.tax == M("0.200")  # 0.999 x 20 % = 0.1998 -> 0.200, once
    assert [(t.basis, t.tax) for t in summary.lines] == [(M("0.999"), M("0.200"))]
    assert summary.net == M("0.999") and summary.gross == M("1.199")


def test_three_lines_of_0_33_at_20_percent_round_once_per_group_eur():
    summary = compute(lines(S, "20", "0.33", "0.33", "0.33"), "EUR")
    assert sum(round_half_up(M("0.33") * 20 / 100, 2) for _ in range(3)) == M("0.21")
    assert summary.tax == M("0.20")  # 0.99 x 20 % = 0.198 -> 0.20
    assert str(summary.tax) == "0.20" and str(summary.gross) == "1.19"


def test_half_a_minor_unit_rounds_up():
    assert compute(lines(S, "5", "0.10"), "EUR").tax == M("0.01")  # 0.005 -> 0.01
    assert compute(lines(S, "5", "0.30"), "EUR").tax == M("0.02")  # 0.015 -> 0.02
    assert compute(lines(S, "5", "0.10", "0.10", "0.10"), "EUR").tax == M("0.02")  # not 0.03


def test_each_category_and_percent_is_its_own_group_in_a_fixed_order():
    summary = compute(
        [
            *lines(Z, "0", "50.00"),
            *lines(S, "7", "100.00", "0.10"),
            *lines(AE, "0", "30.00"),
            *lines(S, "19", "200.00"),
            *lines(E, "0", "20.00"),
            *lines(S, "7.00", "0.05"),  # 7.00 and 7 are the same rate
        ],
        "EUR",
    )
    assert [
        (t.category.value, str(t.percent), str(t.basis), str(t.tax)) for t in summary.lines
    ] == [
        ("S", "19", "200.00", "38.00"),
        ("S", "7", "100.15", "7.01"),  # 7.0105 -> 7.01
        ("Z", "0", "50.00", "0.00"),
        ("E", "0", "20.00", "0.00"),
        ("AE", "0", "30.00", "0.00"),
    ]
    assert summary.net == M("400.15")
    assert summary.tax == M("45.01")
    assert summary.gross == M("445.16")


def test_fractional_rates():
    summary = compute(lines(S, "7.7", "99.95"), "CHF")
    assert summary.tax == M("7.70")  # 7.69615 -> 7.70
    summary = compute(lines(S, "5.5", "10.09"), "EUR")
    assert summary.tax == M("0.55")  # 0.55495 -> 0.55


# ---- currencies ----------------------------------------------------------------------------


def test_jpy_has_no_decimals():
    summary = compute([*lines(S, "10", "12345"), *lines(S, "8", "1000", "1001")], "JPY")
    assert [str(t.tax) for t in summary.lines] == ["1235", "160"]  # 1234.5 -> 1235; 160.08
    assert str(summary.tax) == "1395" and str(summary.gross) == "15741"


def test_jpy_half_up_at_the_yen():
    assert compute(lines(S, "10", "1235"), "JPY").tax == M("124")  # 123.5
    assert compute(lines(S, "10", "1234"), "JPY").tax == M("123")  # 123.4


def test_kwd_has_three_decimals():
    summary = compute(lines(S, "5", "12.345", "0.005"), "KWD")
    assert str(summary.net) == "12.350"
    assert str(summary.tax) == "0.618"  # 0.6175 -> 0.618
    assert str(summary.gross) == "12.968"


def test_amounts_with_more_decimals_than_the_currency_are_refused():
    with pytest.raises(TaxError, match="more decimals than JPY"):
        compute(lines(S, "10", "10.5"), "JPY")


# ---- zero-rated categories and their exemption reasons ------------------------------------


@pytest.mark.parametrize("category", [Z, E, AE, K, G])
def test_zero_rated_categories_have_no_tax(category):
    summary = compute(lines(category, "0", "100.00", "23.45"), "EUR")
    (group,) = summary.lines
    assert group.tax == M("0.00") and summary.tax == M("0.00")
    assert summary.gross == summary.net == M("123.45")


def test_exemption_reasons_are_given_where_en16931_requires_them():
    reasons = {
        t.category: t.exemption
        for t in compute(
            [
                *lines(S, "20", "1.00"),
                *lines(Z, "0", "1.00"),
                *lines(E, "0", "1.00"),
                *lines(AE, "0", "1.00"),
                *lines(K, "0", "1.00"),
                *lines(G, "0", "1.00"),
            ],
            "EUR",
        ).lines
    }
    assert reasons[S] is None  # BR-S-10: none allowed
    assert reasons[Z] is None  # BR-Z-10: none allowed
    assert reasons[E] == Exemption("", "Exempt from VAT")  # BR-E-10
    assert reasons[AE] == Exemption("VATEX-EU-AE", "Reverse charge")  # BR-AE-10
    assert reasons[K] == Exemption("VATEX-EU-IC", "Intra-community supply")  # BR-IC-10
    assert reasons[G] == Exemption("VATEX-EU-G", "Export outside the EU")  # BR-G-10
    assert DEFAULT_EXEMPTIONS[O] == Exemption("VATEX-EU-O", "Not subject to VAT")


def test_exemption_reasons_can_be_overridden():
    mine = Exemption("VATEX-EU-132-1I", "Education, Article 132(1)(i)")
    (group,) = compute(lines(E, "0", "10.00"), "EUR", {E: mine}).lines
    assert group.exemption == mine
    (group,) = compute(lines(Z, "0", "10.00"), "EUR", {Z: mine}).lines
    assert group.exemption is None  # Z never carries one


def test_not_subject_to_vat_stands_alone():
    summary = compute(lines(O, "0", "10.00", "5.00"), "EUR")
    assert summary.tax == M("0.00") and summary.lines[0].exemption.code == "VATEX-EU-O"
    with pytest.raises(TaxError, match="BR-O-11"):
        compute([*lines(O, "0", "10.00"), *lines(S, "20", "1.00")], "EUR")


# ---- credit notes mirror invoices ----------------------------------------------------------


def test_credit_note_figures_are_the_exact_mirror():
    invoice = [
        *lines(S, "20", "0.33", "0.33", "0.33"),
        *lines(S, "5", "0.30"),
        *lines(AE, "0", "9.99"),
    ]
    credit = [TaxableLine(-li.net, li.category, li.percent) for li in invoice]
    assert compute(credit, "EUR") == compute(invoice, "EUR").negated()
    summary = compute(credit, "EUR")
    assert (summary.net, summary.tax, summary.gross) == (M("-11.28"), M("-0.22"), M("-11.50"))
    assert [t.tax for t in summary.lines] == [M("-0.20"), M("-0.02"), M("0.00")]  # -0.015 -> -0.02


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-(10**9), max_value=10**9),
            st.sampled_from([("S", "20"), ("S", "7.7"), ("S", "5.5"), ("Z", "0"), ("E", "0")]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_sums_and_mirror_hold_for_any_lines(raw, currency):
    places = minor_unit(currency)
    items = [
        TaxableLine(Decimal(units).scaleb(-places), TaxCategory(c), M(p)) for units, (c, p) in raw
    ]
    summary = compute(items, currency)
    assert summary.net == sum(i.net for i in items)
    assert summary.tax == sum(t.tax for t in summary.lines)
    assert summary.gross == summary.net + summary.tax
    for group in summary.lines:
        assert group.basis == sum(
            i.net for i in items if i.category == group.category and i.percent == group.percent
        )
        assert group.tax == round_half_up(group.basis * group.percent / 100, places)
    mirrored = compute([TaxableLine(-i.net, i.category, i.percent) for i in items], currency)
    assert mirrored == summary.negated()


# ---- E2's defaults and the checks of the input cells ---------------------------------------


def test_blank_percent_takes_the_contract_percent_else_zero():
    assert resolve(None, None, M("19")) == LineTax(S, M("19"))
    assert resolve(None, None, None) == LineTax(E, M("0"))
    assert resolve(M("7"), None, M("19")) == LineTax(S, M("7"))
    assert resolve(M("0"), None, M("19")) == LineTax(E, M("0"))


def test_a_zero_rated_category_with_a_blank_percent_is_at_zero_whatever_the_contract():
    assert resolve(None, "E", M("20")) == LineTax(E, M("0"))
    assert resolve(None, "AE", M("20")) == LineTax(AE, M("0"))
    assert resolve(None, "S", M("20")) == LineTax(S, M("20"))
    with pytest.raises(TaxError, match="BR-S-05"):
        resolve(None, "S", None)


def test_blank_category_is_s_above_zero_else_e():
    assert resolve(M("0.01"), "", None).category is S
    assert resolve(M("0"), "  ", None).category is E
    assert resolve(M("0"), "z", None) == LineTax(Z, M("0"))
    assert resolve(M("0"), " ae ", None).category is AE
    assert resolve(M("0"), K, None).category is K


@pytest.mark.parametrize(
    ("percent", "category", "message"),
    [
        (M("20"), "E", "tax category E .* has a tax percent of 0, not 20"),
        (M("20"), "AE", "tax category AE"),
        (M("0"), "S", "BR-S-05"),
        (M("100.01"), None, "not between 0 and 100"),
        (M("-1"), None, "not between 0 and 100"),
        (M("7.775"), None, "more than 2 decimals"),
        (M("10"), "X", 'tax category "X" is not one of S, Z, E, AE, K, G, O'),
    ],
)
def test_disallowed_cells_are_refused_with_a_reason(percent, category, message):
    with pytest.raises(TaxError, match=message):
        resolve(percent, category, None)


def test_the_contract_percent_is_checked_too():
    with pytest.raises(TaxError, match="not between 0 and 100"):
        resolve(None, None, M("150"))


def test_percent_problem():
    assert percent_problem(M("100")) is None
    assert percent_problem(M("0")) is None
    assert percent_problem(M("19.60")) is None  # trailing zero: still two decimals
    assert percent_problem(M("20.000")) is None  # the value has no decimals
    assert percent_problem(M("NaN")) is not None
