"""Mutation fuzzer for the upload path (SPEC L, ``make fuzz``).

Takes valid input workbooks, mutates them (bytes of the zip; or the XML of one part: values, cell
types, references, attributes, tags; then re-zips) and feeds each to ``read_workbook`` in a worker
process. ``UploadRejected`` and ``InputRejected`` are the expected outcomes of bad input; anything
else is a **crash**: another exception, the worker dying (a native abort, an OOM kill) or one input
taking longer than the per-input limit (a **hang**). Crashing inputs and their tracebacks are saved
under ``out/fuzz/``. Exit status 0 when nothing crashed, 1 otherwise.

    python bench/fuzz.py [--seconds 120] [--per-input 10] [--workers 2] [--seed N] [--preview]

``FUZZ_SECONDS`` in the environment sets the default duration. Workers run with an address-space
limit (``--memory-mb``, default 2048) so that a memory bomb fails instead of taking the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import multiprocessing as mp
import os
import random
import re
import resource
import sys
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ---- seeds ---------------------------------------------------------------------------------------


def seeds() -> list[bytes]:
    from tests.hostile.corpus import legit_openpyxl_workbook, legit_workbook

    out = [legit_workbook(12), legit_openpyxl_workbook(12)]
    sample = ROOT / "templates" / "sample-adatum.xlsx"
    if sample.exists():
        out.append(sample.read_bytes())
    return out


# ---- mutations -----------------------------------------------------------------------------------

INTERESTING_VALUES = [
    "", " ", "0", "-0", "-1", "1e308", "-1e308", "1e-320", "NaN", "inf", "-inf",
    "1.7976931348623157e308", "99999999999999999999999", "0.000000001", "2958465", "2958466",
    "60", "0.5", "1,5", "1 000", "2020-02-30", "2020-13-01", "0000-01-01", "9999-12-31",
    "31/12/2020", "=1+1", '=HYPERLINK("x")', "@SUM(A1)", "+1", "-", "#N/A", "#DIV/0!", "TRUE",
    "true", "Yes", "yes", "N", "\u0000", "\u0007", "\ufeff", "\U0001f600", "x" * 40_000,
    "Time and material", "Fixed price", "Biweekly", "Monthly", "Semimonthly", "Last Friday",
    "Fifth Monday", "32", "FREQ=DAILY;COUNT=100000", "FREQ=SECONDLY", "FREQ=YEARLY;BYYEARDAY=366",
    "Time, Expense, Time", "USD", "JPY", "KWD", "XXX", "usd", "100", "100.00001", "1E+2", "C1",
    "L1", "L2", "CU1", "T000001",
]
CELL_TYPES = ["s", "str", "inlineStr", "b", "e", "n", "d", "x", ""]
REFS = ["A1", "B2", "XFD1", "A1048576", "XFD1048576", "ZZ99", "A0", "0", "AAAA1", "A-1", "", "a1"]
TAGS = [b"c", b"v", b"row", b"is", b"t", b"f", b"sheetData", b"si", b"sheet", b"dimension"]


def mutate(seed: bytes, rnd: random.Random) -> bytes:
    """One mutant: mostly XML-level (re-zipped), sometimes raw bytes of the zip."""
    if rnd.random() < 0.25:
        return mutate_bytes(seed, rnd)
    try:
        with zipfile.ZipFile(io.BytesIO(seed)) as z:
            parts = [(i, z.read(i)) for i in z.infolist()]
    except zipfile.BadZipFile:
        return mutate_bytes(seed, rnd)
    xml_parts = [k for k, (i, _) in enumerate(parts) if i.filename.endswith((".xml", ".rels"))]
    sheets = [k for k in xml_parts if "worksheets/" in parts[k][0].filename]
    for _ in range(rnd.choice([1, 1, 1, 2, 3, 5])):
        k = rnd.choice(sheets if sheets and rnd.random() < 0.7 else xml_parts)
        info, data = parts[k]
        parts[k] = (info, mutate_xml(data, rnd))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in parts:
            z.writestr(info.filename, data)
    data = out.getvalue()
    return mutate_bytes(data, rnd) if rnd.random() < 0.05 else data


def mutate_bytes(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.choice([1, 1, 2, 4, 8, 32])):
        if not buf:
            break
        op = rnd.randrange(6)
        pos = rnd.randrange(len(buf))
        if op == 0:
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == 1:
            buf[pos:pos] = rnd.randbytes(rnd.choice([1, 2, 4, 16]))
        elif op == 2:
            del buf[pos:pos + rnd.choice([1, 2, 4, 64, 1024])]
        elif op == 3:
            buf[pos:pos + 4] = rnd.choice([b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                                           b"\0\0\0\x80", b"\x01\0\0\0"])
        elif op == 4:
            end = min(len(buf), pos + rnd.choice([8, 64, 512]))
            buf[pos:pos] = buf[pos:end]
        else:
            del buf[pos:]
    return bytes(buf)


_VALUE = re.compile(rb"<v>[^<]*</v>|<t(?: [^>]*)?>[^<]*</t>")
_TYPE = re.compile(rb'\st="[^"]*"')
_REF = re.compile(rb'\sr="[^"]*"')
_TAG = re.compile(rb"<(/?)([A-Za-z:]+)")


def mutate_xml(data: bytes, rnd: random.Random) -> bytes:
    op = rnd.randrange(9)
    if op == 0:  # a value
        matches = list(_VALUE.finditer(data))
        if matches:
            m = rnd.choice(matches)
            value = rnd.choice(INTERESTING_VALUES).encode("utf-8", "surrogatepass")
            if rnd.random() < 0.8:
                value = value.replace(b"&", b"&amp;").replace(b"<", b"&lt;")
            inner = b"<v>%s</v>" if m.group().startswith(b"<v>") else b"<t>%s</t>"
            return data[: m.start()] + inner % value + data[m.end():]
    if op == 1:  # a cell type
        matches = list(_TYPE.finditer(data))
        if matches:
            m = rnd.choice(matches)
            return data[: m.start()] + b' t="%s"' % rnd.choice(CELL_TYPES).encode() + data[m.end():]
        return data.replace(b"<c ", b'<c t="%s" ' % rnd.choice(CELL_TYPES).encode(), 1)
    if op == 2:  # a reference
        matches = list(_REF.finditer(data))
        if matches:
            m = rnd.choice(matches)
            ref = rnd.choice(REFS) if rnd.random() < 0.5 else _near_ref(rnd)
            return data[: m.start()] + b' r="%s"' % ref.encode() + data[m.end():]
    if op == 3:  # drop or duplicate an element's opening or closing tag
        matches = list(_TAG.finditer(data))
        if matches:
            m = rnd.choice(matches)
            if rnd.random() < 0.5:
                return data[: m.start()] + data[m.end():]
            return data[: m.end()] + data[m.start():]
    if op == 4:  # rename a tag
        matches = list(_TAG.finditer(data))
        if matches:
            m = rnd.choice(matches)
            return data[: m.start(2)] + rnd.choice(TAGS) + data[m.end(2):]
    if op == 5:  # truncate
        return data[: rnd.randrange(len(data) + 1)]
    if op == 6:  # random bytes somewhere
        pos = rnd.randrange(len(data) + 1)
        return data[:pos] + rnd.randbytes(rnd.choice([1, 3, 10])) + data[pos:]
    if op == 7:  # duplicate a row (ids clash, rows overlap)
        rows = list(re.finditer(rb"<row[^>]*>.*?</row>", data, re.S))
        if rows:
            m = rnd.choice(rows)
            return data[: m.end()] + m.group() * rnd.choice([1, 2, 50]) + data[m.end():]
    # op == 8 or nothing matched: swap two attribute values / characters
    if len(data) > 2:
        i, j = sorted(rnd.sample(range(len(data)), 2))
        return data[:i] + data[j:j + 1] + data[i + 1:j] + data[i:i + 1] + data[j + 1:]
    return data


def _near_ref(rnd: random.Random) -> str:
    col = rnd.choice([1, 2, 5, 11, 12, 26, 27, 200])
    letters = ""
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{rnd.choice([1, 2, 3, 10, 100, 5000])}"


# ---- the worker ----------------------------------------------------------------------------------


def worker(conn: Connection, memory_mb: int, preview: bool) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from datetime import date

    from invoicing.errors import InputRejected, UploadRejected
    from invoicing.settings import Settings
    from invoicing.workbook.reader import read_workbook

    settings = Settings()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            if preview:
                from invoicing.preview import preview_workbook

                preview_workbook(job, date(2020, 10, 1), date(2020, 11, 30), settings=settings)
            else:
                read_workbook(job, settings=settings)
            conn.send(("accepted", ""))
        except UploadRejected as exc:
            conn.send((f"upload-rejected-{exc.status}", ""))
        except InputRejected:
            conn.send(("input-rejected", ""))
        except BaseException:  # every other exception is what we hunt
            conn.send(("crash", traceback.format_exc()))


class Worker:
    def __init__(self, memory_mb: int, preview: bool):
        self.memory_mb, self.preview = memory_mb, preview
        self.start_process()

    def start_process(self) -> None:
        ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker, args=(child, self.memory_mb, self.preview), daemon=True
        )
        self.process.start()
        child.close()
        self.job: bytes | None = None
        self.started = 0.0

    def submit(self, data: bytes) -> None:
        self.job, self.started = data, time.monotonic()
        self.conn.send(data)

    def restart(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()
        self.start_process()


# ---- the loop ------------------------------------------------------------------------------------


def save_crash(out: Path, data: bytes, kind: str, detail: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = out / f"{kind}-{digest}.xlsx"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(f"{kind}\n{detail}\n")
    return path


def fuzz(seconds: float, per_input: float, workers: int, seed: int, out: Path,
         memory_mb: int = 2048, preview: bool = False,
         log: Callable[[str], None] = print) -> tuple[int, Counter[str], list[Path]]:
    rnd = random.Random(seed)
    pool = seeds()
    outcomes: Counter[str] = Counter()
    crashes: list[Path] = []
    crash_signatures: set[str] = set()
    tried = 0
    deadline = time.monotonic() + seconds
    procs = [Worker(memory_mb, preview) for _ in range(workers)]
    try:
        for w in procs:  # the seeds themselves must be accepted
            w.submit(pool[0])
        while True:
            now = time.monotonic()
            busy = [w for w in procs if w.job is not None]
            if not busy and now >= deadline:
                break
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                         timeout=0.2)
            now = time.monotonic()
            for w in busy:
                result: tuple[str, str] | None = None
                if w.conn in ready:
                    try:
                        result = w.conn.recv()
                    except (EOFError, ConnectionResetError):
                        result = ("crash", f"worker died (exit code {w.process.exitcode})")
                elif w.process.sentinel in ready or not w.process.is_alive():
                    w.process.join()
                    result = ("crash", f"worker died (exit code {w.process.exitcode}): a native "
                                       "abort or an out-of-memory kill")
                elif now - w.started > per_input:
                    result = ("hang", f"no answer after {per_input:.0f} s")
                if result is None:
                    continue
                kind, detail = result
                tried += 1
                outcomes[kind] += 1
                assert w.job is not None
                if kind in ("crash", "hang"):
                    last = detail.strip().splitlines()[-1] if detail.strip() else kind
                    path = save_crash(out, w.job, kind, detail)
                    crashes.append(path)
                    if last not in crash_signatures:
                        crash_signatures.add(last)
                        log(f"\n{kind.upper()} on input #{tried} (saved {path}):\n{detail}")
                    if kind == "hang" or not w.process.is_alive() or w.conn.closed:
                        w.restart()
                w.job = None
                if time.monotonic() < deadline:
                    w.submit(mutate(rnd.choice(pool), rnd))
    finally:
        for w in procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                w.conn.send(None)
            w.process.join(timeout=2)
            if w.process.is_alive():
                w.process.kill()
    return tried, outcomes, crashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("FUZZ_SECONDS") or 120))
    parser.add_argument("--per-input", type=float, default=10.0, help="hang limit per input (s)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--preview", action="store_true",
                        help="run the whole preview (engine and writer too), not just the reader")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "fuzz")
    args = parser.parse_args(argv)
    print(f"fuzzing read_workbook for {args.seconds:.0f} s with {args.workers} worker(s), "
          f"seed {args.seed}", flush=True)
    started = time.monotonic()
    tried, outcomes, crashes = fuzz(args.seconds, args.per_input, args.workers, args.seed,
                                    args.out, args.memory_mb, args.preview)
    elapsed = time.monotonic() - started
    print(f"\n{tried:,} inputs tried in {elapsed:.0f} s ({tried / max(elapsed, 1e-9):.0f}/s)")
    for kind, count in sorted(outcomes.items()):
        print(f"  {kind:24s} {count:,}")
    if crashes:
        print(f"{len(crashes)} crashing input(s) saved under {args.out}")
        return 1
    print("no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
