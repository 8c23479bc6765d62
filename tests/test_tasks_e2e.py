"""Every issue-3 task end to end on the tiny model, with a few rows of local data written here.

Each run's numbers are checked against the model asked directly (same requests, by hand), so a
task that builds the wrong requests or aggregates them wrongly fails.
"""

from __future__ import annotations

import json
import math

import pytest

from harness.registry import discover
from harness.requests import LoglikelihoodRequest
from harness.runner import RunSettings, evaluate
from harness.scorers.perplexity import count_words
from tests.conftest import LAMBADA, require


@pytest.fixture(scope="module")
def registry():
    return discover()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _run(lm, registry, name, data, **settings):
    return evaluate(lm, registry.get(name), RunSettings(data_files=data, **settings))


@pytest.fixture
def lm(native_tiny_lm):
    """The default engine for tests that compare a run with the model asked directly, exactly: its
    numbers do not depend on the batching on any CPU (mindnlp's do on some: docs/native-engine.md)."""
    return native_tiny_lm


def _ll(lm, context, continuation):
    return lm.loglikelihood([LoglikelihoodRequest(context, continuation)])[0]


def test_lambada_on_shared_rows_matches_the_model_asked_directly(lm, registry, tmp_path):
    rows = [json.loads(line) for line in require(LAMBADA).read_text(encoding="utf-8").splitlines()[:2]]
    rows += [{"text": "the cat sat on the mat and the cat"}, {"text": "a b a b a b a b"}]
    run = _run(lm, registry, "lambada", _jsonl(tmp_path / "l.jsonl", rows))
    direct = [_ll(lm, r["text"].rsplit(" ", 1)[0], " " + r["text"].rsplit(" ", 1)[1]) for r in rows]
    assert run.metrics["acc"]["value"] == pytest.approx(sum(d.is_greedy for d in direct) / 4)
    ppl = math.exp(-sum(d.logprob for d in direct) / 4)
    assert run.metrics["perplexity"]["value"] == pytest.approx(ppl, rel=1e-9)
    assert run.metrics["perplexity"]["higher_is_better"] is False


def test_lambada_standard(tiny_lm, registry, tmp_path):
    rows = [{"text": "he opened the door and saw his old friend , tom"}, {"text": "she said hello to tom"}]
    run = _run(tiny_lm, registry, "lambada-standard", _jsonl(tmp_path / "s.jsonl", rows))
    assert run.n_examples == 2 and set(run.metrics) == {"acc", "perplexity"}


HELLASWAG = {"activity_label": "Baking", "ctx_a": "A woman puts a tray in the oven.", "ctx_b": "she",
             "endings": ["waits for the cake to bake.", "swims [title] across.", "eats the oven.",
                         "sings."], "label": "0"}


@pytest.mark.parametrize(("name", "row"), [
    ("hellaswag", HELLASWAG),
    ("piqa", {"goal": "How to open a jar?", "sol1": "Twist the lid.", "sol2": "Eat the jar.", "label": 0}),
    ("arc-easy", {"question": "What do plants need?", "answerKey": "B",
                  "choices": {"text": ["Rocks", "Sunlight", "Plastic"], "label": ["A", "B", "C"]}}),
    ("arc-challenge", {"question": "Which is a metal?", "answerKey": "2",
                       "choices": {"text": ["wood", "iron"], "label": ["1", "2"]}}),
    ("boolq", {"passage": "Paris is in France.", "question": "is paris in france", "label": 1}),
    ("boolq", {"passage": "Ice is cold.", "question": "is ice hot", "answer": False}),
])
def test_multiple_choice_tasks(lm, registry, tmp_path, name, row):
    task = registry.get(name)
    run = _run(lm, registry, name, _jsonl(tmp_path / "mc.jsonl", [row, row]))
    assert set(run.metrics) == {"acc", "acc_norm"}
    doc = task.prepare(row)
    prompt = run.samples[0]["prompt"]
    direct = [_ll(lm, prompt, " " + c).logprob for c in doc["choices"]]
    assert run.samples[0]["choice_logprobs"] == pytest.approx(direct, rel=1e-9)
    # the sample says what was asked: every choice's text, the gold index, each choice's score
    assert run.samples[0]["choices"] == doc["choices"] and run.samples[0]["gold"] == doc["gold"]
    assert len(run.samples[0]["choice_is_greedy"]) == len(doc["choices"])
    best = max(range(len(direct)), key=lambda i: direct[i])
    assert run.samples[0]["prediction"] == best
    best_norm = max(range(len(direct)), key=lambda i: direct[i] / len(doc["choices"][i]))
    assert run.metrics["acc"]["value"] == float(best == doc["gold"])
    assert run.metrics["acc_norm"]["value"] == float(best_norm == doc["gold"])


