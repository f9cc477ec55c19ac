"""Problems found in user input, reported as data (W10) rather than raised one at a time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem with the input, located as precisely as the input allows.

    ``cell`` is an A1 reference such as ``F12``; it may be empty for a problem that belongs to a
    whole sheet (a missing required sheet) or to the file itself.
    """

    sheet: str
    cell: str
    message: str

    def __str__(self) -> str:
        if self.sheet and self.cell:
            return f"{self.sheet}!{self.cell}: {self.message}"
        if self.sheet:
            return f"{self.sheet}: {self.message}"
        return self.message

    def as_dict(self) -> dict[str, str]:
        return {"sheet": self.sheet, "cell": self.cell, "message": self.message}


class InputRejected(Exception):
    """The input has problems; nothing was produced or written. Carries every problem found."""

    def __init__(
        self, problems: list[Problem] | tuple[Problem, ...], title: str = "The workbook has errors"
    ):
        self.problems = tuple(problems)
        self.title = title
        # Problems found, when more were found than listed (the reader lists at most a thousand).
        self.total = len(self.problems)
        # What the reader warned about besides (W12: warnings are printed with the errors).
        self.warnings: tuple[str, ...] = ()
        super().__init__("\n".join(str(p) for p in self.problems) or title)


class UploadRejected(Exception):
    """The upload is not something we parse at all (too large, not xlsx, dangerous zip: SPEC L).

    ``status`` is the HTTP status the functions answer with (413 or 415 or 422).
    """

    def __init__(self, message: str, status: int = 415):
        self.status = status
        super().__init__(message)


class BadRequest(Exception):
    """A request value that is wrong: a malformed date or filter, a run date after today (R19).

    The message says which value and why, naming the parameter as the caller spelled it
    (``--date`` on the command line, ``date`` over HTTP). The command line exits 2 with the
    message on stderr; every HTTP handler answers 400 problem+json with it as ``detail``.
    """


class DocumentRefused(Exception):
    """An invoice document (E3) that cannot be made: party data EN 16931 requires is missing, a
    cancelled invoice, a tax combination no e-invoice can state. ``problems`` lists every reason
    at once; the command line exits 2 with each on stderr, HTTP answers 409 with the list."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) or "the document cannot be made")
