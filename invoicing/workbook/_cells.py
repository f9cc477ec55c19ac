"""Cell conversions of the input workbook (W7), as python-calamine returns the cells.

calamine gives ``str`` (``""`` for an empty cell, and also for an error cell or a formula without a
cached value), ``float`` for every number, ``bool``, ``date`` for a date-formatted cell (a midnight
``datetime`` comes back as a ``date``), ``datetime`` with a time of day, ``time`` and ``timedelta``.

Each converter takes a non-empty raw value and returns the converted value or raises ``Bad`` with
the message (without the ``Sheet!Cell:`` prefix, which the caller adds). They are the reader's
only converters: its transactions loop calls them, or caches what they returned for a value.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(9998, 12, 31)
MAX_ID_LENGTH = 255
# Excel holds 15 significant digits; 10^15 bounds every amount, quantity and price we accept.
MAX_NUMBER = Decimal(10) ** 15
MAX_FLOAT = 1e15
MAX_PAYMENT_TERMS = 36_500
# A Table Storage string property holds 64 KiB of UTF-16 (32,768 code units); Excel's own cell
# limit is 32,767 characters. Every text the product stores is at most this many UTF-16 units (L4).
MAX_TEXT_UNITS = 32_767

_PLAIN_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# ISO date and time of day (``2020-09-28 00:00:00``, ``2020-09-28T00:00``), optionally UTC.
_ISO_DATE_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)(Z|[+-]\S+)?"
)

TRUE_WORDS = frozenset({"yes", "true", "y", "1"})
FALSE_WORDS = frozenset({"no", "false", "n", "0"})


class Bad(ValueError):
    """A cell that cannot be used; the message is the problem's text."""


def shown(value: object) -> str:
    """A raw cell value as the user would recognise it in a message."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return format(value, ".15g")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def to_id(value: object, column: str) -> str | None:
    """Ids are text: a number cell 1001 (or 1001.0) is the id ``"1001"``; whitespace is trimmed.

    The first test is the common case, kept cheap for the transactions loop: printable text
    without a space at either end is the id as it is."""
    if (
        type(value) is str
        and value
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
        and len(value) <= MAX_ID_LENGTH
    ):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not text.isprintable() and has_control(text):
            raise Bad(f"{column} contains a control character")
        if len(text) > MAX_ID_LENGTH:
            raise Bad(f"{column} is longer than {MAX_ID_LENGTH} characters")
        return text
    if isinstance(value, bool):
        raise Bad(f"{column} must be text, not {shown(value)}")
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(value, ".15g")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date | time | timedelta):
        raise Bad(f'{column} must be text, not the date or time "{shown(value)}"')
    raise Bad(f'{column} "{shown(value)}" is not text')


def to_text(value: object) -> str:
    """A cell as trimmed text (codes such as Currency): numbers and dates as the user sees them."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return shown(value)


def to_free_text(value: object) -> str:
    """Names and descriptions, kept exactly as typed (a description ``\t=1`` stays ``\t=1``)."""
    if isinstance(value, str):
        return value
    return to_text(value)


