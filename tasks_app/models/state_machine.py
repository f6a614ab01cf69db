"""How a stateful model changes status: a table of allowed moves and one conditional UPDATE.

Every stateful model (a task record, a dead letter, a document) declares its table, from
each status to the statuses it may go to next, and its queryset derives from
``TransitionQuerySet``. Nothing else writes the status field.
"""

from django.db import models


class TransitionQuerySet(models.QuerySet):
    """A queryset whose model moves its ``status_field`` only along ``transitions``."""

    transitions: dict[str, frozenset[str]] = {}
    status_field = "status"

    def transition(self, *, pk, to: str, only_if: models.Q | None = None, **fields) -> bool:
        """Move one row to ``to`` if the table allows it from where the row is now.

        A single conditional UPDATE, so two racing writers cannot both win: False means the
        row was not in a status that leads to ``to`` (somebody else moved it, or it is
        gone), or did not match ``only_if`` (e.g. a worker's attempt number, so that a
        worker presumed dead cannot finish an attempt that was given to another).
        """
        sources = [source for source, targets in self.transitions.items() if to in targets]
        rows = self.filter(pk=pk, **{f"{self.status_field}__in": sources})
        if only_if is not None:
            rows = rows.filter(only_if)
        return bool(rows.update(**{self.status_field: to}, **fields))
