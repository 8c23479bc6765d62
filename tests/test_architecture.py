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
