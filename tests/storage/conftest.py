"""Fixtures of the storage tests."""

from __future__ import annotations

import pytest

from invoicing.settings import Settings


@pytest.fixture
def cli_env(storage_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("INVOICING_STORAGE", storage_settings.storage_connection or "")
    monkeypatch.setenv("INVOICE_TABLE_PREFIX", storage_settings.table_prefix)
    monkeypatch.setenv("INVOICE_LEASE_SECONDS", str(storage_settings.lease_seconds))
    return storage_settings