def utf16_units(text: str) -> int:
    """The length of ``text`` as Table Storage counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def too_long(text: str) -> str | None:
    """The problem with a text the store cannot hold (L4), or None. A text of n characters has
    n to 2n UTF-16 units, so only one over half the limit is measured."""
    if len(text) <= MAX_TEXT_UNITS // 2:
        return None
    units = utf16_units(text)
    if units <= MAX_TEXT_UNITS:
        return None
    return f"text is {units:,} characters (UTF-16 units) long; at most {MAX_TEXT_UNITS:,}"


def to_stored_text(value: object) -> str:
    """Free text (names) the store keeps: as typed, at most ``MAX_TEXT_UNITS`` UTF-16 units."""
    text = value if isinstance(value, str) else to_text(value)
    problem = too_long(text)
    if problem is not None:
        raise Bad(problem)
    return text


def to_date(value: object, column: str = "") -> date:
    """A real Excel date, or ISO ``YYYY-MM-DD`` text; nothing else (W7)."""
    if isinstance(value, datetime):
        if value.time() != time(0):
            raise Bad(f'date "{shown(value)}" has a time of day; give the date only')
        value = value.date()
    elif isinstance(value, str):
        text = value.strip()
        if not _ISO_DATE.fullmatch(text):
            with_time = _ISO_DATE_TIME.fullmatch(text)
            if with_time is None:
                raise Bad(f'date "{text}" is not YYYY-MM-DD or an Excel date')
            if with_time.group(2).strip("0:.") or with_time.group(3):
                raise Bad(f'date "{text}" has a time of day; give the date only')
            text = with_time.group(1)  # W12: midnight is that date
        try:
            value = date.fromisoformat(text)
        except ValueError:
            raise Bad(f'date "{text}" is not a real calendar date') from None
    elif type(value) is not date:
        raise Bad(f'date "{shown(value)}" is not YYYY-MM-DD or an Excel date')
    if not MIN_DATE <= value <= MAX_DATE:
        raise Bad(f"date {value.isoformat()} is outside {MIN_DATE} to {MAX_DATE}")
    return value


def _decimal_from_float(value: float) -> Decimal:
    return Decimal(format(value, ".15g"))


def to_number(value: object, column: str) -> Decimal:
    """A number cell or plain decimal text (``1234.5``, ``-3``); never ``1.234,5`` or ``1e3``."""
    if isinstance(value, bool):
        raise Bad(f"{column} {shown(value)} is not a number")
    if isinstance(value, float | int):
        if not -MAX_FLOAT < value < MAX_FLOAT:
            raise Bad(f"{column} {shown(value)} is too large")
        number = _decimal_from_float(float(value))
        if not -MAX_NUMBER < number < MAX_NUMBER:  # 999999999999999.9 shows as 1e+15
            raise Bad(f"{column} {shown(value)} is too large")
    elif isinstance(value, str):
        text = value.strip()
        if not _PLAIN_DECIMAL.fullmatch(text):
            raise Bad(f'{column} "{text}" is not a plain decimal number such as 1234.5')
        try:
            number = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise Bad(f'{column} "{text}" is not a number') from None
        if not -MAX_NUMBER < number < MAX_NUMBER:
            raise Bad(f"{column} {text} is too large")
    else:
        raise Bad(f'{column} "{shown(value)}" is not a number')
    if not number:
        number = abs(number)  # -0 is 0
    return number


def places(number: Decimal) -> int:
    """Decimals that carry a value (``10.50`` has one): trailing zeros are not precision."""
    _sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    trailing = 0
    for digit in reversed(digits):
        if digit or trailing >= -exponent:
            break
        trailing += 1
    return -exponent - trailing


def to_bool(value: object, column: str) -> bool:
    """Yes/No/True/False/Y/N/1/0 in any case, or a real boolean cell; blank is No."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float | int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS or not word:
            return False
    raise Bad(f'{column} "{shown(value)}" is not Yes or No')


def to_whole(value: object, column: str, high: int) -> int:
    """A whole number from 0 to ``high`` (PaymentTermsDays)."""
    try:
        number = to_number(value, column)
    except Bad:
        raise Bad(f'{column} "{shown(value)}" is not a whole number from 0 to {high}') from None
    if number != number.to_integral_value() or not 0 <= number <= high:
        raise Bad(f"{column} {number} is not a whole number from 0 to {high}")
    return int(number)


def column_letter(index: int) -> str:
    """0-based column index -> Excel letters (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str | bytes) -> int:
    """Excel letters (either case) -> 0-based column index (A -> 0, AA -> 26)."""
    number = 0
    for ch in letters.upper() if isinstance(letters, str) else letters.upper().decode("ascii"):
        number = number * 26 + ord(ch) - 64
    return number - 1
