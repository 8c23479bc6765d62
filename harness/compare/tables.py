"""The comparison tables: `harness table`'s grid with each model's test against the next smaller
one, the list of adjacent-pair tests, and the prompt-sensitivity summary."""

from __future__ import annotations

from harness.compare.pairs import PairTest
from harness.compare.runs import Runs
from harness.compare.sensitivity import sensitivity_table
from harness.compare.significance import ALPHA
from harness.table import build_table

LEGEND = (f"p: one-sided paired test that the model beats the next smaller one on the same examples "
          f"(↑: p < {ALPHA}).")


def p_text(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def score_table(runs: Runs, tests: list[PairTest]) -> tuple[list[str], list[list[str]]]:
    """Task × metric rows, models by size; a cell is `value ± stderr (p=…)` (p vs the next smaller)."""
    header, rows = build_table(runs.results)
    models = header[4:]
    by_cell = {(t.key.task, t.key.template, t.key.shots, t.metric, t.larger): t for t in tests}
    out = []
    for row in rows:
        task, template, shots, metric = row[0], row[1], int(row[2]), row[3]
        if runs.metric_filter is not None and metric not in runs.metric_filter:
            continue
        cells = list(row[4:])
        for j, model in enumerate(models):
            t = by_cell.get((task, template, shots, metric, model))
            if t is not None and t.test is not None and cells[j]:
                mark = " ↑" if t.test.b_better else ""
                cells[j] += f" (p={p_text(t.test.p_value)}{mark})"
        out.append([*row[:4], *cells])
    return header, out


def significance_rows(tests: list[PairTest]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "template", "shots", "metric", "smaller", "larger", "n", "smaller score",
              "larger score", "delta", "p", "larger better", "test"]
    rows = []
    for t in tests:
        base = [t.key.task, t.key.template, str(t.key.shots), t.metric, t.smaller, t.larger]
        if t.test is None:
            rows.append([*base, "", "", "", "", "", "", t.note])
            continue
        r = t.test
        rows.append([*base, str(r.n), f"{r.score_a:.4f}", f"{r.score_b:.4f}", f"{r.delta:+.4f}",
                     p_text(r.p_value), "yes" if r.b_better else "no", r.method])
    return header, rows


def sensitivity_rows(runs: Runs) -> tuple[list[str], list[list[str]]]:
    return sensitivity_table(runs.results, runs.metric_filter)
