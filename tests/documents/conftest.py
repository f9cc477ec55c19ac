"""One validator for the whole session: each XSD and schematron XSLT is compiled once."""

from __future__ import annotations

import pytest

from invoicing.documents.validate import Validator


@pytest.fixture(scope="session")
def validator() -> Validator:
    return Validator()