SENSITIVITY_TASKS = ("lambada", "arc-easy", "arc-challenge", "piqa", "hellaswag", "boolq")
LAMBADA_ROW = {"text": "He put the key in the lock and turned the handle of the door"}
ROWS = {"lambada": LAMBADA_ROW, "piqa": {"goal": "How to open a jar?", "sol1": "Twist the lid.",
                                        "sol2": "Eat the jar.", "label": 0},
        "arc-easy": {"question": "What do plants need?", "answerKey": "B",
                     "choices": {"text": ["Rocks", "Sunlight"], "label": ["A", "B"]}},
        "hellaswag": HELLASWAG,
        "boolq": {"passage": "Paris is in France.", "question": "is paris in france", "label": 1}}


@pytest.mark.parametrize("name", SENSITIVITY_TASKS)
def test_prompt_sensitivity_tasks_have_three_templates_lm_eval_s_the_default(registry, name):
    from harness.runner import render_context, template_for

    task = registry.get(name)
    assert len(task.templates) >= 3 and task.default_template == "lm-eval"
    doc = task.prepare(ROWS.get(name, ROWS["arc-easy"]))
    prompts = [render_context(task, template_for(task, t), doc, []) for t in task.templates]
    assert len(set(prompts)) == len(prompts)  # each wording differs
    for prompt in prompts:  # the delimiter adds the one space before what is scored
        assert prompt.strip() and prompt == prompt.rstrip()


def test_winogrande_scores_the_rest_of_the_sentence_after_each_filled_context(lm, registry, tmp_path):
    row = {"sentence": "The cup fell on the rug because _ was slippery.", "option1": "the cup",
           "option2": "the rug", "answer": "2"}
    run = _run(lm, registry, "winogrande", _jsonl(tmp_path / "w.jsonl", [row]))
    before = "The cup fell on the rug because "
    direct = [_ll(lm, before + o, " was slippery.").logprob for o in ("the cup", "the rug")]
    assert run.samples[0]["choice_logprobs"] == pytest.approx(direct, rel=1e-9)
    assert run.metrics["acc"]["value"] == float(direct[1] > direct[0])


def test_wsc273_partial_scoring(lm, registry, tmp_path):
    text = "The trophy doesn't fit into the brown suitcase because it is too large."
    row = {"text": text, "pronoun": "it", "pronoun_loc": text.index(" it ") + 1,
           "options": ["the trophy", "the suitcase"], "label": 0}
    run = _run(lm, registry, "wsc273", _jsonl(tmp_path / "wsc.jsonl", [row]))
    before = text[: row["pronoun_loc"]]
    direct = [_ll(lm, before + o, " is too large.").logprob for o in row["options"]]
    assert run.samples[0]["choice_logprobs"] == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize("name", ["cbt-cn", "cbt-ne"])
def test_cbt_scores_candidate_and_rest_of_sentence(lm, registry, tmp_path, name):
    row = {"sentences": ["Tom had a dog .", "The dog liked bones ."],
           "question": "One day the XXXXX ran away .", "answer": "dog", "options": ["dog", "cat", "bone"]}
    run = _run(lm, registry, name, _jsonl(tmp_path / "cbt.jsonl", [row]))
    context = "Tom had a dog . The dog liked bones . One day the"
    direct = [_ll(lm, context, f" {o} ran away .").logprob for o in row["options"]]
    assert run.samples[0]["choice_logprobs"] == pytest.approx(direct, rel=1e-9)


