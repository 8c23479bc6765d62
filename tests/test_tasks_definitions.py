"""Task definitions checked against lm-evaluation-harness's own, without a model."""

from __future__ import annotations

import json

import jinja2
import pytest

from harness.errors import HarnessError
from harness.registry import discover
from harness.runner import RunSettings, load_documents, render_context, template_for
from harness.suites import check_data_files, data_files_for, load_suite, suite_names, suite_tasks
from tests.conftest import LAMBADA, require

# lm-evaluation-harness lambada_openai.yaml, doc_to_text / doc_to_target, verbatim
LM_EVAL_TEXT = "{{text.split(' ')[:-1]|join(' ')}}"
LM_EVAL_TARGET = "{{' '+text.split(' ')[-1]}}"


@pytest.fixture(scope="module")
def registry():
    return discover()


def test_every_issue_task_is_registered(registry):
    expected = {
        "lambada", "lambada-standard", "hellaswag", "piqa", "arc-easy", "arc-challenge", "boolq",
        "winogrande", "wikitext-2", "wikitext-103", "ptb", "1bw", "enwik8", "text8", "cbt-cn",
        "cbt-ne", "wsc273", "coqa", "natural-questions", "cnn-dailymail",
    }
    assert expected <= set(registry.tasks)
    assert not registry.broken


