"""Helpers for the packed-weight-products tests (GPT-2 in test_native, Llama family in test_native_llama)."""

from __future__ import annotations

from harness.models import native_backend


def record_packs(model, monkeypatch, step: int) -> list[int]:
    """Pack scoring passes to multiples of `step` rows whenever it saves any (compiles cost nothing);
    returns the list that receives the row count of every packed forward pass."""
    seen: list[int] = []
    real = model.forward

    def recording(*args, **kwargs):
        pack = kwargs.get("pack")
        if pack is not None and len(pack) < args[0].size:  # (not every position, rounded up for row pieces)
            seen.append(len(pack))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recording)
    monkeypatch.setattr(native_backend, "PACK_STEP", step)
    monkeypatch.setattr(native_backend, "PACK_COMPILE_S", 0.0)
    return seen


def check_packed_prompt_passes(lm, monkeypatch, prompts: list[str]) -> None:
    """Generation's prompt passes (prefill and refills, decided by rent-or-buy) packed to multiples
    of 4 rows give the very logits and texts of unpacked ones."""
    import numpy as np

    from harness.models.lm import LanguageModel
    from harness.requests import GenerationRequest

    requests = [GenerationRequest(p, ("\n",), max_new_tokens=3 + i % 4) for i, p in enumerate(prompts)]
    ids = [lm.encode(p) for p in prompts[:4]]
    seen = record_packs(lm.backend.model, monkeypatch, 4)
    texts, logits = {}, {}
    for step in (4, 10**6):  # packed whenever it saves a row (compiles free), or never
        monkeypatch.setattr(native_backend, "PACK_STEP", step)
        count = len(seen)
        texts[step] = LanguageModel(lm.name, lm.tokenizer, lm.backend, batch_size=4).generate(requests)
        logits[step] = lm.backend.prefill(ids, 4, 64)[1]
        packs = len(seen) - count
        assert packs > 0 if step == 4 else packs == 0
    assert texts[4] == texts[10**6] and len(set(texts[4])) > 1
    assert np.array_equal(logits[4], logits[10**6])  # exact
