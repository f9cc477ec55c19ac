"""Money: ISO 4217 minor units, half-up rounding and exact customer splits (R1, R11).

Every amount is a ``decimal.Decimal``; nothing here ever touches a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

# Active ISO 4217 codes (list 1, 2026) and their minor units. Codes whose minor unit is "N.A."
# (precious metals, SDR, test codes) are left out on purpose: they are not invoice currencies.
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMALS = "CLF UYW"
_TWO_DECIMALS = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN "
    "NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE "
    "SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES "
    "WST XCD XCG YER ZAR ZMW ZWG"
)

MINOR_UNITS: dict[str, int] = {
    **{code: 0 for code in _ZERO_DECIMALS.split()},
    **{code: 2 for code in _TWO_DECIMALS.split()},
    **{code: 3 for code in _THREE_DECIMALS.split()},
    **{code: 4 for code in _FOUR_DECIMALS.split()},
}

HUNDRED = Decimal(100)
ZERO = Decimal(0)

_QUANTA = {places: Decimal(1).scaleb(-places) for places in range(0, 7)}


def is_currency(code: str) -> bool:
    return code in MINOR_UNITS


def minor_unit(code: str) -> int:
    """Decimals of the currency's minor unit; ``KeyError`` for a code not in active ISO 4217."""
    return MINOR_UNITS[code]


def minor_quantum(places: int) -> Decimal:
    """The minor unit as a decimal (``Decimal("0.01")`` for 2 places), for ``quantize``."""
    return _QUANTA[places]


def round_half_up(amount: Decimal, places: int) -> Decimal:
    return amount.quantize(_QUANTA[places], rounding=ROUND_HALF_UP)


def decimals_of(value: Decimal) -> int:
    """How many digits a decimal carries after the point (trailing zeros count as written)."""
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def split_amount(
    amount: Decimal, percents: Sequence[Decimal], rounding_index: int, places: int
) -> list[Decimal]:
    """Split ``amount`` by ``percents`` (summing to 100) so the shares add up exactly (R11).

    Every share but the rounding customer's is rounded half-up to the minor unit; the rounding
    customer takes the remainder. With many customers the half-up round-ups can exceed the rounding
    customer's own share, which would leave it a negative remainder: a customer is never billed a
    negative amount, so the surplus is taken back one minor unit at a time from the shares rounded
    up the most (ties: the last listed first), which keeps every share within one unit of exact.
    """
    if len(percents) == 1:
        return [amount]
    if len(percents) == 2:
        # The other customer's share is at most the amount, so the remainder is never negative.
        other = 1 - rounding_index
        share = (amount * percents[other] / HUNDRED).quantize(_QUANTA[places], ROUND_HALF_UP)
        return [amount - share, share] if other == 1 else [share, amount - share]
    unit = _QUANTA[places]
    exact = [amount * pct / HUNDRED for pct in percents]
    shares = [
        ZERO if i == rounding_index else round_half_up(value, places)
        for i, value in enumerate(exact)
    ]
    remainder = amount - sum(shares, ZERO)
    if remainder < 0:
        order = sorted(
            (i for i in range(len(shares)) if i != rounding_index),
            key=lambda i: (shares[i] - exact[i], i),
            reverse=True,
        )
        k = 0
        while remainder < 0:
            i = order[k % len(order)]
            if shares[i] > 0:
                shares[i] -= unit
                remainder += unit
            k += 1
    shares[rounding_index] = remainder
    return shares
