"""Machine output: one JSON document on stdout, nothing else."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(document: dict[str, Any]) -> None:
    """Write ``document`` to stdout as pretty, stable JSON."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()
