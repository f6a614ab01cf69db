"""Commits that need not wait for the disk, asked for inside the statement that writes.

For writes a database crash may lose harmlessly: a running task's progress and heartbeat
(written again by the next one), a claim (without its finish the task runs again either
way), the relay's mark of what it published (the next pass publishes those rows again, and
the claim runs each task once). The database stays consistent and loses at most the last
fraction of a second; the next synchronous commit flushes the log up to and including
these. PostgreSQL only: elsewhere every commit waits.
"""

from django.db import connection
from django.db.models import BooleanField, Func, Q


class _CommitWithoutWaitingForDisk(Func):
    """True, and as a side effect the statement's transaction commits asynchronously.

    ``set_config(…, true)`` is ``SET LOCAL`` as an expression: part of the statement's own
    condition, it makes an autocommitted UPDATE commit without waiting for the disk in its
    one round trip, where ``BEGIN; SET LOCAL …; UPDATE …; COMMIT`` took four.
    """

    template = "set_config('synchronous_commit', 'off', true) = 'off'"
    output_field = BooleanField()


# One instance for every statement: a compiled statement's key (compiled_moves.py) hashes
# its condition, and an expression's hash is worked out once per instance.
_CONDITION = Q(_CommitWithoutWaitingForDisk())


def without_waiting_for_disk(*, own_transaction: bool = False) -> Q | None:
    """A condition for a statement that makes its transaction commit asynchronously, on
    PostgreSQL; None elsewhere.

    Inside a transaction only with ``own_transaction``: the caller says the transaction is
    its own, holding only such writes. A caller's transaction around ours must stay durable.
    """
    if connection.vendor != "postgresql":
        return None
    if connection.in_atomic_block and not own_transaction:
        return None
    return _CONDITION
