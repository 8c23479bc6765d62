"""What the layout promises (docs/architecture.md): stages import only what they use."""

import subprocess
import sys


def test_harness_run_does_not_import_the_compare_package():
    code = ("import sys, harness.cli, harness.pipeline; "
            "print(sorted(m for m in sys.modules if m.startswith('harness.compare')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_distributed_keeps_only_the_msrun_transport():
    from harness import distributed

    assert not hasattr(distributed, "finish_shard")  # partials: harness.shard; gathering: harness.merge
    from harness.merge import gather
    from harness.shard import write_partial

    assert callable(gather) and callable(write_partial)


def test_a_whole_harness_run_imports_no_compare_module(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "the cat sat on the mat"}\n{"text": "a dog ran to the park"}\n')
    code = ("import sys\nfrom harness.cli import main\n"
            f"code = main(['run', '--model', 'tiny', '--task', 'lambada', '--data-files', {str(data)!r}, "
            f"'--no-progress', '--log-samples', '--output-dir', {str(tmp_path / 'out')!r}])\n"
            "assert code == 0, code\n"
            "print(sorted(m for m in sys.modules if m.startswith('harness.compare')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "out" / "tiny" / "lambada").glob("*.json"))  # it ran and wrote its result
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_documents_carry_no_hidden_keys():
    """What a task's documents hold is what its templates read; perplexity denominators come from
    the task's `unit_counts`, not from keys hidden in the document."""
    from harness.registry import discover

    registry = discover()
    rows = {"wikitext-2": {"text": " = A = \n \n one two . \n = B = \n \n three . \n"},
            "ptb": {"text": "one two\nthree\n"}, "enwik8": {"text": "<page>x</page>\n"},
            "text8": {"text": "one two three"}}
    for name, row in rows.items():
        task = registry.get(name)
        prepared = task.prepare(row)
        docs = task.group(prepared if isinstance(prepared, list) else [prepared])
        assert docs and all(not key.startswith("_") for doc in docs for key in doc), name
        assert all(task.unit_counts(doc) for doc in docs), name


def test_one_reference_store_serves_the_table_and_compare():
    from pathlib import Path

    import harness
    from harness.references import load_reference, reference_points

    root = Path(harness.__file__).parent
    stores = [p.relative_to(root).as_posix() for p in root.rglob("gpt2-paper.json")]
    assert stores == ["references/gpt2-paper.json"]
    data = load_reference("gpt2-paper")
    for entry in data["entries"]:
        drawn = {(p.model, p.value) for p in reference_points(entry["task"], entry["metric"])}
        assert drawn == {(data["models"][m]["checkpoint"], v) for m, v in entry["values"].items()}
