"""SPEC L3, C: every hostile case through the real command line, each in a fresh child process.

Each child is timed and its own peak RSS is read from ``os.wait4`` (the rusage of that one child,
unlike RUSAGE_CHILDREN which is the maximum over every child so far). The children run two at a
time so the whole corpus stays well under a minute on two cores.
"""

from __future__ import annotations

import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile import corpus
from tests.hostile.corpus import CASES, Case, case_env
from tests.support.children import run_measured

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT = 10.0  # seconds per child (L3: bounded time)
RSS_LIMIT_MB = 500  # L3


@dataclass(frozen=True)
class Outcome:
    case: str
    command: str
    exit_code: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    output_exists: bool


def run_cli(args: list[str], env_extra: dict[str, str], workdir: Path, tag: str) -> tuple:
    """Run ``python -m invoicing ARGS``; return (exit code, seconds, peak RSS MB, out, err), the
    peak of that child alone (``tests.support.children``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    env.pop("INVOICING_STORAGE", None) if "INVOICING_STORAGE" not in env_extra else None
    report = workdir / f"{tag}.json"
    return run_measured(
        [sys.executable, "-m", "invoicing", *args], env, workdir, report, TIME_LIMIT * 3
    )



def _run_case(
    case: Case, path: Path, command: str, workdir: Path, storage: dict[str, str]
) -> Outcome:
    output = workdir / f"{case.name}.{command}.out.xlsx"
    if command == "preview":
        args = ["preview", str(path), "--date", "2020-10-05", "-o", str(output)]
        env: dict[str, str] = {}
    else:  # import into a real (Azurite) store, which must stay empty
        args = ["import", str(path)]
        env = storage
    code, seconds, rss, out, err = run_cli(
        args, {**env, **case_env(case)}, workdir, f"{case.name}.{command}"
    )
    return Outcome(case.name, command, code, seconds, rss, out, err, output.exists())


def _commands(case: Case) -> list[str]:
    rejected = case.expect in ("gate", "reader")
    return ["preview", "import"] if rejected else ["preview"]


LEGIT = Case("legit_control", "ok", None, lambda p: p.write_bytes(corpus.legit_workbook()))


@pytest.fixture(scope="session")
def import_storage(request: pytest.FixtureRequest) -> dict[str, str]:
    azurite = request.getfixturevalue("azurite")  # tests/conftest.py: one Azurite per session
    return {
        "INVOICING_STORAGE": azurite.connection_string,
        "INVOICE_TABLE_PREFIX": "hostile" + uuid.uuid4().hex[:10],
    }


@pytest.fixture(scope="session")
def cli_outcomes(
    tmp_path_factory: pytest.TempPathFactory, import_storage: dict[str, str]
) -> dict[tuple[str, str], Outcome]:
    folder = tmp_path_factory.mktemp("hostile_cli")
    cases = [*CASES, LEGIT]
    paths = corpus.build_corpus(folder / "corpus", cases)
    jobs = [(c, cmd) for c in cases for cmd in _commands(c)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(
            lambda job: _run_case(job[0], paths[job[0].name], job[1], folder, import_storage),
            jobs,
        ))
    table = "\n".join(
        f"{o.case:30s} {o.command:8s} exit {o.exit_code}  {o.seconds:5.2f} s  "
        f"{o.peak_rss_mb:6.1f} MB  {_last_line(o.stderr)[:90]}"
        for o in results
    )
    print("\nhostile corpus through the CLI:\n" + table)
    (folder / "results.txt").write_text(table)
    return {(o.case, o.command): o for o in results}


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _check_common(o: Outcome) -> None:
    assert "Traceback" not in o.stderr, o.stderr
    assert o.seconds < TIME_LIMIT, f"{o.case} took {o.seconds:.1f} s"
    assert o.peak_rss_mb < RSS_LIMIT_MB, f"{o.case} peaked at {o.peak_rss_mb:.0f} MB"


@pytest.mark.parametrize(
    ("case", "command"),
    [(c, cmd) for c in CASES for cmd in _commands(c)],
    ids=lambda v: v.name if isinstance(v, Case) else v,
)
def test_hostile_case_through_cli(
    case: Case, command: str, cli_outcomes: dict[tuple[str, str], Outcome]
) -> None:
    o = cli_outcomes[(case.name, command)]
    _check_common(o)
    if case.expect == "harmless":
        assert o.exit_code in (0, 2), o.stderr
        assert o.output_exists == (o.exit_code == 0 and command == "preview")
        return
    assert o.exit_code == 2, f"exit {o.exit_code}: {o.stderr}"
    assert not o.output_exists
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    assert lines
    if case.expect == "gate":
        assert len(lines) == 1, o.stderr  # one plain sentence
        assert lines[0].startswith("error: ")


def test_legit_control_through_cli(cli_outcomes: dict[tuple[str, str], Outcome]) -> None:
    o = cli_outcomes[("legit_control", "preview")]
    _check_common(o)
    assert o.exit_code == 0, o.stderr
    assert o.output_exists


def test_rss_is_measured_per_child(tmp_path: Path) -> None:
    """The harness itself: a child that allocates 200 MB reports >= 200 MB, a later one less,
    however large the process that starts them has grown."""
    ballast = bytearray(150 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # resident, like a worker that grew
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    big = run_measured(
        [sys.executable, "-c", "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096])"],
        env,
        tmp_path,
        tmp_path / "big.json",
        60,
    )
    small = run_measured([sys.executable, "-c", "pass"], env, tmp_path, tmp_path / "s.json", 60)
    del ballast
    assert big[0] == 0 and big[2] > 200
    assert small[0] == 0 and small[2] < 100


def test_rejected_imports_wrote_nothing(
    cli_outcomes: dict[tuple[str, str], Outcome], import_storage: dict[str, str]
) -> None:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(import_storage["INVOICING_STORAGE"])
    prefix = import_storage["INVOICE_TABLE_PREFIX"]
    for table in service.list_tables():
        if table.name.lower().startswith(prefix.lower()):
            rows = list(service.get_table_client(table.name).list_entities())
            assert rows == [], f"{table.name} has {len(rows)} entities after rejected imports"
