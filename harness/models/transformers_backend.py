"""Backend over a Hugging Face `transformers` causal LM.

The same code serves two engines: plain PyTorch, and MindSpore through mindnlp (which
replaces `torch` inside its process with a MindSpore-backed implementation). Which one
`import torch` reaches is decided once per process by `harness.engines.activate`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.models.backend import Backend

# Architectures whose logits are exactly `output_embeddings(base_model(...).last_hidden_state)`,
# so the output layer may be applied only at the positions that are scored.
REDUCED_HEAD_ARCHITECTURES = {"gpt2", "llama", "mistral", "qwen2", "qwen3"}


def context_length(config: Any, tokenizer: Any) -> int:
    """The model's maximum sequence length, from its config (tokenizer as a fallback)."""
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    tok_max = getattr(tokenizer, "model_max_length", 0)
    return tok_max if 0 < tok_max < 1_000_000 else 2048


class TransformersBackend(Backend):
    """Runs a `transformers` model; `torch` is whatever engine this process activated."""

    # Choices of one question go into one batch (`score_shared` is `score`), where `score` runs
    # the input of all one-token choices once, as lm-evaluation-harness's logits cache does.
    shares_prefixes = True

    def __init__(self, model: Any, tokenizer: Any, engine: str, device: str, dtype: str,
                 reduced_head: bool = True) -> None:
        import torch

        self.torch = torch
        self.model = model.eval()
        self.name = engine
        self.device = device
        self.dtype = dtype
        self.max_length = context_length(model.config, tokenizer)
        self.vocab_size = int(model.config.vocab_size)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        model_type = getattr(model.config, "model_type", "")
        self.reduced_head = reduced_head and model_type in REDUCED_HEAD_ARCHITECTURES
        params = inspect.signature(model.forward).parameters
        self.has_logits_to_keep = "logits_to_keep" in params

    def _tensor(self, array: np.ndarray) -> Any:
        return self.torch.tensor(array).to(self.device)

    def _to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.detach().float().cpu().numpy()

    def score(self, rows: Sequence[Sequence[int]], n_targets: Sequence[int], width: int):
        """Rows with the same input `row[:-1]` (one-token choices of one question) run it once."""
        torch = self.torch
        inputs: dict[tuple[int, ...], int] = {}
        owner = [inputs.setdefault(tuple(row[:-1]), len(inputs)) for row in rows]
        ids = np.full((len(inputs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(inputs), width), dtype=np.int64)
        for tokens, k in inputs.items():
            ids[k, : len(tokens)] = tokens  # right padding, as lm-evaluation-harness does
            mask[k, : len(tokens)] = 1
        rows_idx, cols_idx, targets = [], [], []
        for i, (row, n) in enumerate(zip(rows, n_targets, strict=True)):
            start = len(row) - 1 - n
            rows_idx += [owner[i]] * n
            cols_idx += list(range(start, len(row) - 1))
            targets += list(row[-n:])
        with torch.no_grad():
            input_ids, attention_mask = self._tensor(ids), self._tensor(mask)
            r, c = self._tensor(np.array(rows_idx)), self._tensor(np.array(cols_idx))
            if self.reduced_head:
                hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask)
                picked = hidden.last_hidden_state[r, c]
                logits = self.model.get_output_embeddings()(picked)
            else:
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits[r, c]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            target_t = self._tensor(np.array(targets))
            picked_lp = logprobs.gather(-1, target_t[:, None])[:, 0]
            greedy = logprobs.argmax(dim=-1) == target_t
        lp = self._to_numpy(picked_lp).astype(np.float64)
        gr = greedy.cpu().numpy().astype(bool)
        out, offset = [], 0
        for n in n_targets:
            out.append((lp[offset : offset + n], gr[offset : offset + n]))
            offset += n
        return out

    def prefill(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, width: int):
        ids = np.full((len(prompts), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(prompts), width), dtype=np.int64)
        for i, p in enumerate(prompts):  # left padding: every row's next token is at the end
            ids[i, width - len(p) :] = p
            mask[i, width - len(p) :] = 1
        positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        state = {"mask": mask, "next_pos": mask.sum(axis=1), "past": None}
        logits = self._forward(state, ids, positions)
        return state, logits

    def decode(self, state: dict, tokens: np.ndarray) -> np.ndarray:
        n = len(tokens)
        state["mask"] = np.concatenate([state["mask"], np.ones((n, 1), dtype=np.int64)], axis=1)
        positions = state["next_pos"][:, None].copy()
        state["next_pos"] = state["next_pos"] + 1
        return self._forward(state, np.asarray(tokens, dtype=np.int64)[:, None], positions)

    def _forward(self, state: dict, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        kwargs = {"logits_to_keep": 1} if self.has_logits_to_keep else {}
        with self.torch.no_grad():
            out = self.model(
                input_ids=self._tensor(ids), attention_mask=self._tensor(state["mask"]),
                position_ids=self._tensor(positions), past_key_values=state["past"],
                use_cache=True, **kwargs,
            )
        state["past"] = out.past_key_values
        return self._to_numpy(out.logits[:, -1, :])

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Full next-token logits [T, V] for one unpadded sequence (for parity checks)."""
        with self.torch.no_grad():
            out = self.model(input_ids=self._tensor(np.asarray([tokens], dtype=np.int64)))
        return self._to_numpy(out.logits[0])

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def release(self) -> None:
        self.model = None
