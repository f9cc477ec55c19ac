"""Invoice documents (SPEC §E): parties, tax, EN 16931 XML (CII and UBL), the PDF, validators.

Pure functions over the engine's records, no storage. Import the module you need
(``invoicing.documents.pdf`` pulls in fpdf2 and factur-x, ``validate`` saxonche).
"""
