"""Is the Hugging Face hub reachable? Asked once per process, so that offline runs fail in a second.

Without this, an unreachable hub costs tens of seconds of retries (with "Retrying in 8s" lines on
the terminal) before the one-line error. When the endpoint does not answer, the process switches to
offline mode: files already in the local Hugging Face cache are still used, nothing else is tried.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
_answers: dict[str, bool] = {}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set or the hub endpoint does not accept a connection."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    url = endpoint()
    if url not in _answers:
        _answers[url] = _accepts_connection(url)
        if not _answers[url]:
            _go_offline()
    return not _answers[url]


def unreachable_reason() -> str:
    """Why the hub was not used, for error messages."""
    if _answers.get(endpoint()) is False:
        return f"the Hugging Face hub ({endpoint()}) is not reachable (offline?)"
    return "HF_HUB_OFFLINE is set (offline mode)"


def _accepts_connection(url: str) -> bool:
    parsed = urlparse(url)
    if not parsed.hostname:
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                             "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct connection says nothing: let the libraries try
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:  # name resolution, refused, timed out
        return False


def _go_offline() -> None:
    """Offline mode for this process and its children (libraries read it at import or per call)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    flags = (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
             ("transformers.utils.hub", "_is_offline_mode"))
    for module, name in flags:
        if module in sys.modules:
            setattr(sys.modules[module], name, True)
