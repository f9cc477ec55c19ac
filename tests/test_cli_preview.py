"""The command line without storage: ``template`` and ``preview`` (SPEC C, R20, X, L4)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from invoicing.cli import exit_code, main
from invoicing.errors import BadRequest
from tests.support.invoices import formula_cells, read_invoice_workbook
from tests.support.workbooks import Text, minimal_rows, put, xlsx

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "templates" / "sample-adatum.xlsx"
PYTHON_M = (sys.executable, "-m", "invoicing")


def preview(tmp_path: Path, source: Path | bytes, *args: str) -> tuple[int, Path]:
    if isinstance(source, bytes):
        path = tmp_path / "in.xlsx"
        path.write_bytes(source)
        source = path
    out = tmp_path / "out.xlsx"
    return main(["preview", str(source), *args, "-o", str(out)]), out


def test_preview_of_the_adatum_sample_gives_the_seeds_five_invoices(tmp_path):
    code, out = preview(tmp_path, SAMPLE, "--from", "2020-10-01", "--to", "2020-11-30")
    assert code == 0
    sheets = read_invoice_workbook(out.read_bytes())
    dates = [row[7] for row in sheets["Invoices"]]
    assert dates == [
        date(2020, 10, 5),
        date(2020, 10, 19),
        date(2020, 11, 2),
        date(2020, 11, 3),
        date(2020, 11, 16),
    ]
    line_counts = [row[11] for row in sheets["Invoices"]]
    assert line_counts == [3, 1, 2, 1, 1]
    milestones = [
        (row[3], row[10]) for row in sheets["InvoiceLineDetails"] if row[2] == "Milestone"
    ]
    assert [Decimal(str(amount)) for _, amount in milestones] == [Decimal(5000), Decimal(12000)]


def test_preview_of_a_single_date_with_nothing_due_writes_an_empty_workbook(tmp_path):
    code, out = preview(tmp_path, SAMPLE, "--date", "2020-10-06")
    assert code == 0
    sheets = read_invoice_workbook(out.read_bytes())
    assert sheets["Invoices"] == [] and sheets["RunLog"] == []


def test_workbook_errors_exit_2_list_every_problem_and_write_nothing(tmp_path, capsys):
    book = minimal_rows()
    put(book, "Transactions", 2, "Date", "31/12/2020")
    put(book, "Contracts", 2, "Currency", "XYZ")
    code, out = preview(tmp_path, xlsx(book), "--date", "2020-10-05")
    assert code == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert 'Transactions!E2: date "31/12/2020" is not YYYY-MM-DD or an Excel date' in err
    assert "Contracts!C2:" in err and "XYZ" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2020-02-30"], '--date "2020-02-30" is not a date'),
        (["--date", "9999-12-31"], "--date 9999-12-31 is outside 1900-01-01 to 9899-12-31"),
        (["--from", "2020-10-05"], "--from and --to go together"),
        (["--from", "2020-10-05", "--to", "2020-10-01"], "is before --from"),
        ([], "give --date D or --from A --to B"),
        (["--date", "2020-10-05", "--from", "2020-10-01"], "not both"),
        # L6: exactly YYYY-MM-DD (date.fromisoformat alone takes the first two)
        (["--date", "20201005"], '--date "20201005" is not a date in YYYY-MM-DD form'),
        (["--date", "2020-W41-1"], '--date "2020-W41-1" is not a date in YYYY-MM-DD form'),
        (["--date", "2020-10-5"], '--date "2020-10-5" is not a date in YYYY-MM-DD form'),
        (["--from", "2020-10-01", "--to", "20201031"], '--to "20201031" is not a date'),
    ],
)
def test_bad_dates_exit_2_with_a_one_line_reason(tmp_path, capsys, args, message):
    code, out = preview(tmp_path, SAMPLE, *args)
    assert code == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--date", "20201005"], '--date "20201005" is not a date in YYYY-MM-DD form'),
        (["run", "--from", "2020-W41-1", "--to", "2020-10-09"], '--from "2020-W41-1" is not'),
        (["export", "--from", "2020-10-5", "-o", "x.xlsx"], '--from "2020-10-5" is not'),
        (["export", "--from", "2020-10-09", "--to", "2020-10-01", "-o", "x.xlsx"], "is before"),
        (["export", "--status", "Paid", "-o", "x.xlsx"], '--status "Paid" is not one of Draft'),
    ],
)
def test_run_and_export_refuse_bad_values_with_exit_2_before_touching_storage(
    monkeypatch, capsys, args, message
):
    # No storage at all: the values are refused before anything would open it.
    monkeypatch.delenv("INVOICING_STORAGE", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1


def test_a_bad_request_raised_by_a_command_exits_2_with_its_message(capsys):
    # The mapping every command goes through (R19's future run date raises BadRequest there).
    def command() -> int:
        raise BadRequest("run date 2999-01-01 is after today")

    assert exit_code(command) == 2
    assert capsys.readouterr().err == "error: run date 2999-01-01 is after today\n"


@pytest.mark.parametrize("unbuffered", [False, True])
def test_preview_into_a_pipe_whose_reader_left_exits_0_and_writes_the_workbook(
    tmp_path, unbuffered
):
    """``preview ... | head -1``: the reader is gone before the listing is written (the read end
    is closed before the command starts), so every write to stdout fails with EPIPE: in one
    final flush (block-buffered stdout) or at the first print (PYTHONUNBUFFERED)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    out = tmp_path / "out.xlsx"
    span = ["--from", "2020-10-01", "--to", "2020-11-30"]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [*PYTHON_M, "preview", str(SAMPLE), *span, "-o", str(out)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "BrokenPipe" not in stderr and "Exception ignored" not in stderr
    assert stderr == ""
    assert len(read_invoice_workbook(out.read_bytes())["Invoices"]) == 5


def test_missing_input_file_exits_2(tmp_path, capsys):
    code, _out = preview(tmp_path, tmp_path / "nope.xlsx", "--date", "2020-10-05")
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_an_input_over_the_byte_cap_exits_2_naming_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    code, out = preview(tmp_path, SAMPLE, "--date", "2020-10-05")
    assert code == 2 and not out.exists()
    size = SAMPLE.stat().st_size
    assert capsys.readouterr().err == (
        f"error: {SAMPLE} is {size:,} bytes; the limit is 1,000 bytes\n"
    )


def test_a_text_file_is_not_a_workbook(tmp_path, capsys):
    code, out = preview(tmp_path, b"ContractId,Currency\nC1,USD\n", "--date", "2020-10-05")
    assert code == 2 and not out.exists()
    assert "xlsx" in capsys.readouterr().err


DANGEROUS = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "#N/A", '=HYPERLINK("http://x")']


def test_dangerous_descriptions_come_back_as_the_same_text_never_a_formula(tmp_path):
    book = minimal_rows()
    for i, text in enumerate(DANGEROUS):
        book["Transactions"].append(
            [f"X{i}", "C1", "L1", "Time", date(2020, 10, 2), Text(text), "Ana", 1, 1, None, "Yes"]
        )
    code, out = preview(tmp_path, xlsx(book), "--from", "2020-10-01", "--to", "2020-10-31")
    assert code == 0
    data = out.read_bytes()
    assert formula_cells(data) == []
    ws = openpyxl.load_workbook(out)["InvoiceLineDetails"]
    header = [c.value for c in ws[1]]
    by_id = {
        row[header.index("SourceId")].value: row[header.index("Description")]
        for row in ws.iter_rows(min_row=2)
    }
    for i, text in enumerate(DANGEROUS):
        cell = by_id[f"X{i}"]
        assert (cell.data_type, cell.value) == ("s", text), f"X{i}"


def test_template_command_writes_the_blank_template_the_reader_accepts(tmp_path):
    out = tmp_path / "template.xlsx"
    assert main(["template", "-o", str(out)]) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames[:3] == ["Contracts", "Customers", "ContractLines"]
