"""Request values, parsed once for the command line and the HTTP functions alike (L6).

* Dates are exactly ``YYYY-MM-DD`` (ASCII digits) and a real calendar date within
  ``EARLIEST_RUN_DATE`` .. ``LATEST_RUN_DATE``. ``date.fromisoformat`` alone is not enough: since
  Python 3.11 it also takes the basic form ``20201005`` and ISO weeks ``2020-W41-1``; the pattern is
  ASCII-only so that other scripts' digits (``２０２０-10-05``) are refused as well.
* A date span is ``date`` alone or ``from`` and ``to`` together; filters (``from``, ``to``) may
  each be open.
* A status filter is Draft, Confirmed or Cancelled, in any case.
* An upload is at most ``MAX_UPLOAD_BYTES`` (L1): a file's size, a request body, a declared
  ``Content-Length`` are held against the cap by ``check_upload_size``; over it is
  ``UploadRejected`` with status 413 (exit 2 on the command line).
* ``Accept`` is content negotiation with q-values (RFC 9110 §12.5.1), not a substring test.

Every wrong value raises ``invoicing.errors.BadRequest`` naming the parameter the way the caller
spelled it (``DateNames``): the CLI turns it into exit 2, the HTTP handlers into 400
(``invoicing.outcomes`` holds that mapping for every error).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from invoicing.errors import BadRequest, UploadRejected
from invoicing.model import EARLIEST_RUN_DATE, LATEST_RUN_DATE, Status

DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
SHOWN_CHARS = 40  # a wrong value is echoed in the message up to this length


@dataclass(frozen=True, slots=True)
class DateNames:
    """How one surface spells its date parameters, for the messages."""

    date: str
    start: str
    end: str
    missing: str  # the sentence when a span is required and neither form was given


CLI = DateNames("--date", "--from", "--to", "give --date D or --from A --to B")
HTTP = DateNames("date", "from", "to", "give ?date=YYYY-MM-DD or ?from=YYYY-MM-DD&to=YYYY-MM-DD")


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _blank(text: str | None) -> bool:
    return text is None or text.strip() == ""


def parse_date(text: str, name: str) -> date:
    """``text`` as a date: exactly ``YYYY-MM-DD``, a real date, within the run-date bounds."""
    day = None
    if DATE_TEXT.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:  # 2020-02-30, 2020-13-01
            day = None
    if day is None:
        raise BadRequest(f'{name} "{_shown(text)}" is not a date in YYYY-MM-DD form')
    if not EARLIEST_RUN_DATE <= day <= LATEST_RUN_DATE:
        raise BadRequest(f"{name} {day} is outside {EARLIEST_RUN_DATE} to {LATEST_RUN_DATE}")
    return day


def optional_date(text: str | None, name: str) -> date | None:
    """A date parameter that may be absent: None or blank is None; anything else must parse."""
    return None if _blank(text) else parse_date(text or "", name)


def date_span(
    day: str | None,
    start: str | None,
    end: str | None,
    names: DateNames,
    *,
    required: bool,
) -> tuple[date, date] | None:
    """``date D`` (the span D..D) or ``from A`` with ``to B`` (B not before A); None if neither
    was given and ``required`` is False."""
    if not _blank(day) and not (_blank(start) and _blank(end)):
        raise BadRequest(f"give either {names.date} or {names.start}/{names.end}, not both")
    if not _blank(day):
        one = parse_date(day or "", names.date)
        return one, one
    if _blank(start) and _blank(end):
        if required:
            raise BadRequest(names.missing)
        return None
    if _blank(start) or _blank(end):
        raise BadRequest(f"{names.start} and {names.end} go together")
    first, last = parse_date(start or "", names.start), parse_date(end or "", names.end)
    if last < first:
        raise BadRequest(f"{names.end} {last} is before {names.start} {first}")
    return first, last


def date_bounds(
    start: str | None, end: str | None, names: DateNames
) -> tuple[date | None, date | None]:
    """A date filter whose ends may each be open (export, the invoice list)."""
    first, last = optional_date(start, names.start), optional_date(end, names.end)
    if first is not None and last is not None and last < first:
        raise BadRequest(f"{names.end} {last} is before {names.start} {first}")
    return first, last


def parse_status(text: str | None, name: str) -> Status | None:
    """A status filter: Draft, Confirmed or Cancelled in any case; None or blank is None."""
    if _blank(text):
        return None
    wanted = (text or "").strip().lower()
    for status in Status:
        if status.value.lower() == wanted:
            return status
    choices = ", ".join(s.value for s in Status)
    raise BadRequest(f'{name} "{_shown(text or "")}" is not one of {choices}')


class DocumentFormat(StrEnum):
    """What ``document`` and H15 make of an invoice (E3)."""

    PDF = "pdf"
    CII = "cii"  # Factur-X / ZUGFeRD Cross-Industry-Invoice, profile EN 16931
    UBL = "ubl"  # UBL 2.1 invoice or credit note (Peppol BIS Billing 3.0)


# ``xml`` is the SPEC's name (H15, C) for the e-invoice: the CII that a confirmed PDF embeds.
_FORMAT_NAMES = {
    "pdf": DocumentFormat.PDF,
    "xml": DocumentFormat.CII,
    "cii": DocumentFormat.CII,
    "ubl": DocumentFormat.UBL,
}


def parse_format(text: str | None, name: str) -> DocumentFormat:
    """A document format: pdf (the default when blank), xml (= cii), cii or ubl, any case."""
    if _blank(text):
        return DocumentFormat.PDF
    found = _FORMAT_NAMES.get((text or "").strip().lower())
    if found is None:
        raise BadRequest(f'{name} "{_shown(text or "")}" is not one of pdf, xml, cii, ubl')
    return found


# ---- the upload cap (L1) ---------------------------------------------------------------------

TOO_LARGE = 413  # the HTTP status of an upload over the cap


def check_upload_size(
    size: int, limit: int, *, what: str = "the upload", exact: bool = True, allowance: int = 0
) -> None:
    """Refuse an upload of ``size`` bytes over ``limit`` (``UploadRejected``, 413 / exit 2).

    ``what`` names the upload in the message (a path on the command line). ``exact`` is False when
    only a bounded read was made (``size`` is then "more than the limit", not the real size);
    ``allowance`` is what a declared size may carry beyond the file itself (multipart framing).
    """
    if size <= limit + allowance:
        return
    if exact:
        message = f"{what} is {size:,} bytes; the limit is {limit:,} bytes"
    else:
        message = f"{what} is over the limit of {limit:,} bytes"
    raise UploadRejected(message, status=TOO_LARGE)


def declared_length(text: str | None) -> int | None:
    """A ``Content-Length`` value as a number of bytes; None when absent or not ASCII digits
    (``str.isdigit`` alone takes ``²``, which ``int`` then refuses)."""
    if text is None or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


# ---- content negotiation (RFC 9110 §12.5.1) ---------------------------------------------------

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_RANGE = re.compile(rf"(?:\*/\*|{_TOKEN}/\*|{_TOKEN}/{_TOKEN})", re.ASCII)
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?", re.ASCII)


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str  # lower case; "*" for a wildcard
    subtype: str
    params: int  # media-type parameters before the weight: they make a range more specific
    q: float

    def matches(self, media_type: str) -> bool:
        kind, _, sub = media_type.lower().partition("/")
        return self.type == "*" or (self.type == kind and self.subtype in ("*", sub))

    @property
    def precedence(self) -> tuple[int, int]:
        """More specific ranges override less specific ones (``*/*`` < ``type/*`` < ``type/sub``,
        then more parameters)."""
        level = 0 if self.type == "*" else 1 if self.subtype == "*" else 2
        return level, self.params


def _split(text: str, separator: str) -> Iterator[str]:
    """Split on ``separator`` outside double-quoted strings (which may hold commas and ``;``)."""
    part: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            yield "".join(part)
            part = []
            continue
        part.append(char)
    yield "".join(part)


def media_ranges(accept: str) -> list[MediaRange]:
    """The well-formed media ranges of an ``Accept`` value; malformed elements are ignored (a
    range without a subtype, ``*/json``, a q outside 0..1 or with more than three decimals)."""
    found = []
    for element in _split(accept, ","):
        pieces = [p.strip() for p in _split(element, ";")]
        if not _MEDIA_RANGE.fullmatch(pieces[0]):
            continue
        kind, _, sub = pieces[0].lower().partition("/")
        params, q, well_formed = 0, 1.0, True
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            if name.strip().lower() == "q":
                if not _QVALUE.fullmatch(value.strip()):
                    well_formed = False
                q = float(value) if well_formed else 0.0
                break  # the weight ends the media range (RFC 9110 dropped accept-ext)
            if piece:
                params += 1
        if well_formed:
            found.append(MediaRange(kind, sub, params, q))
    return found


def preference(media_type: str, ranges: Sequence[MediaRange]) -> tuple[float, tuple[int, int]]:
    """(q, precedence) the client gives ``media_type``: from the most specific range matching it
    (RFC 9110: ``text/*;q=0.3, text/html`` gives text/html 1); (0, none) when no range matches.
    Among equally specific ranges the highest q counts."""
    matching = [r for r in ranges if r.matches(media_type)]
    if not matching:
        return 0.0, (-1, 0)
    top = max(r.precedence for r in matching)
    return max(r.q for r in matching if r.precedence == top), top


def negotiate(accept: str | None, offered: Sequence[str]) -> str:
    """The offered media type the client prefers; ``offered[0]`` is the default.

    The highest q wins. At equal q, a type the client named beats one it only reached through a
    wildcard (``application/json, */*`` is JSON, as axios and most HTTP libraries send it); a
    full tie gives the earlier offer. No ``Accept`` (or an empty or unparseable one) and ``*/*``
    give ``offered[0]``. When the client accepts none of the offered types (every q is 0) we
    disregard the header and answer the default rather than 406 Not Acceptable, as RFC 9110
    §12.5.1 allows.
    """
    if not offered:
        raise ValueError("nothing offered")
    ranges = media_ranges(accept or "")
    best = offered[0]
    if not ranges:
        return best
    best_key = preference(best, ranges)
    if best_key[0] == 0:
        best_key = (0.0, (-1, 0))  # not acceptable at all: only a positive q can beat the default
    for media_type in offered[1:]:
        key = preference(media_type, ranges)
        if key[0] > 0 and key > best_key:
            best, best_key = media_type, key
    return best