def test_lambada_requests_equal_lm_eval_lambada_openai_on_the_whole_test_set(registry):
    task = registry.get("lambada")
    rows = [json.loads(line) for line in require(LAMBADA).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5153
    env = jinja2.Environment()
    text_t, target_t = env.from_string(LM_EVAL_TEXT), env.from_string(LM_EVAL_TARGET)
    template = template_for(task, None)
    delimiter = template.settings.get("target_delimiter", task.target_delimiter)
    for row in rows:
        doc = task.prepare(row)
        request = task.adapter.requests(task, doc, render_context(task, template, doc, []), delimiter)[0]
        assert (request.context, request.continuation) == (text_t.render(**row), target_t.render(**row))


def test_hellaswag_preprocessing_is_lm_eval_s(registry):
    endings = [" [title] Rinse it. [step] Dry.", "Rinse it [title] Dry it [step] off.", "c", "d"]
    row = {"activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow [header]",
           "ctx_b": "then", "endings": endings, "label": "1"}
    doc = registry.get("hellaswag").prepare(row)
    # ctx_b.capitalize(); strip; " [title]" -> ". "; other [..] removed; then "  " -> " "
    assert doc["query"] == "Removing ice from car: Then, the man writes over the snow Then"
    assert doc["choices"][:2] == [" Rinse it. Dry.", "Rinse it. Dry it off."]  # lm-eval keeps the space
    assert doc["gold"] == 1


def test_winogrande_and_wsc_partial_contexts(registry):
    wino = registry.get("winogrande").prepare({
        "sentence": "Sarah was a better surgeon than Maria so _ always got the harder cases.",
        "option1": "Sarah", "option2": "Maria", "answer": "1"})
    assert wino["before"] + wino["choices"][1] == "Sarah was a better surgeon than Maria so Maria"
    assert wino["target"] == "always got the harder cases." and wino["gold"] == 0
    text = "The trophy doesn't fit into the brown suitcase because it is too large."
    wsc = registry.get("wsc273").prepare({
        "text": text, "pronoun": "it", "pronoun_loc": text.index(" it ") + 1,
        "options": ["The trophy", "the suitcase"], "label": 0})
    assert wsc["choices"] == ["the trophy", "the suitcase"]  # lower-cased mid-sentence
    assert wsc["before"].endswith("because ") and wsc["target"] == " is too large."
    poss = registry.get("wsc273").prepare({
        "text": "Tom gave Ralph a lift. His car was warm.", "pronoun": "His", "pronoun_loc": 23,
        "options": ["Tom", "Ralph"], "label": 0})
    assert poss["choices"] == ["Tom's", "Ralph's"]


def test_coqa_prompt_is_lm_eval_s_doc_to_text(registry):
    task = registry.get("coqa")
    row = {"story": "Once upon a time.", "questions": {"input_text": ["Who?", "When?", "Why?"]},
           "answers": {"input_text": ["a cat", "at noon", "hunger"]},
           "additional_answers": {"0": {"input_text": ["A cat", "noon", "it was hungry"]}}}
    docs = task.prepare(row)
    assert len(docs) == 3
    prompt = render_context(task, template_for(task, None), docs[2], [])
    # lm-eval: story + "\n\n" + "Q: q\n\nA: a\n\n" per past turn + "Q: q\n\nA:"
    assert prompt == "Once upon a time.\n\nQ: Who?\n\nA: a cat\n\nQ: When?\n\nA: at noon\n\nQ: Why?\n\nA:"
    assert task.references(docs[0]) == ["a cat"]  # "A cat" is the same answer, case aside
    assert task.references(docs[2]) == ["hunger", "it was hungry"]


def test_natural_questions_prompt_matches_lm_eval_nq_open(registry):
    task = registry.get("natural-questions")
    doc = task.prepare({"question": "who wrote hamlet", "answer": ["Shakespeare"]})
    assert render_context(task, template_for(task, None), doc, []) == \
        "Answer these questions:\nQ: who wrote hamlet?\nA:"
    shot = task.prepare({"question": "capital of france", "answer": ["Paris"]})
    assert render_context(task, template_for(task, None), doc, [shot]) == \
        "Answer these questions:\nQ: capital of france?\nA: Paris\nQ: who wrote hamlet?\nA:"


def test_suites_are_data_and_name_registered_tasks(registry):
    assert {"gpt2-paper", "standard-mc"} <= set(suite_names())
    for name in suite_names():
        for task in load_suite(name)["tasks"]:
            assert task in registry.tasks, (name, task)
    assert suite_tasks(["standard-mc"]) == ["hellaswag", "piqa", "arc-easy", "arc-challenge",
                                            "winogrande", "boolq"]
    with pytest.raises(HarnessError, match="unknown suite 'gpt2'.*gpt2-paper"):
        load_suite("gpt2")


def test_per_task_data_files():
    spec = "lambada=../a.jsonl,ptb=/data/ptb.test.txt"
    assert data_files_for(spec, "ptb") == "/data/ptb.test.txt"
    assert data_files_for(spec, "coqa") is None
    assert data_files_for("/data/x=1.jsonl", "coqa") == "/data/x=1.jsonl"  # one path
    check_data_files(spec, ["lambada", "ptb", "coqa"])
    with pytest.raises(HarnessError, match="names task 'lambda'.*lambada"):
        check_data_files("lambda=../a.jsonl", ["lambada", "ptb"])


def test_a_bad_row_is_one_line_naming_the_row(registry, tmp_path):
    path = tmp_path / "wino.jsonl"
    path.write_text(json.dumps({"sentence": "no blank here", "option1": "a", "option2": "b",
                                "answer": "1"}) + "\n")
    with pytest.raises(HarnessError, match=r"wino.jsonl row 1: not a valid 'winogrande' example"):
        load_documents(registry.get("winogrande"), RunSettings(data_files=str(path)))


def test_reference_columns_put_the_paper_beside_our_rows():
    from harness.references import load_reference, with_reference

    header = ["task", "template", "shots", "metric", "gpt2"]
    rows = [["lambada", "lm-eval", "0", "acc", "0.3256"], ["piqa", "lm-eval", "0", "acc", "0.6"]]
    header, out = with_reference(header, rows, load_reference("gpt2-paper"))
    assert header[-4:] == ["gpt2-paper 117M", "gpt2-paper 345M", "gpt2-paper 762M", "gpt2-paper 1542M"]
    assert out[0][-4:] == ["0.4599", "0.5548", "0.6012", "0.6324"]
    assert out[1][-4:] == ["", "", "", ""]  # no published number for PIQA
    ptb = next(r for r in out if r[0] == "ptb")  # published rows without a result still show
    assert ptb[3] == "word_perplexity" and ptb[-1] == "35.76"
    with pytest.raises(HarnessError, match="unknown reference"):
        load_reference("gpt3-paper")
