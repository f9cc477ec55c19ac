"""Every app setting in one place: read from the environment, with defaults and validation.

Names are those of SPEC H, L and S2. Each setting is one field of ``Settings``: its default, its
app-setting name and its bounds are declared there and nowhere else; ``from_env`` reads the fields,
``DEFAULTS`` lists them as a settings file writes them (``local.settings.sample.json`` and the
README's table state the same values, which a test checks).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIB = 1024 * 1024
EXCEL_ROWS = 1_048_576  # Excel's own row limit (L2)

# The storage connection string: the first of these that is set and not blank; no default.
STORAGE_SETTINGS = ("INVOICING_STORAGE", "AzureWebJobsStorage")

T = TypeVar("T", str, int)

# INVOICE_DISPATCH (S9): the daily run invokes every contract in its own process (inline), or
# enqueues the work on a Storage Queue for the queue-triggered function (H11) and ``worker``.
INLINE, QUEUE = "inline", "queue"
DISPATCH_MODES = (INLINE, QUEUE)
# A queue name is 3-63 lowercase letters, digits and single hyphens, starting and ending with a
# letter or digit; ours is at most 56 so that its poison queue ``<name>-poison`` is one too.
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,55}$")
POISON_SUFFIX = "-poison"
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"


class SettingsError(ValueError):
    """An app setting has a value we cannot use; the message names the setting."""


@dataclass(frozen=True, slots=True)
class AppSetting:
    """How one ``Settings`` field is read from the environment.

    A whole number (``low`` and ``high`` given) that is absent or blank takes the default; so does
    a text, unless ``blank_allowed`` (an empty invoice number prefix means no prefix).
    """

    name: str
    low: int | None = None
    high: int | None = None
    blank_allowed: bool = False

    def read(self, env: Mapping[str, str], default: Any) -> Any:
        raw = env.get(self.name)
        if self.low is not None and self.high is not None:
            return _whole_number(self.name, raw, default, low=self.low, high=self.high)
        if raw is None or (raw == "" and not self.blank_allowed):
            return default
        return raw


def _setting(default: T, name: str, **how: Any) -> T:
    return field(default=default, metadata={"app_setting": AppSetting(name, **how)})


@dataclass(frozen=True, slots=True)
class Settings:
    storage_connection: str | None = None  # STORAGE_SETTINGS
    timezone: str = _setting("UTC", "INVOICE_TIMEZONE")
    catchup_days: int = _setting(31, "INVOICE_CATCHUP_DAYS", low=1, high=3660)
    run_schedule: str = _setting("0 0 2 * * *", "INVOICE_RUN_SCHEDULE")
    invoice_number_prefix: str = _setting("INV-", "INVOICE_NUMBER_PREFIX", blank_allowed=True)
    credit_note_prefix: str = _setting("CRN-", "CREDIT_NOTE_PREFIX", blank_allowed=True)
    max_upload_bytes: int = _setting(20 * MIB, "MAX_UPLOAD_BYTES", low=1, high=100 * MIB)
    max_rows: int = _setting(EXCEL_ROWS, "MAX_ROWS", low=1, high=EXCEL_ROWS)
    lease_seconds: int = _setting(30, "INVOICE_LEASE_SECONDS", low=15, high=60)
    table_prefix: str = _setting("invoicing", "INVOICE_TABLE_PREFIX")
    # how many tables a NEW store spreads its contracts over (storage.shards); a store's layout
    # is fixed when it is created, so changing this later changes nothing for it
    table_shards: int = _setting(16, "INVOICE_TABLE_SHARDS", low=1, high=64)
    dispatch: str = _setting(INLINE, "INVOICE_DISPATCH")
    queue_name: str = _setting("invoicing-work", "INVOICE_QUEUE")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "storage_connection": next((env[n] for n in STORAGE_SETTINGS if env.get(n)), None)
        }
        for name, how, default in _app_settings():
            values[name] = how.read(env, default)
        settings = cls(**values)
        settings.validate()
        if settings.dispatch == QUEUE and not env.get(STORAGE_SETTINGS[0]) and values[
            "storage_connection"
        ]:
            # H11's trigger names INVOICING_STORAGE as its connection: the host must find the
            # queue where the run puts the work
            raise SettingsError(
                "INVOICE_DISPATCH=queue needs INVOICING_STORAGE set (the queue-triggered "
                "function's connection setting); set it to the AzureWebJobsStorage connection "
                "string if the tables live there"
            )
        return settings

    def validate(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f'INVOICE_TIMEZONE "{self.timezone}" is not an IANA time zone such as '
                '"Europe/Paris" or "UTC"'
            ) from None
        parts = self.run_schedule.split()
        if len(parts) != 6 and not (self.run_schedule.startswith("%") or ":" in self.run_schedule):
            raise SettingsError(
                f'INVOICE_RUN_SCHEDULE "{self.run_schedule}" is not a six-field NCRONTAB '
                'expression such as "0 0 2 * * *" (02:00 UTC daily)'
            )
        self._check_number_prefixes()
        prefix = self.table_prefix
        # Table names are 3-63 ASCII letters and digits starting with a letter, and the longest
        # names made from the prefix are prefix + "globals" and, with shards, prefix + "works15"
        # (seven characters each; ``storage.shards`` makes at most 64 tables: "works63").
        if not (
            prefix.isascii()
            and prefix.isalnum()
            and prefix[:1].isalpha()
            and 3 <= len(prefix) <= 56
        ):
            # the prefix alone names the main table, and a table name is at least 3 characters
            raise SettingsError(
                f'INVOICE_TABLE_PREFIX "{prefix}" must be 3 to 56 ASCII letters and digits, '
                "starting with a letter"
            )
        if self.dispatch not in DISPATCH_MODES:
            raise SettingsError(
                f'INVOICE_DISPATCH "{self.dispatch}" must be "inline" (one process) or "queue" '
                "(fan-out on a Storage Queue)"
            )
        if not _QUEUE_NAME.match(self.queue_name):
            raise SettingsError(
                f'INVOICE_QUEUE "{self.queue_name}" must be 3 to 56 lowercase letters, digits '
                "and single hyphens, starting and ending with a letter or digit (its poison "
                f'queue "{self.queue_name}{POISON_SUFFIX}" must be a queue name too)'
            )

    def _check_number_prefixes(self) -> None:
        """Invoice and credit-note numbers must never be equal (R16, R21); each prefix is short
        printable ASCII, so that a number is the same in the store, the XML (BT-1) and a file
        name."""
        for name, text in (
            ("INVOICE_NUMBER_PREFIX", self.invoice_number_prefix),
            ("CREDIT_NOTE_PREFIX", self.credit_note_prefix),
        ):
            if len(text) > MAX_NUMBER_PREFIX or not (text.isascii() and text.isprintable()):
                raise SettingsError(
                    f'{name} "{text}" must be at most {MAX_NUMBER_PREFIX} printable ASCII '
                    "characters"
                )
        invoices, credits = self.invoice_number_prefix, self.credit_note_prefix
        shorter, longer = sorted((invoices, credits), key=len)
        # prefix + digits: two series can meet only when one prefix is the other plus digits
        if longer.startswith(shorter) and (longer == shorter or longer[len(shorter) :].isdigit()):
            raise SettingsError(
                f'INVOICE_NUMBER_PREFIX "{invoices}" and CREDIT_NOTE_PREFIX "{credits}" would '
                "give an invoice and a credit note the same number; make them differ"
            )


MAX_NUMBER_PREFIX = 20


def _app_settings() -> list[tuple[str, AppSetting, Any]]:
    """(field name, how it is read, its default) of every field read from one app setting."""
    return [
        (f.name, f.metadata["app_setting"], f.default)
        for f in fields(Settings)
        if "app_setting" in f.metadata
    ]


# App setting name -> its default as a settings file holds it (text), in field order.
DEFAULTS: dict[str, str] = {how.name: str(default) for _, how, default in _app_settings()}


def _whole_number(name: str, raw: str | None, default: int, *, low: int, high: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f'{name} "{raw}" is not a whole number') from None
    if not low <= value <= high:
        raise SettingsError(f"{name} {value} is outside {low}..{high}")
    return value


@dataclass(frozen=True, slots=True)
class QueueHost:
    """The queue trigger's settings (``extensions.queues`` of host.json), read from that one
    place by the ``worker`` command so that it retries and gives up like the Functions host."""

    batch_size: int
    new_batch_threshold: int
    max_dequeue_count: int
    visibility_seconds: float  # how long a failed message stays hidden before its retry


def queue_host(path: Path = HOST_JSON) -> QueueHost:
    """host.json's queue settings; a missing or unreadable value is a ``SettingsError``."""
    try:
        queues = json.loads(path.read_text(encoding="utf-8"))["extensions"]["queues"]
        return QueueHost(
            batch_size=int(queues["batchSize"]),
            new_batch_threshold=int(queues["newBatchThreshold"]),
            max_dequeue_count=int(queues["maxDequeueCount"]),
            visibility_seconds=_timespan(str(queues["visibilityTimeout"])),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            f"{path.name}: extensions.queues needs batchSize, newBatchThreshold, "
            f"maxDequeueCount and visibilityTimeout ({type(exc).__name__}: {exc})"
        ) from None


def _timespan(text: str) -> float:
    """Seconds of a host.json TimeSpan ``hh:mm:ss`` (``00:00:30``)."""
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
