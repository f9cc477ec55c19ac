"""The RunLog's notes (X4): why a due line was invoiced, skipped or held, in words."""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal

from invoicing.model import Milestone, Transaction


@functools.lru_cache(maxsize=4096)  # pure, and asked for the same few cut-offs over and over
def invoiced_note(cutoff: date | None, held: int) -> str:
    scope = f"cut-off {cutoff.isoformat()}" if cutoff else "milestones due"
    extra = f"; {held} held by not-to-exceed" if held else ""
    return f"{scope}{extra}"


@functools.lru_cache(maxsize=4096)
def skipped_note(cutoff: date | None, held: int) -> str:
    if held:
        return f"every ready item held by not-to-exceed ({held})"
    if cutoff:
        return f"nothing ready to invoice up to cut-off {cutoff.isoformat()}"
    return "no ready milestone to invoice"


def held_note(item: Milestone | Transaction, limit: Decimal | None, used: Decimal) -> str:
    source = "milestone" if isinstance(item, Milestone) else "transaction"
    item_id = item.milestone_id if isinstance(item, Milestone) else item.transaction_id
    return (
        f"{source} {item_id} ({item.amount}) held: it would take the line past its "
        f"not-to-exceed {limit} (already invoiced {used})"
    )
