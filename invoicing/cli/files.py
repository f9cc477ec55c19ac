"""The command line's files: uploads read within the byte cap, outputs written atomically."""

from __future__ import annotations

from pathlib import Path

from invoicing import requests
from invoicing.errors import BadRequest
from invoicing.settings import Settings


class UsageError(BadRequest):
    """A mistake in the command line itself (exit 2)."""


def read_upload(path: str, settings: Settings) -> bytes:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{path}: no such file")
    requests.check_upload_size(file.stat().st_size, settings.max_upload_bytes, what=path)
    return file.read_bytes()


def write_output(path: str, data: bytes) -> None:
    """Write atomically so a failure never leaves a half-written output file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    tmp.replace(target)
