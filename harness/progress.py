"""Progress in examples (not requests: a 4-choice question is 4 requests, 1 example), with the
elapsed time and the ETA each in one unit (s, min or h), and the rate in examples/s."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

BAR = ("{desc}: {percentage:3.0f}%|{bar}| {n}/{total} examples "
       "[{elapsed_text} elapsed, ETA {eta_text}, {rate_text}]")


def duration(seconds: float | None) -> str:
    """`42 s`, `3.5 min` or `1.2 h` (one unit, so that it reads at a glance); `?` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _Bar(tqdm):
    """tqdm with the elapsed time, ETA and rate formatted by `duration`."""

    @property
    def format_dict(self):
        d = super().format_dict
        n, total, elapsed = d["n"], d["total"], d["elapsed"]
        rate = d.get("rate") or (n / elapsed if elapsed and n else None)
        d["elapsed_text"] = duration(elapsed)
        d["eta_text"] = duration((total - n) / rate) if rate and total is not None else "?"
        d["rate_text"] = f"{rate:.2f} examples/s" if rate else "? examples/s"
        return d


class ExampleProgress:
    """Counts examples done from the requests answered (the model reports requests)."""

    def __init__(self, requests: int, examples: int, desc: str, file=None):
        self.requests = max(1, requests)
        self.examples = examples
        self.answered = 0
        self.shown = 0
        self.bar = _Bar(total=examples, desc=desc, bar_format=BAR, file=file or sys.stderr,
                        dynamic_ncols=True, mininterval=1.0)

    def update(self, answered: int) -> None:
        """`answered` more requests are done."""
        self.answered += answered
        done = self.examples if self.answered >= self.requests else \
            self.answered * self.examples // self.requests
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done

    def close(self) -> None:
        self.bar.close()