def test_coqa_every_turn_is_an_example(tiny_lm, registry, tmp_path):
    row = {"story": "Anna has a red ball.", "questions": ["What does Anna have?", "What color?"],
           "answers": {"input_text": ["a ball", "red"]}}
    run = _run(tiny_lm, registry, "coqa", _jsonl(tmp_path / "c.jsonl", [row]), max_new_tokens=4)
    assert run.n_examples == 2 and set(run.metrics) == {"f1", "exact_match"}
    assert run.samples[1]["prompt"].endswith("Q: What does Anna have?\n\nA: a ball\n\nQ: What color?\n\nA:")
    assert all("\n" not in s["prediction"] for s in run.samples)
    assert 0.0 <= run.metrics["f1"]["value"] <= 1.0


def test_natural_questions(tiny_lm, registry, tmp_path):
    rows = [{"question": "who wrote hamlet", "answer": ["Shakespeare", "William Shakespeare"]},
            {"question": "capital of france", "answer": ["Paris"]}]
    run = _run(tiny_lm, registry, "natural-questions", _jsonl(tmp_path / "nq.jsonl", rows), max_new_tokens=4)
    assert set(run.metrics) == {"exact_match"}
    assert all(not any(stop in s["prediction"] for stop in "\n.,") for s in run.samples)


def test_cnn_dailymail_sampling_is_seeded_and_summaries_are_three_sentences(tiny_lm, registry, tmp_path):
    rows = [{"article": "The mayor opened a new bridge on Monday. Crowds cheered.", "highlights":
             "Mayor opens bridge .\nCrowds cheer ."}, {"article": "Rain fell.", "highlights": "It rained ."}]
    data = _jsonl(tmp_path / "cnn.jsonl", rows)
    first = _run(tiny_lm, registry, "cnn-dailymail", data, max_new_tokens=6)
    again = _run(tiny_lm, registry, "cnn-dailymail", data, max_new_tokens=6, limit=1)
    assert first.samples[0]["raw_output"] == again.samples[0]["raw_output"]  # same seed, same sample
    assert first.samples[0]["prompt"].endswith("Crowds cheered.\nTL;DR:")
    assert all(s["prediction"].count("\n") <= 2 for s in first.samples)
    assert set(first.metrics) == {"rouge1", "rouge2", "rougeL"}
    task = registry.get("cnn-dailymail")  # the paper's decoding: top-k 2, 100 tokens, seeded per example
    request = task.adapter.requests(task, task.prepare(rows[0]), "x", "", seed=42)[0]
    assert (request.top_k, request.max_new_tokens, request.seed, request.until) == (2, 100, 42, ())


WIKI = (" \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical"
        " role @-@ playing game . \n \n = = Gameplay = = \n \n The game 's battle system , the BliTZ ,"
        " returns . \n \n = Tower Building = \n \n The Tower Building is a 1 @,@ 200 ft tower . \n")


def test_wikitext_articles_and_word_perplexity(tiny_lm, registry, tmp_path):
    name = "wikitext-2"
    path = tmp_path / "wiki.test.tokens"
    path.write_text(WIKI, encoding="utf-8")
    run = _run(tiny_lm, registry, name, str(path))
    assert run.n_examples == 2  # two level-1 headings: two articles
    task = registry.get(name)
    docs = task.group(task.prepare({"text": WIKI}))
    assert "role-playing game. " in docs[0]["detokenized"]
    texts = [d["detokenized"] for d in docs]
    results = tiny_lm.loglikelihood_rolling(texts)
    words = sum(count_words(d["original"]) for d in docs)
    lp = sum(r.logprob for r in results)
    assert run.metrics["word_perplexity"]["value"] == pytest.approx(math.exp(-lp / words), rel=1e-9)
    tokens = sum(r.n_tokens for r in results)
    assert run.metrics["token_perplexity"]["value"] == pytest.approx(math.exp(-lp / tokens), rel=1e-9)
    nbytes = sum(len(d["original"].encode()) for d in docs)
    assert run.metrics["bits_per_byte"]["value"] == pytest.approx(-lp / nbytes / math.log(2), rel=1e-9)
    raw = _run(tiny_lm, registry, name, str(path), template="raw")
    assert raw.metrics["word_perplexity"]["value"] != run.metrics["word_perplexity"]["value"]


def test_rolling_samples_log_the_text_that_was_scored(tiny_lm, registry, tmp_path):
    path = tmp_path / "wiki.test.tokens"
    path.write_text(WIKI, encoding="utf-8")
    run = _run(tiny_lm, registry, "wikitext-2", str(path))
    task = registry.get("wikitext-2")
    texts = [d["detokenized"] for d in task.group(task.prepare({"text": WIKI}))]
    assert [s["text"] for s in run.samples] == texts  # not "" (issue 17, part 6)
    assert [s["text"] for s in run.samples] == [s["prompt"] for s in run.samples]
    assert [s["text"] for s in run.samples] == [r[0].text for r in run.requests]


def test_wikitext_103_reads_hub_style_pages(tiny_lm, registry, tmp_path):
    pages = [{"page": WIKI.split(" \n = Tower")[0] + " \n"}, {"page": " = Tower Building = \n \n Tall . \n"}]
    run = _run(tiny_lm, registry, "wikitext-103", _jsonl(tmp_path / "pages.jsonl", pages), template="lm-eval")
    assert run.n_examples == 2 and run.metrics["word_perplexity"]["value"] > 1
    assert run.samples[1]["prompt"] == " = Tower Building =\n\nTall.\n"  # lm-eval's detokenizer


@pytest.mark.parametrize("name", ["ptb", "1bw"])
def test_sentence_streams(tiny_lm, registry, tmp_path, name):
    path = tmp_path / "test.txt"
    path.write_text(" no it was n't black monday \n the company 's $ N loss \n third line here \n")
    run = _run(tiny_lm, registry, name, str(path), limit=2)
    assert run.n_examples == 1  # one stream
    original = " no it was n't black monday \n the company 's $ N loss \n"
    assert run.samples[0]["words"] == 6 + 1 + 6 + 1  # tokens plus one end of sentence per line
    assert run.samples[0]["bytes"] == len(original)
    task = registry.get(name)
    stream = task.group(task.prepare({"text": original}))[0]["detokenized"]
    assert "wasn't" in stream and "company's" in stream


def test_enwik8_bits_per_byte_and_text8_bits_per_character(tiny_lm, registry, tmp_path):
    xml = "<page>\n  <title>Héllo</title>\n\n  <text>Some [[wiki]] text.</text>\n</page>\n"
    path = tmp_path / "enwik8"
    path.write_text(xml, encoding="utf-8")
    run = _run(tiny_lm, registry, "enwik8", str(path))
    lp = tiny_lm.loglikelihood_rolling([xml])[0].logprob
    assert run.metrics["bits_per_byte"]["value"] == pytest.approx(
        -lp / len(xml.encode()) / math.log(2), rel=1e-9)
    text = "anarchism originated as a term of abuse first used against early working class radicals"
    path8 = tmp_path / "text8"
    path8.write_text(text)
    run8 = _run(tiny_lm, registry, "text8", str(path8))
    lp8 = tiny_lm.loglikelihood_rolling([text])[0].logprob
    assert run8.metrics["bits_per_character"]["value"] == pytest.approx(-lp8 / len(text) / math.log(2))


def test_rolling_stride_changes_the_context_not_the_tokens_scored(tiny_lm, registry, tmp_path):
    path = tmp_path / "enwik8.txt"
    path.write_text("".join(f"line {i} of a text longer than the tiny model's context\n" for i in range(12)))
    disjoint = _run(tiny_lm, registry, "enwik8", str(path))
    sliding = _run(tiny_lm, registry, "enwik8", str(path), rolling_stride=64)
    assert disjoint.samples[0]["bytes"] == sliding.samples[0]["bytes"] > tiny_lm.max_length
    assert disjoint.tokens < sliding.tokens  # overlapping windows feed more tokens
    assert disjoint.metrics["bits_per_byte"]["value"] != sliding.metrics["bits_per_byte"]["value"]
    assert tiny_lm.rolling_context == 1  # restored after the run
