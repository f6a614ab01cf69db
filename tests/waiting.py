"""Waiting in a test for what another process (a worker, a relay) does by itself."""

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], *, timeout: float, what: str, every=0.05):
    """Return ``condition()`` once it is truthy; fail the test after ``timeout`` seconds,
    saying it waited for ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(every)
