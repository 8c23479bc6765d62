"""An engine's own fp32 MatMul rate on this machine, in a process of its own.

    python -m bench.matmul --engine mindspore|torch [--threads N] [--shapes 1024x768x3072,...]

Each `MxKxN` product `[M×K]·[K×N]` is timed warm, in rounds that visit every shape in turn: a shape's
time in one round is the median of a few calls, and its rate is that of its fastest round. The 2-core
machines here run at about half their rate for stretches of a second or so (seen 2026-12-07: one
1024x768x3072 product alternating between ~200 and ~100 GFLOP/s, both engines, in phases of
0.5-3 s), so a median taken in one place measured the phase it fell in, not the shape; the best
round, spread over the whole probe, is the machine's limit. Prints one JSON object: GFLOP/s per
shape, and ``rate``, the rate over all shapes together (their FLOPs over their summed times).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence

ISSUE_SHAPE = (1024, 768, 3072)  # GPT-2-small's MLP product over 1,024 tokens


def block_shapes(d_model: int, d_ff: int, kv_width: int, rows: int = 1024) -> list[tuple[int, int, int]]:
    """The products of one transformer block over `rows` tokens (attention in, out, MLP; a gated
    MLP's two input products are one [d × 2·d_ff] product here)."""
    return [(rows, d_model, d_model + 2 * kv_width), (rows, d_model, d_model),
            (rows, d_model, d_ff), (rows, d_ff, d_model)]


def combined_rate(gflops: dict[str, float], shapes: Sequence[tuple[int, int, int]]) -> float:
    """The rate over `shapes` run one after the other: their FLOPs over their summed times."""
    flops = [2.0 * m * k * n for m, k, n in shapes]
    seconds = [f / 1e9 / gflops[f"{m}x{k}x{n}"] for f, (m, k, n) in zip(flops, shapes, strict=True)]
    return sum(flops) / sum(seconds) / 1e9


def _mindspore_matmul(m: int, k: int, n: int) -> Callable[[], None]:
    import mindspore as ms
    import numpy as np

    rng = np.random.default_rng(0)
    a = ms.Tensor(rng.standard_normal((m, k), dtype=np.float32))
    b = ms.Tensor(rng.standard_normal((k, n), dtype=np.float32))
    matmul = ms.ops.matmul

    @ms.jit
    def product(x, y):  # noqa: ANN001, ANN202 - a MindSpore graph function
        return matmul(x, y)

    def run() -> None:
        product(a, b)
        ms.runtime.synchronize()  # wait for the result without copying it out

    return run


def _torch_matmul(m: int, k: int, n: int) -> Callable[[], None]:
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen)
    b = torch.randn(k, n, generator=gen)

    def run() -> None:
        with torch.no_grad():
            torch.matmul(a, b)

    return run


ENGINES = {"mindspore": _mindspore_matmul, "torch": _torch_matmul}


def median_seconds(call: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(engine: str, shapes: Sequence[tuple[int, int, int]], warmup: int = 3, repeats: int = 7,
            calls: int = 3) -> dict:
    """GFLOP/s per shape (its best of `repeats` rounds, each the median of `calls` calls) and over all
    shapes together, for one engine, in this process."""
    products = {shape: ENGINES[engine](*shape) for shape in shapes}
    for call in products.values():
        for _ in range(warmup):
            call()
    best = dict.fromkeys(products, float("inf"))
    for _ in range(repeats):
        for shape, call in products.items():
            best[shape] = min(best[shape], median_seconds(call, calls))
    per_shape = {f"{m}x{k}x{n}": 2.0 * m * k * n / best[(m, k, n)] / 1e9 for m, k, n in shapes}
    return {"engine": engine, "gflops": per_shape, "rate": combined_rate(per_shape, shapes)}


def parse_shape(text: str) -> tuple[int, int, int]:
    m, k, n = (int(v) for v in text.lower().split("x"))
    return m, k, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--shapes", default="x".join(map(str, ISSUE_SHAPE)),
                        help="comma list of MxKxN (default: the issue's 1024x768x3072)")
    parser.add_argument("--repeats", type=int, default=7, help="rounds over all shapes (default 7)")
    args = parser.parse_args(argv)
    if args.threads and args.engine == "mindspore":
        import mindspore

        mindspore.device_context.cpu.op_tuning.threads_num(args.threads)
    elif args.threads:
        import torch

        torch.set_num_threads(args.threads)
    shapes = [parse_shape(s) for s in args.shapes.split(",") if s.strip()]
    print(json.dumps(measure(args.engine, shapes, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
