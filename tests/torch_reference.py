"""Reference numbers from plain transformers on PyTorch (run as a subprocess: mindnlp replaces
`torch` inside the test process). Usage: python torch_reference.py CHECKPOINT IDS_JSON OUT_NPY"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    folder, ids_json, out = sys.argv[1:4]
    assert "mindtorch" not in torch.__file__, "this must run on real PyTorch"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = json.loads(ids_json)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    np.save(out, logits)


if __name__ == "__main__":
    main()
