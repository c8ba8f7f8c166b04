"""Child-process body for the two-process store tests (importable under ``spawn``)."""

from __future__ import annotations

from typing import Any

from reconciler.store import open_record_store


def add_many(path: str, prefix: str, count: int, barrier: Any) -> None:
    """Open the store at ``path`` and add ``count`` records named ``<prefix><n>``."""
    store = open_record_store(path)
    barrier.wait(timeout=60)
    try:
        for n in range(count):
            key = f"{prefix}{n:03d}"
            store.add_model(
                key,
                {"name": key, "type": "lora", "format": "lycoris", "base": "sd-1", "path": f"sd-1/lora/{key}.safetensors"},
            )
    finally:
        store.close()
