"""Helpers for the packed-weight-products tests (GPT-2 in test_native, Llama family in test_native_llama)."""

from __future__ import annotations

from harness.models import native_backend


def record_packs(model, monkeypatch, step: int) -> list[int]:
    """Pack scoring passes to multiples of `step` rows whenever it saves any (compiles cost nothing);
    returns the list that receives the row count of every packed forward pass."""
    seen: list[int] = []
    real = model.forward

    def recording(*args, **kwargs):
        if kwargs.get("pack") is not None:
            seen.append(len(kwargs["pack"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recording)
    monkeypatch.setattr(native_backend, "PACK_STEP", step)
    monkeypatch.setattr(native_backend, "PACK_COMPILE_S", 0.0)
    return seen
