"""Does a row of MindSpore's CPU `MatMul` depend on how many rows its call has, on this CPU?

    python -m bench.matmul_rows [--k 576] [--n 576] [--threads 0]

The native engine's bit-identity (docs/native-engine.md) needs every output row of a 2-D `MatMul`
to be the same whatever the call's row count M. This computes rows in calls of M rows and compares
each with the same row from 64-row calls, then prints the classes of M found. Exit code 1 when
some M gives other numbers (an AMD Zen 3 AVX2 CPU did, 2026-12-07), 0 when none does.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

REFERENCE_ROWS = 64


def row_classes(k: int, n: int, counts: list[int], seed: int = 0) -> dict[str, list[int]]:
    """For each row count M: which rows differ from the 64-row reference, grouped by outcome."""
    import mindspore as ms
    from mindspore import Tensor

    from harness.models.row_pieces import matmul  # the very primitive the engine's products use

    @ms.jit
    def product(x, w):
        return matmul(x, w)

    rng = np.random.default_rng(seed)
    top = -(-max(counts) // REFERENCE_ROWS) * REFERENCE_ROWS
    x = rng.standard_normal((top, k)).astype(np.float32)
    w = Tensor(rng.standard_normal((k, n)).astype(np.float32))
    reference = np.concatenate([product(Tensor(x[i : i + REFERENCE_ROWS]), w).asnumpy()
                                for i in range(0, top, REFERENCE_ROWS)])
    classes: dict[str, list[int]] = {}
    for m in counts:
        same = (product(Tensor(x[:m]), w).asnumpy() == reference[:m]).all(axis=1)
        key = ("every row equal" if same.all()
               else f"{int((~same).sum())} row(s) differ, from row {int(np.argmin(same))}")
        classes.setdefault(key, []).append(m)
    return classes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=576)
    parser.add_argument("--n", type=int, default=576)
    parser.add_argument("--threads", type=int, default=0, help="engine threads (0: its default)")
    args = parser.parse_args(argv)
    if args.threads:
        from bench.harness_worker import set_threads

        set_threads("native", args.threads)
    counts = list(range(2, 70)) + list(range(100, 1089, 16))
    classes = row_classes(args.k, args.n, counts)
    for outcome, rows in classes.items():
        shown = rows if len(rows) <= 12 else [*rows[:6], "...", *rows[-3:]]
        print(f"[M x {args.k}]·[{args.k} x {args.n}]: {outcome}: M = {', '.join(map(str, shown))}")
    return 0 if list(classes) == ["every row equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
