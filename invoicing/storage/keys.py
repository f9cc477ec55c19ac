"""Table keys built from user ids (S3): any id round-trips, no key ever holds a forbidden character.

Table keys may not contain ``/ \\ # ?`` or control characters (Azurite answers 500 for ``/``), and
quotes, ``%`` and ``+`` are mangled by some URL layers. So a user id is encoded before it becomes
part of a PartitionKey or RowKey:

* ASCII letters, digits, ``-``, ``_`` and ``.`` stay as they are;
* every other character becomes ``~XX`` for each byte of its UTF-8 encoding (``XX`` upper-case
  hex): ``"A/B 1"`` -> ``"A~2FB~201"``, ``"é"`` -> ``"~C3~A9"``;
* an encoded id longer than ``MAX_ENCODED`` characters (keys are capped at 1 KiB) becomes
  ``~H`` + the SHA-256 hex digest of the id's UTF-8 bytes: deterministic and, in practice,
  collision-free; ``~H`` never starts a plain encoding (``H`` is not a hex digit pair).

The encoding is injective and ``decode_key`` reverses it (except for the hashed form). The store
always keeps the raw id in an entity property too, so nothing is ever read back from a key alone.
"""

from __future__ import annotations

import hashlib
import string

_SAFE = frozenset(string.ascii_letters + string.digits + "-_.")
MAX_ENCODED = 400
HASHED = "~H"


def encode_key(text: str) -> str:
    parts: list[str] = []
    for ch in text:
        if ch in _SAFE:
            parts.append(ch)
        else:
            parts.extend(f"~{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    key = "".join(parts)
    if len(key) > MAX_ENCODED:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return HASHED + digest
    return key


def describe_key(key: str) -> str:
    """The id behind ``key`` for messages: decoded, or the hashed key itself."""
    return key if key.startswith(HASHED) else decode_key(key)


def decode_key(key: str) -> str:
    if key.startswith(HASHED):
        raise ValueError("a hashed key cannot be decoded; read the id from the entity")
    out = bytearray()
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == "~":
            out.append(int(key[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(ch.encode("ascii"))
            i += 1
    return out.decode("utf-8", "surrogatepass")
