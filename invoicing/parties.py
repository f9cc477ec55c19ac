"""Seller and buyer (SPEC E1, W11) and what EN 16931 requires of them before a document is made.

``missing_fields`` lists every problem at once, each naming the business term and the EN 16931
rule, so that a caller can refuse an incomplete document with the whole list (409 / exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable

from invoicing.model import Party, TaxCategory

__all__ = ["Party", "is_country_code", "missing_fields", "vat_id_problem"]

# ISO 3166-1 alpha-2, the officially assigned codes (the EN 16931 country code list, BR-CL-14,
# is these plus 1A for Kosovo and XI for Northern Ireland, which ISO does not assign).
_ISO_3166_ALPHA_2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
"""
ISO_COUNTRY_CODES: frozenset[str] = frozenset(_ISO_3166_ALPHA_2.split())

# BR-CO-09: a VAT identifier starts with the ISO 3166 code of its country; Greece uses EL and
# Northern Ireland XI (both accepted by the EN 16931 validators).
VAT_PREFIXES: frozenset[str] = ISO_COUNTRY_CODES | {"EL", "XI"}


def is_country_code(code: str) -> bool:
    """True for an ISO 3166-1 alpha-2 code, written in capitals as the standard does."""
    return code in ISO_COUNTRY_CODES


def vat_id_problem(vat_id: str) -> str | None:
    """Why a VAT identifier is malformed for EN 16931 (BR-CO-09), or None when its shape is fine:
    a two-letter country prefix followed by 2 to 13 letters or digits, no spaces."""
    if len(vat_id) < 4 or len(vat_id) > 15:
        return "a VAT id is a country prefix and 2 to 13 letters or digits"
    if vat_id[:2] not in VAT_PREFIXES:
        return f'a VAT id starts with its country\'s ISO 3166 code (or EL), not "{vat_id[:2]}"'
    if not vat_id[2:].isascii() or not vat_id[2:].isalnum():
        return "a VAT id has only letters and digits after its country prefix (no spaces)"
    return None


def missing_fields(
    seller: Party | None,
    buyer: Party | None,
    categories: Iterable[TaxCategory | str] = (),
) -> list[str]:
    """Everything EN 16931 requires of the parties that is absent or malformed, as sentences.

    ``categories`` are the VAT categories the document uses (its lines'): several rules depend on
    them (a seller VAT id for S, Z, E, AE, K, G; a buyer VAT id for AE and K; none for O).
    An empty list means the parties are complete enough for a valid document.
    """
    problems: list[str] = []
    used = {TaxCategory(c) for c in categories}
    if seller is None:
        problems.append("Seller: no seller is recorded (the Seller sheet, W11)")
    if buyer is None:
        problems.append("Buyer: no buyer is recorded")
    if seller is not None:
        problems.extend(_party_problems("Seller", seller, "BT-27 (BR-06)", "BT-40 (BR-09)"))
        problems.extend(_seller_tax_problems(seller, used))
    if buyer is not None:
        problems.extend(_party_problems("Buyer", buyer, "BT-44 (BR-07)", "BT-55 (BR-11)"))
        problems.extend(_buyer_tax_problems(buyer, used))
    return problems


def _party_problems(role: str, party: Party, name_rule: str, country_rule: str) -> list[str]:
    problems: list[str] = []
    if not party.name.strip():
        problems.append(f"{role}: name is missing, {name_rule}")
    code = party.country_code.strip()
    if not code:
        problems.append(f"{role}: country code of the postal address is missing, {country_rule}")
    elif not is_country_code(code):
        problems.append(f'{role}: country code "{code}" is not ISO 3166-1 alpha-2 (BR-CL-14)')
    if party.vat_id.strip():
        why = vat_id_problem(party.vat_id.strip())
        if why:
            problems.append(f'{role}: VAT id "{party.vat_id.strip()}": {why} (BR-CO-09)')
    return problems


def _seller_tax_problems(seller: Party, used: set[TaxCategory]) -> list[str]:
    problems: list[str] = []
    has_vat = bool(seller.vat_id.strip())
    if not has_vat and not seller.legal_id.strip():
        problems.append(
            "Seller: a VAT id (BT-31) or a legal registration id (BT-30) is required (BR-CO-26)"
        )
    rules = {
        TaxCategory.STANDARD: "BR-S-02",
        TaxCategory.ZERO: "BR-Z-02",
        TaxCategory.EXEMPT: "BR-E-02",
        TaxCategory.REVERSE_CHARGE: "BR-AE-02",
        TaxCategory.INTRA_COMMUNITY: "BR-IC-02",
        TaxCategory.EXPORT: "BR-G-02",
    }
    needing = [rules[c] for c in TaxCategory if c in used and c in rules]
    if needing and not has_vat:
        problems.append(
            f"Seller: VAT id (BT-31) is required for the VAT categories used ({', '.join(needing)})"
        )
    if TaxCategory.NOT_SUBJECT in used and has_vat:
        problems.append(
            "Seller: a document not subject to VAT (category O) must not carry the seller's "
            "VAT id (BR-O-02)"
        )
    return problems


def _buyer_tax_problems(buyer: Party, used: set[TaxCategory]) -> list[str]:
    problems: list[str] = []
    has_vat = bool(buyer.vat_id.strip())
    if TaxCategory.REVERSE_CHARGE in used and not has_vat and not buyer.legal_id.strip():
        problems.append(
            "Buyer: VAT id (BT-48) or legal registration id (BT-47) is required for reverse "
            "charge, category AE (BR-AE-02)"
        )
    if TaxCategory.INTRA_COMMUNITY in used and not has_vat:
        problems.append(
            "Buyer: VAT id (BT-48) is required for an intra-community supply, category K (BR-IC-02)"
        )
    if TaxCategory.NOT_SUBJECT in used and has_vat:
        problems.append(
            "Buyer: a document not subject to VAT (category O) must not carry the buyer's VAT id "
            "(BR-O-02)"
        )
    return problems
