"""``python -m cachekit._tools.bench``: the same as ``cachekit bench``."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
