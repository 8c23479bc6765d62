"""The comparison tables: `harness table`'s grid with each model's test against the next smaller
one, the list of adjacent-pair tests, and the prompt-sensitivity summary."""

from __future__ import annotations

from harness.compare.pairs import PairTest
from harness.compare.runs import Runs
from harness.compare.significance import ALPHA
from harness.sensitivity import sensitivity_table
from harness.table import N_ROW, build_table

LEGEND = (f"p: one-sided paired test that the model beats the next smaller one on the examples both "
          f"share (their number: n=…; ↑: p < {ALPHA}). Row `n`: examples each model was scored on.")
NUMERIC_HEADER = ["task", "template", "shots", "metric", "model", "backend", "parameters", "value",
                  "stderr", "n", "p", "p_n", "p_vs"]


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
        if runs.metric_filter is not None and metric not in runs.metric_filter and metric != N_ROW:
            continue
        cells = list(row[4:])
        for j, model in enumerate(models):
            t = by_cell.get((task, template, shots, metric, model))
            if t is not None and t.test is not None and cells[j]:
                mark = " ↑" if t.test.b_better else ""
                cells[j] += f" (p={p_text(t.test.p_value)}{mark}, n={t.test.n})"
        out.append([*row[:4], *cells])
    return header, out


def _num(value) -> str:
    """A CSV number: repr of the float (empty when absent)."""
    return "" if value is None else repr(float(value))


def score_records(runs: Runs, tests: list[PairTest]) -> tuple[list[str], list[list[str]]]:
    """The scores in long form for spreadsheets: one row per (setting, metric, model) with value,
    stderr, n, and the paired test against the next smaller model (p, its shared examples
    p_n, and that model p_vs) each in its own numeric column."""
    by_cell = {(t.key, t.metric, t.larger): t for t in tests}
    rows = []
    for key in runs.keys():
        for metric in runs.metrics(key):
            for model in runs.models_for(key):
                result = runs.result(model, key)
                entry = result["metrics"].get(metric)
                if not entry or entry.get("value") is None:
                    continue
                t = by_cell.get((key, metric, model))
                tested = t is not None and t.test is not None
                rows.append([key.task, key.template, str(key.shots), metric, model,
                             str(result["model"].get("backend", "")),
                             str(result["model"].get("num_parameters") or ""),
                             _num(entry["value"]), _num(entry.get("stderr")),
                             str(result.get("n_examples", "")),
                             _num(t.test.p_value) if tested else "", str(t.test.n) if tested else "",
                             t.smaller if tested else ""])
    return NUMERIC_HEADER, rows

def significance_rows(tests: list[PairTest], numeric: bool = False) -> tuple[list[str], list[list[str]]]:
    """One row per adjacent pair; `numeric`: full-precision numbers (for the CSV)."""
    fmt = _num if numeric else (lambda v: f"{v:.4f}")
    header = ["task", "template", "shots", "metric", "smaller", "larger", "n", "smaller score",
              "larger score", "delta", "p", "larger better", "test"]
    rows = []
    for t in tests:
        base = [t.key.task, t.key.template, str(t.key.shots), t.metric, t.smaller, t.larger]
        if t.test is None:
            rows.append([*base, "", "", "", "", "", "", t.note])
            continue
        r = t.test
        rows.append([*base, str(r.n), fmt(r.score_a), fmt(r.score_b),
                     _num(r.delta) if numeric else f"{r.delta:+.4f}",
                     _num(r.p_value) if numeric else p_text(r.p_value), "yes" if r.b_better else "no",
                     r.method])
    return header, rows


def sensitivity_rows(runs: Runs) -> tuple[list[str], list[list[str]]]:
    return sensitivity_table(runs.results, runs.metric_filter)
