"""SPEC L over HTTP: every hostile case posted to the real preview and imports handlers, each case
in a fresh child process so its time and peak memory are its own (L3); the store stays empty."""

from __future__ import annotations

import json
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from invoicing.storage.shards import DEFAULT_SHARDS, table_names
from tests.hostile import corpus
from tests.hostile.corpus import CASES, Case, case_env
from tests.support.children import run_measured

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT = 10.0
RSS_LIMIT_MB = 500


@pytest.fixture(scope="session")
def http_storage(azurite) -> dict[str, str]:
    """Each case imports into its own tables: ``<prefix>c<case index>``."""
    return {"INVOICING_STORAGE": azurite.connection_string, "prefix": "hh" + uuid.uuid4().hex[:8]}


def _prefix(http_storage: dict[str, str], case: Case) -> str:
    return f"{http_storage['prefix']}c{CASES.index(case)}"


@pytest.fixture(scope="session")
def http_answers(tmp_path_factory, http_storage) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("hostile_http")
    paths = corpus.build_corpus(folder / "corpus", CASES)

    def run(case: Case) -> tuple[str, dict]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "INVOICING_STORAGE": http_storage["INVOICING_STORAGE"],
            "INVOICE_TABLE_PREFIX": _prefix(http_storage, case),
            **case_env(case),
        }
        env.pop("AzureWebJobsStorage", None)
        # through the small runner: a child forked from this (large) worker would start with the
        # worker's resident size as its own peak (tests.support.children)
        code, _, _, out, err = run_measured(
            [sys.executable, "-m", "tests.hostile.http_child", str(paths[case.name])],
            env,
            ROOT,
            folder / f"{case.name}.json",
            TIME_LIMIT * 6,
        )
        assert code == 0, err
        return case.name, json.loads(out.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, CASES))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_case_through_http(case: Case, http_answers: dict[str, dict]) -> None:
    answers = http_answers[case.name]
    assert answers["peak_rss_mb"] < RSS_LIMIT_MB
    for name in ("preview", "imports"):
        answer = answers[name]
        assert answer["seconds"] < TIME_LIMIT, f"{name} took {answer['seconds']:.1f} s"
        if case.expect == "harmless" and answer["status"] == 200:
            continue
        expected = case.status if case.expect == "gate" else 422
        assert answer["status"] == expected, answer
        problem = json.loads(answer["body"])
        assert answer["mimetype"] == "application/problem+json"
        assert problem["status"] == expected
        assert problem["detail"] and "\n" not in problem["detail"]
        assert "Traceback" not in answer["body"]


def test_rejected_uploads_over_http_wrote_nothing(http_answers, http_storage) -> None:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(http_storage["INVOICING_STORAGE"])
    tables = [t.name for t in service.list_tables()]
    rejected = [c for c in CASES if http_answers[c.name]["imports"]["status"] != 200]
    assert {c.name for c in CASES} - {c.name for c in rejected} <= {
        c.name for c in CASES if c.expect == "harmless"
    }
    for case in rejected:
        prefix = _prefix(http_storage, case).lower()
        # every table such a store has, whatever its layout (one table, or shards)
        mine = {prefix + "globals"} | {
            name.lower()
            for shards in (1, int(os.environ["INVOICE_TABLE_SHARDS"]), DEFAULT_SHARDS)
            for base in (prefix, prefix + "work")
            for name in table_names(base, shards)
        }
        for name in tables:
            if name.lower() in mine:
                rows = list(service.get_table_client(name).list_entities())
                assert rows == [], f"{case.name}: {name} has {len(rows)} entities"
