"""Which access token goes with a source: the source's own, else the environment's.

Tokens are read here only, passed to the download layer for the source's host, and never
stored in records, the lock file, logs or events.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from reconciler.sources.base import CivitaiModelSource, HFModelSource


def token_for(source: Any) -> Optional[str]:
    """The token to use for ``source`` (None when it needs none or none is configured)."""
    own = getattr(source, "access_token", None)
    if own:
        return str(own)
    if isinstance(source, HFModelSource):
        token = os.environ.get("HF_TOKEN")
        if token:
            return token
        try:
            from huggingface_hub import get_token

            return get_token()
        except Exception:  # noqa: BLE001 - no stored login is not an error
            return None
    if isinstance(source, CivitaiModelSource):
        return os.environ.get("CIVITAI_API_TOKEN") or None
    return None
