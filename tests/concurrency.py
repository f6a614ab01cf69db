"""Calls made at once from threads, as concurrent requests of web processes would be."""

import threading
from collections.abc import Callable

from django.db import connection


def call_at_once(function: Callable[[], object], *, times: int) -> list[object]:
    """Call ``function`` from ``times`` threads released together; what each returned or
    raised (an exception is returned, not raised: a thread's exception is otherwise lost).

    Each thread has its own database connection, closed when it is done.
    """
    start = threading.Barrier(times)
    outcomes: list[object] = []

    def call() -> None:
        try:
            start.wait()
            outcomes.append(function())
        except Exception as error:
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes
