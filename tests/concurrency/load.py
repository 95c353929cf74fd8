"""CPU load for fault and concurrency tests: busy-loop processes, bounded in time, killed by PID on exit."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

_BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def cpu_load(processes: int = 2, seconds: float = 60.0) -> Iterator[list[int]]:
    """Run ``processes`` busy loops (each ends by itself after ``seconds``) for the duration of the block."""
    started = [
        subprocess.Popen([sys.executable, "-c", _BUSY.format(seconds=float(seconds))]) for _ in range(processes)
    ]
    try:
        yield [process.pid for process in started]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(10)
