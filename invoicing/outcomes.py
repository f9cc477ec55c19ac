"""What each failure means to the caller, in one table: the exit code of the command line (SPEC C)
and the HTTP status and problem title of the Functions (SPEC H).

This sits at the bindings level: ``invoicing.cli`` and ``invoicing.functions`` import it, the
services and the engine never do (they raise; the bindings answer). It knows the error types only
(``invoicing.errors``, ``invoicing.storage.errors``, ``invoicing.settings``, ``azure.core``).

``table()`` is read top down and the first row whose type the failure is an instance of answers,
so the most specific types come first (``LeaseHeld`` before ``StorageError``, the two unreachable-
storage errors before ``AzureError``); the last row takes anything. Status 500 means the client
could do nothing about it (a bad app setting, a storage answer we did not expect, a bug): over HTTP
it is answered with a correlation id and logged with its traceback, never with its text; the
command line still says it in one line. One rule goes beyond the row (L6): over HTTP, a failure
that would be a 500 but was caused (``raise ... from``) by storage that could not be reached is
that cause's 503 (``http_outcome``).

The table is built on first use so that the commands without storage (``preview``,
``template``) never load the Azure SDK (about 0.1 s of start-up).

Interrupts are not failures of the request and are not in the table: ``SystemExit`` always
propagates; ``KeyboardInterrupt`` propagates over HTTP and is "interrupted" / exit 1 on the command
line.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from invoicing.errors import BadRequest, DocumentRefused, InputRejected, UploadRejected
from invoicing.settings import SettingsError
from invoicing.storage.errors import (
    AlreadyCredited,
    LeaseHeld,
    LeaseLost,
    NotFound,
    StateChanged,
    StorageError,
    StorageNotConfigured,
    WrongState,
)

EXIT_OK = 0
EXIT_ERROR = 1  # anything else, with a one-line reason
EXIT_INVALID = 2  # invalid input: a workbook, an upload, a request value
EXIT_LEASE_HELD = 3  # another run holds the lease; nothing was done
EXIT_AUDIT = 4  # the audit found violations (a result, not a failure: no row)

UNEXPECTED_STATUS = 500

# The problem title of each status, unless the row names its own.
TITLES: dict[int, str] = {
    400: "Bad request",
    404: "Not found",
    409: "Conflict",
    413: "Upload too large",
    415: "Not an xlsx workbook",
    422: "The workbook has errors",
    500: "Internal error",
    503: "Service unavailable",
}


def first_line(exc: BaseException) -> str:
    """The first line of the failure's text, or its type's name when it has none."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _says(exc: BaseException) -> str:
    return f"error: {exc}"


def _problems(exc: BaseException) -> str:
    assert isinstance(exc, InputRejected)
    count = f"{exc.total:,} error(s); nothing was written"
    warned = (f"warning: {w}" for w in exc.warnings)  # W12: with the errors
    return "\n".join([*(str(p) for p in exc.problems), *warned, count])


def _refusals(exc: BaseException) -> str:
    assert isinstance(exc, DocumentRefused)
    return "\n".join([*(f"error: {p}" for p in exc.problems), "no document was written"])


def _problem_count(exc: BaseException) -> str:
    assert isinstance(exc, InputRejected)
    return f"{exc.total:,} problem(s) in the workbook; nothing was imported or previewed"


def _cannot_reach(exc: BaseException) -> str:
    return f"error: cannot reach the storage account: {first_line(exc)}"


def _storage(exc: BaseException) -> str:
    return f"error: storage: {first_line(exc)}"


def _unexpected(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}"


