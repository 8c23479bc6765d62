"""`--backend native`: the hand-written MindSpore networks (`native_gpt2`, `native_llama`) behind the
Backend contract.

Shapes are bucketed so that few graphs are compiled: sequence widths come bucketed from
`LanguageModel`; batch sizes, numbers of scored positions and decode lengths are rounded up
here (`bucket`). Padding rows never change a real row's numbers (see `native_gpt2`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from harness.models import NATIVE_FAMILIES as FAMILIES
from harness.models import row_pieces
from harness.models.backend import Backend
from harness.models.native_engine import FRESH, SHARED_CONTEXT, Network

HEAD_CHUNK = 512  # rows per output-layer call: bounds the [rows, vocab] logits in memory
SHARED_CHUNK = 16  # multi-token continuations per call of `score_shared`: bounds KV-cache copies
WIDTH_STEP_IN_PIECES = 48  # 48, 96, 144 ... (192-multiples above 256 tokens): each an exact sum of pieces
SHARED_CHUNK_IN_PIECES = 12  # the same where products run in row pieces: 12 x 2^k rows need no padding
# Scoring passes may run their weight products on the batch's real tokens only ("packed"), rounded up
# to a multiple of PACK_STEP rows (24: a multiple of the smallest row piece, so that where products
# run in pieces, `row_pieces`, none is padded). Each packed row count is one more compiled graph
# shape, which costs about PACK_COMPILE_S (SmolLM2, 2026-12-06: 0.75-1.1 s over a steady call)
# while a row costs about 2 x parameters / ASSUMED_RATE seconds; `packing_plan` picks the row
# counts that minimise the sum.
PACK_STEP = 24
PACK_COMPILE_S = 0.9
ASSUMED_RATE = 150e9  # FLOP/s of this engine's products on a 2-core CPU (bench: 140-210)


def packing_plan(passes: Mapping[int, int], whole: int, compile_rows: float,
                 compiled: Iterable[int] = ()) -> dict[int, int]:
    """Rows to run each pass on, per real-token count, for the `passes` (tokens -> how many) of one
    [batch, width] shape: multiples of PACK_STEP below `whole` (= batch x width, unpacked) or `whole`.

    Minimises rows run + `compile_rows` per row count used (free for those `compiled` already): an
    exact dynamic programme over the sorted levels each pass needs and those compiled, where a level
    serves every pass that needs no more (any other row count could be lowered to one of those)."""
    free = {rows for rows in compiled if rows <= whole}
    need: dict[int, int] = dict.fromkeys(free, 0)  # a compiled row count may serve passes below it
    for tokens, n in passes.items():
        level = pack_level(tokens, whole)
        need[level] = need.get(level, 0) + n
    levels = sorted(need)
    best, choice = [0.0] + [float("inf")] * len(levels), [0] * (len(levels) + 1)
    for j in range(1, len(levels) + 1):
        top, count = levels[j - 1], 0
        for i in range(j - 1, -1, -1):  # levels i+1..j served by level j
            count += need[levels[i]]
            cost = best[i] + (0.0 if top in free else compile_rows) + top * count
            if cost < best[j]:
                best[j], choice[j] = cost, i
    rows: dict[int, int] = {}
    j = len(levels)
    while j:
        for served in levels[choice[j] : j]:
            rows[served] = levels[j - 1]
        j = choice[j]
    return {tokens: rows[pack_level(tokens, whole)] for tokens in passes}


def pack_level(tokens: int, whole: int) -> int:
    """The fewest rows, a multiple of PACK_STEP (or `whole`), that hold `tokens` real tokens."""
    return min(whole, max(PACK_STEP, -(-tokens // PACK_STEP) * PACK_STEP))


def power_of_two(n: int, least: int) -> int:
    """The smallest power of two that is at least `n` and at least `least`."""
    return max(least, 1 << (max(n, 1) - 1).bit_length())


def head_rows(n: int) -> int:
    """Rows of one output-layer call for `n` wanted ones (few compiled shapes): a power of two from 8,
    or, where products run in row pieces, a count that needs no padded piece (`row_pieces.aligned`)."""
    return row_pieces.aligned(n) if row_pieces.IN_PIECES else power_of_two(n, 8)


def shared_chunk() -> int:
    """Continuations per `_continue` call."""
    return SHARED_CHUNK_IN_PIECES if row_pieces.IN_PIECES else SHARED_CHUNK


def bucket(n: int) -> int:
    """Round a count up to one of few sizes: 2, 4, 8, then multiples of 8, then of 64.

    Never 1: a one-row matrix product takes another code path with other rounding.
    """
    if n <= 8:
        return power_of_two(n, 2)
    step = 8 if n <= 64 else 64
    return -(-n // step) * step


class NativeBackend(Backend):
    """GPT-2, Llama, Qwen2 and Mistral checkpoints on the native MindSpore engine."""

    name = "native"
    shares_prefixes = True  # LanguageModel may call `score_shared`
    refills = True  # and `refill`: continuous batching for generation

    def __init__(self, model: Network, pad_id: int, dtype: str = "float32",
                 reduced_head: bool = True) -> None:
        self.model = model
        self.config = model.config
        self.max_length = model.config.max_length
        self.vocab_size = model.config.vocab_size
        self.window = getattr(model.config, "sliding_window", None)  # longest row it attends over exactly
        self.pad_id = int(pad_id)
        self.dtype = dtype
        self.reduced_head = reduced_head
        self._decode_steps: int | None = None  # the hint of `expect_decoding` for the next prefill
        self._pack_plan: dict[tuple[int, int], dict[int, int]] = {}  # (batch, width): tokens -> rows
        self._compiled_rows: set[tuple[int, int, int]] = set()  # (batch, width, rows) run so far
        self._regret: dict[tuple[int, int], dict[int, int]] = {}  # (batch, width): rows -> rows it would save

    @classmethod
    def from_folder(cls, folder: str | Path, pad_id: int, dtype: str = "float32") -> NativeBackend:
        from importlib import import_module

        from harness.models.native_engine import read_config

        family = import_module(f"harness.models.{FAMILIES[read_config(Path(folder))['model_type']]}")
        return cls(family.load(Path(folder), dtype), pad_id, dtype)

    @property
    def width_step(self) -> int:
        """Where products run in row pieces, attention's query rows are pieces too: widths that are
        multiples of WIDTH_STEP_IN_PIECES need no padded piece (graphs of fewer nodes compile faster)."""
        return WIDTH_STEP_IN_PIECES if row_pieces.IN_PIECES else Backend.width_step

    # ---------------------------------------------------------------- helpers
    def _check_window(self, length: int) -> None:
        """Refuse rows longer than a sliding attention window (this engine attends to all tokens)."""
        if self.window is not None and length > self.window:
            from harness.errors import HarnessError

            raise HarnessError(f"a request of {length} tokens exceeds the model's sliding attention window "
                               f"({self.window}), which --backend native does not implement; use "
                               "--backend mindnlp or torch, or shorter prompts")

    def _causal(self, batch: int, width: int) -> np.ndarray:
        return np.broadcast_to(np.tril(np.ones((width, width), dtype=bool)), (batch, width, width))

    def _scored(self, hidden, flat_rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output layer at the given rows (flat indices) of hidden [B,T,D] only, in bucketed chunks."""
        lps, greedy = [np.zeros(0)], [np.zeros(0, dtype=bool)]
        chunk = head_rows(HEAD_CHUNK)
        for start in range(0, len(flat_rows), chunk):
            rows = flat_rows[start : start + chunk]
            size = head_rows(len(rows))
            index = np.zeros(size, dtype=np.int64)
            index[: len(rows)] = rows
            tgt = np.zeros(size, dtype=np.int64)
            tgt[: len(rows)] = targets[start : start + chunk]
            lp, gr = self.model.score(hidden, index, tgt)
            lps.append(lp[: len(rows)])
            greedy.append(gr[: len(rows)])
        return np.concatenate(lps).astype(np.float64), np.concatenate(greedy).astype(bool)

    @staticmethod
    def _split(lp: np.ndarray, gr: np.ndarray, counts: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        out, offset = [], 0
        for n in counts:
            out.append((lp[offset : offset + n], gr[offset : offset + n]))
            offset += n
        return out

    def packed_size(self, batch: int, width: int, tokens: int | None, unplanned: bool = False) -> int | None:
        """Token rows a pass of `tokens` real tokens in `batch` x `width` runs its products on, or None:
        unpacked (the batch plan, `expect`, chose so or did not announce the pass; or every position is
        wanted by the output layer). `unplanned` passes (generation's prompt passes, whose grouping
        depends on when rows finish) that the plan does not know are decided by `_rent_or_buy`."""
        if tokens is None or not self.reduced_head:
            return None
        rows = self._pack_plan.get((batch, width), {}).get(tokens)
        if rows is None and unplanned:
            rows = self._rent_or_buy(batch, width, tokens)
        return rows if rows is not None and rows < batch * width else None

    def _rent_or_buy(self, batch: int, width: int, tokens: int) -> int:
        """Rows for a pass no plan announced: the fewest already compiled that hold it (or unpacked),
        until the rows some smaller row count would have saved over such passes reach what compiling
        it costs; then that row count (rent-or-buy: never more than twice the better choice in hindsight)."""
        whole = batch * width
        need = pack_level(tokens, whole)
        run = min([r for b, w, r in self._compiled_rows if (b, w) == (batch, width) and r >= need] + [whole])
        regret = self._regret.setdefault((batch, width), {})
        cost = self._compile_rows()
        worth = []
        for rows in range(need, run, PACK_STEP):
            regret[rows] = regret.get(rows, 0) + run - rows
            if regret[rows] >= cost:
                worth.append(rows)
        if not worth:
            return run
        chosen = max(worth, key=lambda rows: (regret[rows], rows))
        regret.clear()  # a new row count changes what every later pass would run on
        return chosen

    def _compile_rows(self) -> float:
        """A new compiled shape's cost, in token rows of weight products."""
        return PACK_COMPILE_S * ASSUMED_RATE / (2.0 * self.model.num_parameters())

    def _packing(self, lengths: Sequence[int], batch: int, width: int, starts: Sequence[int] | None = None,
                 unplanned: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
        """(`pack` for `Network.forward` or None, where[flat index] = the row of hidden holding it);
        row i's real tokens start at `starts[i]` (default 0: right padding)."""
        size = self.packed_size(batch, width, sum(lengths), unplanned)
        self._compiled_rows.add((batch, width, size or batch * width))
        whole = batch * width
        if size is None:
            rows = row_pieces.aligned(whole)
            if rows == whole:
                return None, np.arange(whole)
            # every position, repeats filling up to a row count whose pieces need no padding: the
            # same numbers in graphs of fewer nodes (they compile faster)
            fill = np.zeros(rows - whole, dtype=np.int64)
            return np.concatenate([np.arange(whole), fill]), np.arange(whole)
        starts = starts if starts is not None else [0] * len(lengths)
        real = np.concatenate([i * width + s + np.arange(n)
                               for i, (n, s) in enumerate(zip(lengths, starts, strict=True))])
        pack = np.concatenate([real, np.full(size - len(real), real[0])])
        where = np.zeros(batch * width, dtype=np.int64)
        where[real] = np.arange(len(real))
        return pack, where

    def expect(self, plan) -> None:
        """Shapes that will recur often enough get layer-group graphs from their first call."""
        passes: dict[tuple[int, int], dict[int | None, int]] = {}
        for (rows, width, tokens), n in plan.items():
            shape = passes.setdefault((bucket(rows), width), {})
            shape[tokens] = shape.get(tokens, 0) + n
        compile_rows = self._compile_rows()
        calls: dict[tuple[int, int, int | None], int] = {}
        for (batch, width), counts in passes.items():
            known = {t: n for t, n in counts.items() if t is not None}
            done = [r for b, w, r in self._compiled_rows if (b, w) == (batch, width)]
            self._pack_plan[(batch, width)] = packing_plan(known, batch * width, compile_rows, done)
            for tokens, n in counts.items():
                shape = (batch, width, self.packed_size(batch, width, tokens))
                calls[shape] = calls.get(shape, 0) + n
        for (batch, width, packed), n in calls.items():
            self.model.expect((batch, width), n, packed)

    # ---------------------------------------------------------------- scoring
    def score(self, rows: Sequence[Sequence[int]], n_targets: Sequence[int], width: int):
        self._check_window(max(len(row) - 1 for row in rows))
        batch = bucket(len(rows))
        ids = np.full((batch, width), self.pad_id, dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row) - 1] = row[:-1]  # right padding: causal attention never sees it
        pos = np.broadcast_to(np.arange(width), (batch, width))
        pack, where = self._packing([len(row) - 1 for row in rows], batch, width)
        hidden, _ = self.model.forward(ids, pos, self._causal(batch, width), FRESH, pack=pack)
        flat, targets = [], []
        for i, (row, n) in enumerate(zip(rows, n_targets, strict=True)):
            start = len(row) - 1 - n
            flat += range(i * width + start, i * width + len(row) - 1)
            targets += row[-n:] if n else []
        flat_a, targets_a = where[np.asarray(flat, dtype=np.int64)], np.asarray(targets, dtype=np.int64)
        if self.reduced_head:
            lp, gr = self._scored(hidden, flat_a, targets_a)
        else:  # every position through the output layer, then pick (parity checks only)
            every = np.zeros(batch * width, dtype=np.int64)
            every[flat_a] = targets_a
            lp_all, gr_all = self._scored(hidden, np.arange(batch * width), every)
            lp, gr = lp_all[flat_a], gr_all[flat_a]
        return self._split(lp, gr, n_targets)

    def score_shared(self, rows: Sequence[Sequence[int]], n_targets: Sequence[int], width: int):
        """Same result as `score`, running each distinct context once.

        A row's context is `row[:len(row)-n]`. Contexts run at `width`, as whole rows would, and
        give every row's first target (single-token choices need nothing more). A row's further
        continuation tokens then run against a copy of its context's KV cache, placed at their
        own positions in a cache of the same width, so every attention sum has the same terms in
        the same order as in `score` and the numbers are bit-identical.
        """
        self._check_window(max(len(row) - 1 for row in rows))
        contexts: dict[tuple[int, ...], int] = {}
        owner, starts = [], []
        for row, n in zip(rows, n_targets, strict=True):
            start = len(row) - n
            if start < 1 or n < 1:
                raise ValueError("score_shared needs a non-empty context and target per row")
            owner.append(contexts.setdefault(tuple(row[:start]), len(contexts)))
            starts.append(start)
        n_ctx = bucket(len(contexts))
        ids = np.full((n_ctx, width), self.pad_id, dtype=np.int64)
        for context, g in contexts.items():
            ids[g, : len(context)] = context
        pos = np.broadcast_to(np.arange(width), (n_ctx, width))
        pack, where = self._packing([len(context) for context in contexts], n_ctx, width)
        hidden, cache = self.model.forward(ids, pos, self._causal(n_ctx, width), FRESH, pack=pack)
        first = where[np.asarray([g * width + s - 1 for g, s in zip(owner, starts, strict=True)])]
        first_targets = np.asarray([row[s] for row, s in zip(rows, starts, strict=True)])
        lp_first, gr_first = self._scored(hidden, first, first_targets)
        longer = [r for r, n in enumerate(n_targets) if n > 1]
        rest: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        chunk_size = shared_chunk()
        for k in range(0, len(longer), chunk_size):
            chunk = longer[k : k + chunk_size]
            rest.update(zip(chunk, self._continue(cache, [rows[r] for r in chunk], [starts[r] for r in chunk],
                                                  [owner[r] for r in chunk], width), strict=True))
        out = []
        for r in range(len(rows)):
            lp, gr = rest.get(r, (np.zeros(0), np.zeros(0, dtype=bool)))
            out.append((np.concatenate([lp_first[r : r + 1], lp]), np.concatenate([gr_first[r : r + 1], gr])))
        return out

    def _continue(self, cache, rows: Sequence[Sequence[int]], starts: Sequence[int], owner: Sequence[int],
                  width: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Scores of each row's targets after its first, fed on a copy of its context's cache."""
        counts = [len(row) - 1 - start for row, start in zip(rows, starts, strict=True)]
        # One row count and few step counts (powers of two from 2): each new shape costs a compile
        # (~0.5 s on SmolLM2) while a call this small costs about the same whatever its padding
        # (measured 7-11 ms a layer from 2x1 to 16x2 tokens), so the shape depends on the width only.
        n_rows, steps = shared_chunk(), power_of_two(max(counts), 2)
        ids = np.full((n_rows, steps), self.pad_id, dtype=np.int64)
        pos = np.zeros((n_rows, steps), dtype=np.int64)
        slot_of_token = np.zeros((n_rows, steps, width), dtype=np.float32)  # one-hot: token t -> slot s
        allowed = np.zeros((n_rows, steps, width), dtype=bool)
        context_row = np.zeros(n_rows, dtype=np.int32)  # the context cache row each row continues
        flat, targets = [], []
        for r, (row, n, start) in enumerate(zip(rows, counts, starts, strict=True)):
            ids[r, :n] = row[start : start + n]
            at = np.minimum(start + np.arange(steps), width - 1)
            pos[r] = at
            slot_of_token[r, np.arange(n), at[:n]] = 1.0
            allowed[r] = np.arange(width)[None, :] <= at[:, None]
            context_row[r] = owner[r]
            flat += range(r * steps, r * steps + n)
            targets += row[start + 1 : start + 1 + n]
        hidden, _ = self.model.forward(ids, pos, allowed, SHARED_CONTEXT, cache, slot_of_token, context_row)
        lp, gr = self._scored(hidden, np.asarray(flat), np.asarray(targets))
        return self._split(lp, gr, counts)

    # ---------------------------------------------------------------- generation
    def expect_decoding(self, steps: int) -> None:
        self._decode_steps = steps

    def prefill(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, width: int):
        batch, decode_slots = bucket(len(prompts)), bucket(max(1, max_new_tokens))
        self._check_window(max(len(p) for p in prompts) + max_new_tokens)
        valid, cache, logits = self._prompt_pass(prompts, width, decode_slots, batch)
        # the generated tokens' window: one new token enters on the right at each decoding step
        state = {"cache": cache, "new": self.model.empty_cache(batch, decode_slots), "valid": valid,
                 "next_pos": valid.sum(axis=1), "decode_slots": decode_slots, "width": width,
                 "n": len(prompts), "limit": max_new_tokens,
                 "whole": self.model.whole_decode_pays(batch, width, decode_slots, self._decode_steps)}
        self._decode_steps = None
        return state, logits

    def refill(self, state: dict, slots: Sequence[int], prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """Start `prompts` in rows `slots`: their prompt cache rows are replaced (an exact gather)
        and their window of generated tokens masked out, so each continues as if it ran alone."""
        from mindspore import Tensor, mint, ops

        width, decode_slots = state["width"], state["decode_slots"]
        self._check_window(max(len(p) for p in prompts) + state["limit"])
        valid, fresh, logits = self._prompt_pass(prompts, width, decode_slots, bucket(len(prompts)))
        rows = state["valid"].shape[0]
        index = np.arange(rows, dtype=np.int32)
        index[list(slots)] = rows + np.arange(len(slots), dtype=np.int32)
        where = Tensor(index)
        state["cache"] = tuple(ops.gather(mint.cat((old, new)), where, 0)
                               for old, new in zip(state["cache"], fresh, strict=True))
        state["valid"][list(slots)] = valid[: len(slots)]
        state["next_pos"][list(slots)] = valid[: len(slots)].sum(axis=1)
        return logits

    def _prompt_pass(self, prompts: Sequence[Sequence[int]], width: int, decode_slots: int, batch: int):
        """Prompts left-padded to `width` in `batch` rows: which cache slots are valid [batch, width
        + decode_slots] (prompt slots, then generated-token slots), the KV cache, and the logits
        after each prompt [len(prompts), V]."""
        ids = np.full((batch, width), self.pad_id, dtype=np.int64)
        valid = np.zeros((batch, width + decode_slots), dtype=bool)
        for i, p in enumerate(prompts):  # left padding: every row's next token is at the end
            ids[i, width - len(p) :] = p
            valid[i, width - len(p) : width] = True
        pos = np.clip(np.cumsum(valid[:, :width], axis=1) - 1, 0, None)
        allowed = np.tril(np.ones((width, width), dtype=bool))[None] & valid[:, None, :width]
        lengths = [len(p) for p in prompts]
        pack, where = self._packing(lengths, batch, width, [width - n for n in lengths], unplanned=True)
        hidden, cache = self.model.forward(ids, pos, allowed, FRESH, pack=pack)
        last = where[np.arange(batch) * width + width - 1]  # each row's last position, repeated up to a
        last = np.concatenate([last, np.full(row_pieces.aligned(batch) - batch, last[0])])  # piece sum
        logits = self.model.logits(hidden, last)[: len(prompts)]
        return valid, cache, logits

    def decode(self, state: dict, tokens: np.ndarray) -> np.ndarray:
        """One token per row (rows past their limit, which `LanguageModel` no longer reads, compute
        padding at a clamped position)."""
        batch, width = state["valid"].shape[0], state["width"]
        ids = np.full((batch, 1), self.pad_id, dtype=np.int64)
        ids[: state["n"], 0] = tokens
        old = state["valid"]
        valid = np.concatenate([old[:, :width], old[:, width + 1 :], np.ones((batch, 1), dtype=bool)], axis=1)
        pos = np.minimum(state["next_pos"], self.max_length - 1)[:, None]
        logits, state["new"] = self.model.decode(ids, pos, valid[:, None, :], state["cache"], state["new"],
                                                 state["whole"])
        state.update(valid=valid, next_pos=state["next_pos"] + 1)
        return logits[: state["n"]]

    # ---------------------------------------------------------------- the rest
    def memory_per_row(self, width: int) -> int | None:
        """Rough peak bytes one row of `width` tokens adds on CPU (for --batch-size auto)."""
        import mindspore as ms

        if ms.get_context("device_target") != "CPU":
            return None
        m = self.model
        size = 2 if self.dtype != "float32" else 4
        attention = 4 * m.n_head * width * width * 4  # scores, mask, softmax (float32)
        activations = 16 * width * m.d_model * size
        cache = 2 * m.n_layer * width * m.n_kv_head * m.head_dim * size
        return attention + activations + cache

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Full next-token logits [T, V] for one unpadded sequence (for parity checks)."""
        from harness.models.lm import bucket_width

        self._check_window(len(tokens))
        width = bucket_width(len(tokens), self.max_length)
        ids = np.full((2, width), self.pad_id, dtype=np.int64)
        ids[0, : len(tokens)] = tokens
        pos = np.broadcast_to(np.arange(width), (2, width))
        hidden, _ = self.model.forward(ids, pos, self._causal(2, width), FRESH)
        return self.model.logits(hidden, np.arange(max(2, len(tokens))))[: len(tokens)]

    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def release(self) -> None:
        self.model = None


def load_native(spec, dtype: str = "float32"):
    """Tokenizer and backend for a checkpoint of a type in FAMILIES (a `ModelSpec`: folder or hub id)."""
    from harness.errors import HarnessError
    from harness.models.checkpoint import check_checkpoint, load_tokenizer, local_folder, read_config

    model_type = read_config(spec).get("model_type")
    if model_type not in FAMILIES:
        raise HarnessError(f"--backend native runs {', '.join(FAMILIES)} checkpoints only; "
                           f"'{spec.requested}' is '{model_type}': use --backend auto or mindnlp")
    import mindspore as ms
    from safetensors import SafetensorError

    if dtype == "bfloat16" and ms.get_context("device_target") == "CPU":
        raise HarnessError("--dtype bfloat16 has no MindSpore CPU kernels (Gather, MatMul); use float32 "
                           "or float16 on --device cpu, bfloat16 on gpu or ascend")
    folder = local_folder(spec)
    check_checkpoint(folder)
    tokenizer = load_tokenizer(folder)
    try:
        backend = NativeBackend.from_folder(folder, tokenizer.pad_token_id, dtype)
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise HarnessError(f"cannot load '{folder}' on the native engine: {exc} (--backend mindnlp "
                           "runs any transformers checkpoint)") from None
    return tokenizer, backend
