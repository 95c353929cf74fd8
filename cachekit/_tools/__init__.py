"""The tools wing: the ``cachekit`` command line, the demo and the bench.

Nothing in the library imports this package; it imports the library like any user would. Its modules are
private: run them through the ``cachekit`` console script (or ``python -m cachekit``), not by import.
"""
