"""Settings (S2, H, L): each default is declared once, on the ``Settings`` field, and the sample
settings file and the README's table state the same values."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from invoicing.settings import DEFAULTS, STORAGE_SETTINGS, Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "local.settings.sample.json"
README = ROOT / "README.md"


def _readme_table() -> dict[str, str]:
    """The README's configuration table: setting -> default, as written between backquotes."""
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| `([A-Za-z_]+)` \| (`[^`]*`|—) \|", section, re.MULTILINE)
    return {name: default.strip("`") for name, default in rows}


def test_every_field_but_the_connection_is_read_from_one_app_setting():
    read = [f.name for f in fields(Settings) if "app_setting" in f.metadata]
    assert read == [f.name for f in fields(Settings) if f.name != "storage_connection"]
    assert len(DEFAULTS) == len(read)


def test_no_setting_in_the_environment_is_the_declared_defaults():
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env(DEFAULTS) == Settings()


def test_the_sample_settings_file_states_the_declared_defaults():
    values = json.loads(SAMPLE.read_text())["Values"]
    assert {name: values[name] for name in DEFAULTS} == DEFAULTS
    assert set(STORAGE_SETTINGS) <= set(values)


def test_the_readme_table_states_the_declared_defaults():
    table = _readme_table()
    assert {name: table[name] for name in DEFAULTS} == DEFAULTS
    assert table["INVOICING_STORAGE"] == "—"
    assert set(table) == {*DEFAULTS, "INVOICING_STORAGE"}


def test_blank_values_take_the_default_except_where_blank_is_allowed():
    blank = {name: "" for name in DEFAULTS}
    kept = {
        f.name: ""
        for f in fields(Settings)
        if f.metadata and f.metadata["app_setting"].blank_allowed
    }
    assert "invoice_number_prefix" in kept  # an empty prefix means numbers without one
    # both number prefixes blank would number invoice 1 and credit note 1 alike: refused
    with pytest.raises(SettingsError, match="the same number"):
        Settings.from_env(blank)
    del kept["credit_note_prefix"]
    assert Settings.from_env({**blank, "CREDIT_NOTE_PREFIX": "CRN-"}) == Settings(**kept)
    assert Settings.from_env({"MAX_ROWS": "  "}).max_rows == Settings().max_rows


def test_the_connection_is_the_first_storage_setting_that_is_set():
    assert Settings.from_env({"AzureWebJobsStorage": "b"}).storage_connection == "b"
    both = {"INVOICING_STORAGE": "a", "AzureWebJobsStorage": "b"}
    assert Settings.from_env(both).storage_connection == "a"
    blank_first = {"INVOICING_STORAGE": "", "AzureWebJobsStorage": "b"}
    assert Settings.from_env(blank_first).storage_connection == "b"
    assert Settings.from_env({"INVOICING_STORAGE": ""}).storage_connection is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INVOICE_CATCHUP_DAYS", "0", "INVOICE_CATCHUP_DAYS 0 is outside 1..3660"),
        ("INVOICE_LEASE_SECONDS", "61", "INVOICE_LEASE_SECONDS 61 is outside 15..60"),
        ("MAX_UPLOAD_BYTES", "104857601", "MAX_UPLOAD_BYTES 104857601 is outside 1..104857600"),
        ("MAX_ROWS", "1048577", "MAX_ROWS 1048577 is outside 1..1048576"),
        ("MAX_ROWS", "ten", 'MAX_ROWS "ten" is not a whole number'),
    ],
)
def test_whole_numbers_are_checked_against_their_bounds(name, value, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("invoices", "credits", "allowed"),
    [("INV-", "CRN-", True), ("", "CRN-", True), ("INV", "INV1", False), ("A", "A", False),
     ("INV", "INV-C", True), ("INV\t", "CRN-", False), ("X" * 21, "CRN-", False)],
)
def test_number_prefixes_never_let_an_invoice_and_a_credit_note_share_a_number(
    invoices, credits, allowed
):
    env = {"INVOICE_NUMBER_PREFIX": invoices, "CREDIT_NOTE_PREFIX": credits}
    if allowed:
        assert Settings.from_env(env).credit_note_prefix == credits
    else:
        with pytest.raises(SettingsError):
            Settings.from_env(env)


@pytest.mark.parametrize("prefix", ["ab", "1abc", "in-voicing", "é" * 3, "a" * 57])
def test_a_table_prefix_that_cannot_name_a_table_is_refused(prefix):
    with pytest.raises(SettingsError, match="3 to 56 ASCII letters and digits"):
        Settings.from_env({"INVOICE_TABLE_PREFIX": prefix})


def test_the_shortest_table_prefix_names_valid_tables():
    assert Settings.from_env({"INVOICE_TABLE_PREFIX": "inv"}).table_prefix == "inv"
