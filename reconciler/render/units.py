"""Human-readable sizes."""

from __future__ import annotations


def human_bytes(n: int | None) -> str:
    """``1536`` -> ``1.5 KiB``; ``None`` -> ``unknown``."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover
