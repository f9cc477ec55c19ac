"""``make run``: the seed's Adatum example end to end, through the real command line.

Starts a private Azurite (free ports, throwaway folder), imports templates/sample-adatum.xlsx, runs
the daily job for every date from 2020-10-01 to 2020-11-30, exports out/invoices.xlsx, audits the
store, prints where the file is, and stops Azurite: no process or folder is left behind, even on
an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from invoicing.cli import main as cli  # noqa: E402
from invoicing.storage.azurite import Azurite  # noqa: E402

SAMPLE = ROOT / "templates" / "sample-adatum.xlsx"
OUTPUT = ROOT / "out" / "invoices.xlsx"
DOCUMENTS = ROOT / "out" / "documents"
START, END = "2020-10-01", "2020-11-30"


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the Azurite context manager


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    steps = [
        ["import", str(SAMPLE)],
        ["run", "--from", START, "--to", END],
        ["export", "-o", str(OUTPUT)],
        ["documents", "-o", str(DOCUMENTS)],
        ["audit"],
    ]
    print("starting Azurite (free ports, throwaway folder) ...", flush=True)
    with Azurite() as azurite:
        os.environ["INVOICING_STORAGE"] = azurite.connection_string
        print(
            f"Azurite listening: blob {azurite.ports['blob']}, table {azurite.ports['table']}",
            flush=True,
        )
        for step in steps:
            print(f"\n$ python -m invoicing {' '.join(step)}", flush=True)
            code = cli(step)
            sys.stdout.flush()
            if code != 0:
                print(f"step failed with exit code {code}; stopping Azurite", file=sys.stderr)
                return code
    print(f"\nAzurite stopped. Done in {time.monotonic() - started:.1f} s.")
    print(f"The invoice workbook is {OUTPUT}; the invoices' PDFs (proformas) are in {DOCUMENTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
