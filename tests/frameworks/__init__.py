"""Framework doors judged by the frameworks' own test suites (fetched as sdists, never vendored)."""
