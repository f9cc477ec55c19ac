"""Text at the storage limit imports and invoices into real Azurite; longer text is refused by
validation, in preview and import alike, with nothing written (SPEC L4, R20).

A Table Storage string property holds 64 KiB of UTF-16 (32,768 code units); the reader's limit is
Excel's own cell limit, 32,767 units. Plain ASCII, CJK (one UTF-16 unit, three UTF-8 bytes) and
emoji (two UTF-16 units, four UTF-8 bytes) are each tried at the limit. (The same refusal over
HTTP, 422 for preview and import, is in ``tests/hostile/test_costly_cells.py``.)
"""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import date
from pathlib import Path

from invoicing import services
from invoicing.cli import main
from tests.support.workbooks import add, minimal_rows, put, xlsx

ROOT = Path(__file__).resolve().parents[2]
M = 32_767
EMOJI = "🙂"
PLAIN = "p" * M
EMOJI_TEXT = EMOJI * (M // 2) + "e"  # 16,383 emoji and a letter: 32,767 units
CJK = "契" * M
EMOJI_NAME = EMOJI * (M // 2) + "n"
D = date.fromisoformat


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def random_emoji_text(rnd: random.Random) -> str:
    # Random emoji (two UTF-16 units, twelve characters of ASCII JSON each), so the workbook
    # compresses like real text (the upload gate refuses zip bombs) and a few such transactions
    # fill more than one 4 MiB storage batch.
    return "".join(chr(0x1F300 + rnd.randrange(700)) for _ in range(M // 2)) + "r"


def long_text_book(extra: int = 8):
    book = minimal_rows()
    put(book, "Contracts", 2, "ContractName", EMOJI_NAME)
    put(book, "Customers", 2, "CustomerName", "k" * M)
    put(book, "Customers", 3, "CustomerName", CJK)
    put(book, "ContractLines", 2, "LineName", EMOJI_NAME)
    put(book, "Milestones", 2, "MilestoneName", EMOJI_NAME)
    put(book, "Transactions", 2, "Description", PLAIN)
    put(book, "Transactions", 2, "Resource", CJK)
    put(book, "Transactions", 3, "Description", EMOJI_TEXT)
    put(book, "Transactions", 4, "Description", CJK)
    rnd = random.Random(8)
    texts = {}
    for n in range(extra):  # more than one storage batch of them
        tid = f"X{n}"
        texts[tid] = (random_emoji_text(rnd), random_emoji_text(rnd))
        add(
            book,
            "Transactions",
            TransactionId=tid,
            ContractId="C1",
            LineId="L1",
            Class="Time",
            Date=date(2020, 10, 5),
            Description=texts[tid][0],
            Resource=texts[tid][1],
            Quantity=1,
            UnitPrice=2,
            ReadyToInvoice="Yes",
        )
    return book, texts


def test_texts_at_the_limit_import_and_invoice_into_azurite(
    store, storage_settings, storage_env, tmp_path
):
    assert all(units(t) == M for t in (PLAIN, EMOJI_TEXT, CJK, EMOJI_NAME))
    book, texts = long_text_book()
    path = tmp_path / "long.xlsx"
    path.write_bytes(xlsx(book))
    # The import runs in a child (the command line), so this test process stays small: a child's
    # peak RSS on Linux starts at its parent's, and other tests measure children.
    done = subprocess.run(
        [sys.executable, "-m", "invoicing", "import", str(path)],
        cwd=ROOT,
        env={**storage_env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    part = store.load("C1")
    assert len(part.transactions) == 3 + len(texts)
    assert part.transactions["T1"]["Desc"] == PLAIN and part.transactions["T1"]["Res"] == CJK
    assert part.transactions["T2"]["Desc"] == EMOJI_TEXT
    assert part.transactions["T3"]["Desc"] == CJK
    for tid, (desc, res) in texts.items():
        assert (part.transactions[tid]["Desc"], part.transactions[tid]["Res"]) == (desc, res)
    assert part.milestones["M1"]["Name"] == EMOJI_NAME
    contract = part.contract()
    assert contract.name == EMOJI_NAME
    assert [c.name for c in contract.customers] == ["k" * M, CJK]
    assert contract.lines[0].name == EMOJI_NAME

    # The run writes the same texts into invoice headers, lines and details.
    services.run_daily(store, storage_settings, span=(D("2020-10-01"), D("2020-10-31")))
    invoices, _ = services.list_invoices(store)
    by_customer = {}
    for invoice in invoices:
        by_customer.setdefault(invoice.customer_id, []).append(invoice)
        assert invoice.contract_name == EMOJI_NAME
    assert {i.customer_name for i in by_customer["K1"]} == {"k" * M}
    assert {i.customer_name for i in by_customer["K2"]} == {CJK}
    descriptions = {
        d.source_id: d.description
        for i in by_customer["K1"]
        for line in i.lines
        for d in line.details
    }
    assert descriptions["T1"] == PLAIN
    for tid, (desc, _) in texts.items():
        assert descriptions[tid] == desc
    assert {
        line.line_name for i in invoices for line in i.lines if line.contract_line_id == "L1"
    } == {EMOJI_NAME}
    assert services.audit(store) == []


def emoji_book() -> bytes:
    book = put(minimal_rows(), "Transactions", 2, "Description", EMOJI * 20_000)
    return xlsx(book)


PROBLEM = "Transactions!F2: text is 40,000 characters (UTF-16 units) long; at most 32,767"


def test_a_description_of_20000_emoji_is_refused_by_import_and_preview_and_nothing_is_written(
    store, storage_settings, monkeypatch, capsys, tmp_path
):
    path = tmp_path / "emoji.xlsx"
    path.write_bytes(emoji_book())
    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection or "")
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    assert main(["import", str(path)]) == 2
    err = capsys.readouterr().err
    assert PROBLEM in err
    assert store.contracts() == []
    out = tmp_path / "preview.xlsx"
    assert main(["preview", str(path), "--date", "2020-10-31", "-o", str(out)]) == 2
    assert PROBLEM in capsys.readouterr().err
    assert not out.exists()