def _not_reached(exc: BaseException) -> str:
    return "the storage account cannot be reached; try again later"  # no infrastructure detail


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One row: a failure type and how each surface answers it.

    ``stderr`` is the command line's text (one line, but every problem of an ``InputRejected``);
    ``detail`` the problem+json ``detail`` (the failure's text unless said otherwise); ``log`` what
    the HTTP side logs at error level because an operator must act, formatted with ``handler``
    (the function's name), ``error`` (the failure's text) and ``line`` (its first line).
    """

    error: type[BaseException]
    exit_code: int
    status: int
    title: str = ""  # "" = the status's title (TITLES)
    stderr: Callable[[BaseException], str] = _says
    detail: Callable[[BaseException], str] = str
    log: str = ""
    own_status: bool = False  # the failure carries its status (UploadRejected: 413, 415, 422)
    unreachable: bool = False  # storage could not be reached: a 500 raised from it is this row

    def status_of(self, exc: BaseException) -> int:
        status = getattr(exc, "status", None) if self.own_status else None
        return status if isinstance(status, int) else self.status

    def title_of(self, status: int) -> str:
        return self.title or TITLES.get(status, "Error")

    @property
    def unexpected(self) -> bool:
        return self.status == UNEXPECTED_STATUS


# Anything no other row foresaw (native parsers raise BaseException subclasses: pyo3's panics).
UNFORESEEN = Outcome(BaseException, EXIT_ERROR, UNEXPECTED_STATUS, stderr=_unexpected)


@functools.cache
def table() -> tuple[Outcome, ...]:
    """Every row, most specific first: the first row whose type matches answers."""
    from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError

    # Storage that cannot be reached (L6): the SDK raises ServiceRequestError when the request
    # could not be sent (refused, name not resolved, timed out), ServiceResponseError when no
    # answer came back. The command line words the second like any other storage error.
    not_sent = Outcome(
        ServiceRequestError,
        EXIT_ERROR,
        503,
        title="Storage unavailable",
        stderr=_cannot_reach,
        detail=_not_reached,
        log="{handler}: cannot reach the storage account: {line}",
        unreachable=True,
    )
    return (
        # invalid input: nothing was produced or written
        Outcome(InputRejected, EXIT_INVALID, 422, stderr=_problems, detail=_problem_count),
        Outcome(UploadRejected, EXIT_INVALID, 415, own_status=True),
        Outcome(BadRequest, EXIT_INVALID, 400),  # the command line's UsageError too
        # E3: the store lacks what EN 16931 requires (party data, a live invoice): fix, retry
        Outcome(
            DocumentRefused,
            EXIT_INVALID,
            409,
            title="The document cannot be made",
            stderr=_refusals,
        ),
        # the app's own configuration
        Outcome(SettingsError, EXIT_ERROR, UNEXPECTED_STATUS),
        # storage-backed operations (invoicing.storage.errors)
        Outcome(LeaseHeld, EXIT_LEASE_HELD, 409, title="Another run holds the lease"),
        Outcome(LeaseLost, EXIT_ERROR, 503, title="The run lost its lease"),
        Outcome(
            StorageNotConfigured,
            EXIT_ERROR,
            503,
            title="Storage is not configured",
            log="storage is not configured: {error}",
        ),
        Outcome(NotFound, EXIT_ERROR, 404),
        # a second credit of a share (R21) is the caller's mistake: exit 2, like invalid input
        Outcome(AlreadyCredited, EXIT_INVALID, 409),
        Outcome(WrongState, EXIT_ERROR, 409),
        Outcome(StateChanged, EXIT_ERROR, 409, title="The contract changed meanwhile"),
        Outcome(StorageError, EXIT_ERROR, UNEXPECTED_STATUS),
        # the Azure SDK
        not_sent,
        dataclasses.replace(not_sent, error=ServiceResponseError, stderr=_storage),
        Outcome(AzureError, EXIT_ERROR, UNEXPECTED_STATUS, stderr=_storage),
        UNFORESEEN,
    )


def outcome_of(exc: BaseException) -> Outcome:
    """The first row of ``table()`` that ``exc`` is an instance of (the command line's answer)."""
    return next(row for row in table() if isinstance(exc, row.error))


def unreachable_cause(exc: BaseException) -> BaseException | None:
    """The unreachable-storage error ``exc`` is or was raised from (``__cause__`` chain), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if outcome_of(current).unreachable:
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def storage_unreachable(exc: BaseException) -> bool:
    """A connection to storage failed: refused, reset, timed out, name not resolved (L6: 503)."""
    return unreachable_cause(exc) is not None


def http_outcome(exc: BaseException) -> Outcome:
    """The row the HTTP handlers answer with: ``outcome_of``, except that a failure no row foresaw
    (a 500) raised from an unreachable-storage error is that error's 503."""
    row = outcome_of(exc)
    if row.unexpected:
        cause = unreachable_cause(exc)
        if cause is not None:
            return outcome_of(cause)
    return row
