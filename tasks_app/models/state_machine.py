"""How a stateful model changes status: a table of allowed moves and one conditional UPDATE.

Every stateful model (a task record, a dead letter, a document) declares its table, from
each status to the statuses it may go to next, and its queryset derives from
``TransitionQuerySet``. Nothing else writes the status field.
"""

import functools
from dataclasses import dataclass

from django.db import connections, models

from tasks_app.models.compiled_moves import compiled_move


@dataclass(frozen=True)
class UpsertAlong:
    """A row of another table that a move writes in its own statement, only if the move
    happened: inserted, or on a conflict of ``conflict_field`` updated, except ``kept``.

    PostgreSQL only (a data-modifying ``WITH``): one autocommitted statement, where a
    transaction around the two writes took four round trips.
    """

    row: models.Model
    conflict_field: str
    kept: tuple[str, ...] = ()

    def updated_fields(self) -> list[models.Field]:
        """What a conflict overwrites: every column but the key, the conflict's and ``kept``.

        Also what a caller's ``bulk_create(update_conflicts=True)`` of the same row updates,
        where one statement is not possible (SQLite, inside a transaction).
        """
        return _updated_fields(type(self.row), self.conflict_field, self.kept)

    def as_sql(self, connection, *, source: str) -> tuple[str, list]:
        fields = [
            field
            for field in self.row._meta.concrete_fields
            if not (field.primary_key and getattr(self.row, field.attname) is None)
        ]
        params = [
            field.get_db_prep_save(field.pre_save(self.row, add=True), connection)
            for field in fields
        ]
        sql = _upsert_sql(
            type(self.row),
            tuple(field.name for field in fields),
            conflict_field=self.conflict_field,
            kept=self.kept,
            source=source,
            alias=connection.alias,
        )
        return sql, params


def _updated_fields(model, conflict_field: str, kept: tuple[str, ...]) -> list[models.Field]:
    return [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and field.name not in (conflict_field, *kept)
    ]


def typed_values(fields, placeholders, connection) -> str:
    """``CAST(placeholder AS type), …`` for a ``SELECT`` list that feeds an ``INSERT``:
    a ``SELECT`` list's parameters have no column to take their type from."""
    return ", ".join(
        f"CAST({placeholder} AS {field.cast_db_type(connection)})"
        for field, placeholder in zip(fields, placeholders, strict=True)
    )


# Per shape, like the moves (compiled_moves.py): the row's values are the call's own.
@functools.lru_cache(maxsize=64)
def _upsert_sql(model, names: tuple, *, conflict_field, kept, source, alias) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = [meta.get_field(name) for name in names]
    values = typed_values(fields, ["%s"] * len(fields), connection)
    updated = _updated_fields(model, conflict_field, kept)
    conflict = quote(meta.get_field(conflict_field).column)
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
        f" SELECT {values} FROM {source} ON CONFLICT ({conflict}) DO UPDATE SET "
        + ", ".join(f"{quote(f.column)} = EXCLUDED.{quote(f.column)}" for f in updated)
    )


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
        rows = self._movable(pk=pk, to=to, only_if=only_if)
        return bool(rows.update(**{self.status_field: to}, **fields))

    def transition_returning(
        self,
        *,
        pk,
        to: str,
        only_if: models.Q | None = None,
        annotations: dict[str, models.Expression] | None = None,
        upsert_along: UpsertAlong | None = None,
        returning: tuple[str, ...] | None = None,
        **fields,
    ):
        """``transition``, returning the row as the move left it, or None if it was refused.

        The same conditional UPDATE with ``RETURNING`` (PostgreSQL, SQLite 3.35+): the
        caller that needs the row (a worker's claim, a finish) has it without reading it
        again. ``annotations`` are computed in the same statement and set on the returned
        instance, like ``QuerySet.annotate``; an ``OuterRef`` in them names the moved row.
        ``upsert_along`` writes another table's row in the same statement (PostgreSQL).
        ``returning`` names the only fields to return (and the primary key): the others are
        deferred, as with ``QuerySet.only``, so a large result just written is not read back.
        """
        move, params = compiled_move(
            self,
            pk=pk,
            to=to,
            only_if=only_if,
            annotations=annotations or {},
            returning=returning,
            fields=fields,
        )
        sql = move.sql
        if upsert_along is not None:
            upsert_sql, upsert_params = upsert_along.as_sql(connections[self.db], source="moved")
            sql = f"WITH moved AS ({sql}), upserted AS ({upsert_sql}) SELECT * FROM moved"
            params.extend(upsert_params)
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else move.record(self.model, self.db, row)

    def _movable(self, *, pk, to: str, only_if: models.Q | None):
        """The row, if it is in a status from which the table allows ``to``."""
        sources = [source for source, targets in self.transitions.items() if to in targets]
        rows = self.filter(pk=pk, **{f"{self.status_field}__in": sources})
        return rows if only_if is None else rows.filter(only_if)
