"""The one error type users see: a single line that says what is wrong and how to fix it."""

from __future__ import annotations

import difflib


class HarnessError(Exception):
    """A user-facing error; the CLI prints its message on one line and exits with code 2."""

    exit_code = 2


def did_you_mean(name: str, choices: list[str], n: int = 3) -> str:
    """Return ' Did you mean: a, b?' for the closest choices, or an empty string."""
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not close:
        close = [c for c in choices if name.lower() in c.lower()][:n]
    return f" Did you mean: {', '.join(close)}?" if close else ""
