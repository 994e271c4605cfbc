"""Locates ``libzenith_core.so``, Zenith's C ABI, for consumers outside Python (C/C++, Julia, Go,
R) and for ``zenith.info()``. The Python package itself uses the PyO3 module, never this library.
"""

from __future__ import annotations

import os

ENV_VAR = "ZENITH_CORE_LIB"


def find_core_lib() -> str | None:
    """The absolute path in ``ZENITH_CORE_LIB`` when it is set and names an existing file, else
    ``None``."""
    path = os.environ.get(ENV_VAR)
    if not path or not os.path.isfile(path):
        return None
    return os.path.abspath(path)
