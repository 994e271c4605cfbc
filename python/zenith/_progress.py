"""Progress bars of long calls (``progress=True``): tqdm bars on standard error, counting rows."""

from __future__ import annotations

import sys
from typing import Any


def rows_bar(desc: str, total: int | None = None) -> Any:
    """A tqdm bar of rows (or samples) on standard error."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" rows", unit_scale=True, desc=desc, file=sys.stderr)
