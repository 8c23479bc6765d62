"""Local data files: formats, aligned text, and errors that name the file and line."""

from __future__ import annotations

import pytest

from harness.data import load_local
from harness.errors import HarnessError
from harness.task import LocalFormat

PARALLEL = LocalFormat(parallel=("en", "fr"))


def test_parallel_files_from_folder_prefix_or_one_file(wmt14_dir):
    rows = load_local(str(wmt14_dir), PARALLEL)
    assert len(rows) == 3003
    assert rows[0]["en"].startswith("Spectacular Wingsuit Jump")
    by_prefix = load_local(str(wmt14_dir / "newstest2014.en-fr"), PARALLEL)
    by_file = load_local(str(wmt14_dir / "newstest2014.en-fr.fr"), PARALLEL)
    assert by_prefix == rows == by_file


def test_jsonl_csv_tsv(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"en": "a", "fr": "b"}\n\n{"en": "c", "fr": "d"}\n')
    (tmp_path / "d.csv").write_text('en,fr\n"a, x",b\nc,d\n')
    (tmp_path / "d.tsv").write_text("en\tfr\na\tb\n")
    assert load_local(str(tmp_path / "d.jsonl"), PARALLEL) == [{"en": "a", "fr": "b"}, {"en": "c", "fr": "d"}]
    assert load_local(str(tmp_path / "d.csv"), PARALLEL)[0] == {"en": "a, x", "fr": "b"}
    assert load_local(str(tmp_path / "d.tsv"), PARALLEL) == [{"en": "a", "fr": "b"}]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"en": "a"}\n{"en": \n', "bad.jsonl line 2: malformed JSON"),
        ("list.jsonl", b'[1, 2]\n', "line 1: expected a JSON object"),
        ("latin.jsonl", b'{"en": "a"}\n{"en": "caf\xe9"}\n', "latin.jsonl line 2: not UTF-8"),
        ("empty.jsonl", b"\n\n", "empty"),
        ("short.csv", b"en,fr\na,b\nc\n", "short.csv line 3: 1 fields, the header has 2"),
        ("data.xml", b"<a/>", "cannot tell the format"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(HarnessError) as err:
        load_local(str(tmp_path / name), LocalFormat())
    assert message in str(err.value) and "\n" not in str(err.value)
