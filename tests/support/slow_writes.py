"""``python -m tests.support.slow_writes ARGS``: the real CLI (``invoicing.cli.main``) with every
store write delayed by ``SLOW_WRITE_SECONDS`` (default 0.1) after its lease check, so that a run
lasts longer than a third of its lease and a test can break the lease while it works (R18)."""

from __future__ import annotations

import os
import sys
import time

from invoicing.cli import main
from invoicing.storage.store import Store

_before_write = Store.before_write


def _slow_before_write(self: Store, label: str) -> None:
    _before_write(self, label)
    time.sleep(float(os.environ.get("SLOW_WRITE_SECONDS", "0.1")))


if __name__ == "__main__":
    Store.before_write = _slow_before_write  # type: ignore[method-assign]
    sys.exit(main())
