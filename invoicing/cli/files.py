"""The command line's files: uploads read within the byte cap, outputs written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
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
    """Write atomically so a failure never leaves a half-written output file: the bytes go to a
    fresh temporary file beside the target (created exclusively, never through a symlink that
    was there before) and replace the target in one rename; on any failure it is removed."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 is not what the user expects
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
