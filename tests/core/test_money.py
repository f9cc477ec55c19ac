"""Money (R1, R11): minor units per currency, half-up rounding, exact splits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing.money import is_currency, minor_unit, round_half_up, split_amount


@pytest.mark.parametrize(
    ("code", "places"),
    [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4), ("KRW", 0)],
)
def test_minor_unit_follows_iso_4217(code, places):
    assert minor_unit(code) == places


@pytest.mark.parametrize("code", ["XXX", "usd", "ABC", "XAU", "HRK", ""])
def test_unknown_or_inactive_currency_is_not_a_currency(code):
    assert not is_currency(code)


def test_round_half_up_rounds_halves_away_from_zero():
    assert round_half_up(Decimal("0.005"), 2) == Decimal("0.01")
    assert round_half_up(Decimal("0.0049999"), 2) == Decimal("0.00")
    assert round_half_up(Decimal("2.5"), 0) == Decimal("3")


def test_split_rounding_customer_takes_remainder():
    assert split_amount(
        Decimal("100.00"), [Decimal("33.3333")] * 2 + [Decimal("33.3334")], 2, 2
    ) == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]


def test_split_never_gives_a_negative_share_when_round_ups_exceed_the_rounding_share():
    # Each 30% of 0.05 is 0.015 -> 0.02; three of them overshoot 0.05 by 0.01.
    shares = split_amount(Decimal("0.05"), [Decimal("10")] + [Decimal("30")] * 3, 0, 2)
    assert sum(shares) == Decimal("0.05")
    assert all(s >= 0 for s in shares)
    assert shares[0] == Decimal("0.00")


percents = st.lists(st.integers(min_value=1, max_value=1_000_000), min_size=1, max_size=8).map(
    lambda ws: _to_percents(ws)
)


def _to_percents(weights: list[int]) -> list[Decimal]:
    total = sum(weights)
    raw = [Decimal(w * 100) / Decimal(total) for w in weights]
    out = [p.quantize(Decimal("0.0001")) for p in raw[:-1]]
    out.append(Decimal(100) - sum(out, Decimal(0)))
    return out


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    places=st.sampled_from([0, 2, 3]),
    splits=percents,
    data=st.data(),
)
def test_shares_always_sum_exactly_to_the_amount_and_are_never_negative(
    amount, places, splits, data
):
    if any(p <= 0 for p in splits):
        return
    value = Decimal(amount).scaleb(-places)
    r = data.draw(st.integers(min_value=0, max_value=len(splits) - 1))
    shares = split_amount(value, splits, r, places)
    assert sum(shares, Decimal(0)) == value
    assert all(s >= 0 for s in shares)
    unit = Decimal(1).scaleb(-places)
    for i, (share, pct) in enumerate(zip(shares, splits, strict=True)):
        assert share == share.quantize(unit)
        if i != r:
            assert abs(share - value * pct / 100) <= unit
