"""One self-contained HTML report: plots (embedded PNG), tables, and a per-example browser.

Nothing is fetched: CSS, JavaScript, images and data are all inside the file.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from harness.compare.pairs import corpus_scorer
from harness.compare.runs import RowKey, Runs
from harness.references import all_reference_points

PROMPT_CHARS = 1500  # the end of long prompts is kept (it is where the question is)


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _binary_metric(runs: Runs, key: RowKey, models: list[str], samples: dict) -> str | None:
    for metric in runs.metrics(key):
        signature = runs.result(models[0], key)["metrics"].get(metric, {}).get("signature")
        if corpus_scorer(key.task, metric, signature) is not None:
            continue  # sentence-level BLEU/chrF are not right/wrong
        values = [s.get("scores", {}).get(metric) for m in models for s in samples[m]]
        if values and all(v in (0, 1, 0.0, 1.0) and not isinstance(v, bool) for v in values):
            return metric
    return None


def _correct(sample: dict, metric: str | None, higher_is_better: bool) -> bool:
    if metric is not None:
        return sample["scores"][metric] == (1 if higher_is_better else 0)
    refs = [str(r).strip() for r in sample.get("references") or []]
    return str(sample.get("prediction")).strip() in refs


def _shown_prediction(sample: dict) -> str:
    """The prediction as text: a multiple-choice index becomes `[i] choice text`."""
    pred, choices = sample.get("prediction"), sample.get("choices")
    if isinstance(pred, int) and not isinstance(pred, bool) and isinstance(choices, list) \
            and 0 <= pred < len(choices):
        return f"[{pred}] {choices[pred]}"
    return pred if isinstance(pred, str) else json.dumps(pred, ensure_ascii=False)


def _references(sample: dict) -> list[str]:
    """The references; for multiple choice the gold choice with its index, as predictions show."""
    gold, choices = sample.get("gold"), sample.get("choices")
    if isinstance(gold, int) and isinstance(choices, list) and 0 <= gold < len(choices):
        return [f"[{gold}] {choices[gold]}"]
    return [str(r) for r in sample.get("references") or []]


def example_groups(runs: Runs, max_examples: int) -> list[dict]:
    """Browser data: per task setting, every example any model saw (in index order), with each
    model's prediction and scores (None where a model did not see that example)."""
    groups = []
    for key in runs.keys():
        models = [m for m in runs.models_for(key) if runs.samples(m, key)]
        if not models:
            continue
        samples = {m: runs.samples(m, key) for m in models}
        binary = _binary_metric(runs, key, models, samples)
        hib = bool(runs.result(models[0], key)["metrics"].get(binary or "", {}).get("higher_is_better", True))
        by_index = {m: {s["index"]: s for s in samples[m]} for m in models}
        first_seen: dict[int, dict] = {}
        for m in models:  # the first model's sample of each example gives its prompt
            for s in samples[m]:
                first_seen.setdefault(s["index"], s)
        base = [first_seen[i] for i in sorted(first_seen)]
        examples = []
        for s in base[:max_examples]:
            prompt = str(s.get("prompt", ""))
            row = {"i": s["index"], "refs": _references(s),
                   "prompt": prompt if len(prompt) <= PROMPT_CHARS else "…" + prompt[-PROMPT_CHARS:],
                   "pred": [], "scores": [], "ok": []}
            for m in models:
                t = by_index[m].get(s["index"])
                same = t is not None and t.get("prompt") == s.get("prompt")
                row["pred"].append(_shown_prediction(t) if same else None)
                row["scores"].append({k: v for k, v in t.get("scores", {}).items()
                                      if runs.metric_filter is None or k in runs.metric_filter}
                                     if same else {})
                row["ok"].append(_correct(t, binary, hib) if same else None)
            examples.append(row)
        rule = (f"wrong: {binary} is {0 if hib else 1}" if binary
                else "wrong: the prediction differs from every reference")
        groups.append({"id": key.label, "models": models, "rule": rule, "total": len(base),
                       "examples": examples})
    return groups


STYLE = (Path(__file__).with_name("report.css")).read_text(encoding="utf-8")
SCRIPT = (Path(__file__).with_name("report.js")).read_text(encoding="utf-8")


def _data_json(groups: list[dict]) -> str:
    return json.dumps(groups, ensure_ascii=False).replace("</", "<\\/")


def _model_item(runs: Runs, model: str) -> str:
    n = runs.parameters(model)
    size = f"{n:,} parameters" if isinstance(n, int) else "parameters unknown"
    return f"<li>{html.escape(model)}: {size}</li>"


def render_report(runs: Runs, tables: dict[str, tuple[list[str], list[list[str]]]],
                  plots: dict[str, Path], notes: dict[str, str], max_examples: int) -> str:
    """The whole report as one HTML string."""
    models = "".join(_model_item(runs, m) for m in runs.models)
    parts = [f"<h1>Zero-shot transfer across model sizes</h1><p class='meta'>{len(runs.latest)} results "
             f"from <code>{html.escape(str(runs.folder))}</code></p><ul class='meta'>{models}</ul>",
             "<h2>Scaling</h2><div class='plots'>"]
    for task, path in plots.items():
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<img alt='{html.escape(task)} scaling plot' src='data:image/png;base64,{encoded}'>")
    refs = sorted({(p.source, p.task, p.metric, p.model, p.value, p.where) for p in all_reference_points()
                   if p.task in plots})  # only the tasks of this report
    if refs:
        items = "".join(f"<li>{html.escape(f'{s}: {t} {m} {mo} = {v:g} ({w})')}</li>"
                        for s, t, m, mo, v, w in refs)
        parts.append(f"<p class='note'>Reference points (stated in the source, not read off a figure):</p>"
                     f"<ul class='note'>{items}</ul>")
    parts.append("</div>")
    for title, (header, rows) in tables.items():
        if not rows:
            continue
        parts.append(f"<h2>{html.escape(title)}</h2>{_table(header, rows)}")
        if title in notes:
            parts.append(f"<p class='note'>{html.escape(notes[title])}</p>")
    groups = example_groups(runs, max_examples)
    parts.append(
        "<h2>Examples</h2><div id='browser'><div class='controls'>"
        "<label>setting <select id='group'></select></label>"
        "<label>show <select id='filter'></select></label>"
        "<label>search <input id='search' type='search'></label></div>"
        "<p class='note'><span id='rule'></span> · <span id='count'></span></p>"
        "<table class='examples'><thead id='head'></thead><tbody id='rows'></tbody></table>"
        "<button id='more'>show more</button></div>"
        f"<script type='application/json' id='examples-data'>{_data_json(groups)}</script>"
        f"<script>{SCRIPT}</script>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>harness compare</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
