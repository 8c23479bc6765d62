"""This harness's engines as an lm-evaluation-harness model (`--model harness`).

`HarnessLM` answers lm-eval's three request types with `harness.models.LanguageModel`, on any
backend (native, mindnlp, torch), through the response cache (`harness.cache`: a rerun of an
interrupted lm-eval run recomputes nothing that was finished). Importing this module registers
it in lm-eval's model registry under the name `harness`.

lm-eval 0.4.13 has no plugin discovery for models (its registry is a fixed table,
`lm_eval.models.MODEL_MAPPING`), so a plain `lm_eval --model harness` cannot find it. Use
`harness lm-eval --model-args pretrained=DIR,backend=native -- --tasks ...` (registers the
model, then runs lm-eval's own CLI), or in Python `import harness.lm_eval_bridge` before
`lm_eval.simple_evaluate(model="harness", ...)`.

mindnlp replaces `torch` process-wide: the engine is activated *before* lm-eval (which imports
torch) is imported, so with `backend=mindnlp` lm-eval itself runs on mindnlp's torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs

from harness import models
from harness.cache import CacheLayer, ResponseStore, default_cache_file, namespace_for
from harness.errors import HarnessError
from harness.lm_eval_entry import harness_device
from harness.requests import GenerationRequest, LoglikelihoodRequest

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval HFLM's default `max_gen_toks`


def _batch_size(value: Any) -> int | str:
    text = str(value if value is not None else 8).strip().lower()
    if text.startswith("auto"):  # lm-eval's `auto` and `auto:N` (N re-tries): ours halves on OOM
        return "auto"
    try:
        size = int(text)
    except ValueError:
        raise HarnessError(f"batch_size '{value}' is neither a whole number nor 'auto'") from None
    if size < 1:
        raise HarnessError(f"batch_size must be at least 1, got {value}")
    return size


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


@register_model("harness")
class HarnessLM(LM):
    """lm-eval `LM` backed by this harness's `LanguageModel`.

    model_args: `pretrained` (hub id, checkpoint folder or `tiny`), `backend` (auto, native,
    mindnlp, torch), `dtype`, `cache` (default true), `cache_file`, `add_bos_token` (passed to the
    model loader where it has that option), and lm-eval's own `batch_size` and `device`.
    """

    def __init__(self, pretrained: str = "tiny", backend: str = "auto", dtype: str = "float32",
                 batch_size: Any = 8, device: str | None = None, cache: Any = True,
                 cache_file: str | None = None, add_bos_token: Any = None,
                 max_batch_size: Any = None, **unknown: Any) -> None:
        super().__init__()
        if unknown:
            raise HarnessError(f"--model harness does not take model_args {', '.join(sorted(unknown))}; "
                               "it takes pretrained, backend, dtype, batch_size, device, cache, "
                               "cache_file, add_bos_token")
        self.pretrained = str(pretrained)
        self.device_name = harness_device(device)
        self.lm = models.load(self.pretrained, str(backend), self.device_name, str(dtype),
                              _batch_size(batch_size),
                              add_bos_token=None if add_bos_token is None else _flag(add_bos_token))
        self._attach_cache(_flag(cache), cache_file)

    # ------------------------------------------------------------------ cache
    def _attach_cache(self, enabled: bool, cache_file: str | None) -> None:
        self.store: ResponseStore | None = None
        found = namespace_for(self.lm, self.device_name) if enabled else None
        if found is not None:
            path = Path(cache_file).expanduser() if cache_file else default_cache_file(Path("results"))
            self.store = ResponseStore(path)
            self.store.register(*found)
        self.cache_layer = CacheLayer(self.lm, self.store, found[0] if found else None)

    # ------------------------------------------------------------------ lm-eval's interface
    @property
    def max_length(self) -> int:
        return self.lm.max_length

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.lm.tokenizer, "name_or_path", self.pretrained)).replace("/", "__")

    def get_model_info(self) -> dict[str, Any]:
        return {"model_name": self.lm.name, "model_backend": self.lm.backend.name,
                "model_num_parameters": self.lm.backend.num_parameters()}

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        asked = [LoglikelihoodRequest(*req.args[:2]) for req in requests]
        answers = [(r.logprob, r.is_greedy) for r in self.cache_layer.loglikelihood(asked)]
        for req, answer in zip(requests, answers, strict=True):
            self.cache_hook.add_partial("loglikelihood", req.args, answer)
        return answers

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        texts = [req.args[0] for req in requests]
        answers = [r.logprob for r in self.cache_layer.loglikelihood_rolling(texts)]
        for req, answer in zip(requests, answers, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, answer)
        return answers

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        eos = self.lm.decode([self.lm.eos_token_id]) if self.lm.eos_token_id is not None else None
        asked = [self._generation_request(context, gen_kwargs, eos) for context, gen_kwargs, *_ in
                 (req.args for req in requests)]
        answers = self.cache_layer.generate(asked)
        for req, answer in zip(requests, answers, strict=True):
            self.cache_hook.add_partial("generate_until", req.args, answer)
        return answers

    def _generation_request(self, context: str, gen_kwargs: dict, eos: str | None) -> GenerationRequest:
        """lm-eval's generation kwargs (as HFLM reads them) as a `GenerationRequest`."""
        kwargs = normalize_gen_kwargs(dict(gen_kwargs or {}), DEFAULT_MAX_GEN_TOKS)
        until = tuple(handle_stop_sequences(kwargs.pop("until", None), eos=eos))
        max_new = int(kwargs.pop("max_gen_toks"))
        do_sample = bool(kwargs.pop("do_sample", False))
        temperature = float(kwargs.pop("temperature", 0.0) or 0.0)
        top_k = kwargs.pop("top_k", None)
        if do_sample and temperature > 0:
            if not top_k:
                raise HarnessError("--model harness samples with top-k only: give top_k with do_sample")
            return GenerationRequest(context, until, max_new, int(top_k), temperature=temperature)
        return GenerationRequest(context, until, max_new)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
