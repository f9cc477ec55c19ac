"""Every app setting in one place: read from the environment, with defaults and validation.

Names are those of SPEC H, L and S2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIB = 1024 * 1024


class SettingsError(ValueError):
    """An app setting has a value we cannot use; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Settings:
    storage_connection: str | None = None
    timezone: str = "UTC"
    catchup_days: int = 31
    run_schedule: str = "0 0 2 * * *"
    invoice_number_prefix: str = "INV-"
    max_upload_bytes: int = 20 * MIB
    max_rows: int = 1_048_576
    lease_seconds: int = 30
    table_prefix: str = "invoicing"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        connection = env.get("INVOICING_STORAGE") or env.get("AzureWebJobsStorage") or None
        settings = cls(
            storage_connection=connection,
            timezone=env.get("INVOICE_TIMEZONE", "UTC") or "UTC",
            catchup_days=_int(env, "INVOICE_CATCHUP_DAYS", 31, low=1, high=3660),
            run_schedule=env.get("INVOICE_RUN_SCHEDULE", "0 0 2 * * *") or "0 0 2 * * *",
            invoice_number_prefix=env.get("INVOICE_NUMBER_PREFIX", "INV-"),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 20 * MIB, low=1, high=100 * MIB),
            max_rows=_int(env, "MAX_ROWS", 1_048_576, low=1, high=1_048_576),
            lease_seconds=_int(env, "INVOICE_LEASE_SECONDS", 30, low=15, high=60),
            table_prefix=env.get("INVOICE_TABLE_PREFIX", "invoicing") or "invoicing",
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f'INVOICE_TIMEZONE "{self.timezone}" is not an IANA time zone such as '
                '"Europe/Paris" or "UTC"'
            ) from None
        fields = self.run_schedule.split()
        if len(fields) != 6 and not (self.run_schedule.startswith("%") or ":" in self.run_schedule):
            raise SettingsError(
                f'INVOICE_RUN_SCHEDULE "{self.run_schedule}" is not a six-field NCRONTAB '
                'expression such as "0 0 2 * * *" (02:00 UTC daily)'
            )
        prefix = self.table_prefix
        # Table names are 3-63 ASCII letters and digits starting with a letter, and the longest
        # name made from the prefix is prefix + "globals".
        if not (
            prefix.isascii() and prefix.isalnum() and prefix[0].isalpha() and len(prefix) <= 56
        ):
            raise SettingsError(
                f'INVOICE_TABLE_PREFIX "{prefix}" must be 1 to 56 ASCII letters and digits, '
                "starting with a letter"
            )


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f'{name} "{raw}" is not a whole number') from None
    if not low <= value <= high:
        raise SettingsError(f"{name} {value} is outside {low}..{high}")
    return value
