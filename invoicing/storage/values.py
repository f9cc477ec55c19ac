"""The stored forms of single values (S3): exact decimals, ISO dates, 64-bit integers, and JSON
documents split over string properties ``P0``, ``P1`` … (``Parts`` says how many)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from azure.data.tables import EdmType, EntityProperty

PART_CHARS = 30_000
MAX_PARTS = 14  # 14 x 30,000 ASCII chars = 840 KB of UTF-16: under the 1 MiB entity limit


def dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def undec(text: Any) -> Decimal | None:
    return None if text is None or text == "" else Decimal(str(text))


def day(text: Any) -> date:
    return date.fromisoformat(str(text))


def int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def plain_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, EntityProperty):
        return int(value.value)
    return int(value)


def pack(doc: Any, what: str) -> dict[str, Any]:
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    if len(parts) > MAX_PARTS:
        raise ValueError(f"{what} is too large to store ({len(text):,} characters of JSON)")
    props: dict[str, Any] = {f"P{i}": part for i, part in enumerate(parts)}
    props["Parts"] = len(parts)
    return props


def unpack(entity: Mapping[str, Any]) -> Any:
    return json.loads("".join(entity[name] for name in packed_names(entity)[1:]))


def packed_names(entity: Mapping[str, Any]) -> list[str]:
    """The properties ``pack`` wrote into ``entity``: ``Parts`` and its ``P<n>``."""
    count = plain_int(entity.get("Parts")) or 0
    return ["Parts", *(f"P{i}" for i in range(count))]


def pack_chunks(rows: list[Any], what: str) -> list[dict[str, Any]]:
    """Split a list over as many entities as needed, each holding up to a few parts."""
    chunks: list[dict[str, Any]] = []
    current: list[Any] = []
    size = 0
    budget = PART_CHARS * 4
    for row in rows:
        row_size = len(json.dumps(row, ensure_ascii=True)) + 1
        if current and size + row_size > budget:
            chunks.append(pack(current, what))
            current, size = [], 0
        current.append(row)
        size += row_size
    if current:
        chunks.append(pack(current, what))
    return chunks
