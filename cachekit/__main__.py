"""``python -m cachekit``: the same as the ``cachekit`` console script (``cachekit._tools.cli``)."""

from __future__ import annotations

import sys

from ._tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
