"""A move's ``UPDATE … RETURNING``, compiled once per shape and run with each call's values.

A short task's claim and its finish are one statement each. Building and compiling them
through the ORM (the lookups, the expressions, the ``Exists`` of an annotation) took more
of a pool process's time than the database spent running them: in a profile of
bench/drain.py, about two thirds of ``transition_returning``, on a machine whose two
processors the worker, PostgreSQL and Redis share.

The SQL of a move depends on its shape only: the model, the target status, which fields it
sets (and to which expressions), the lookups and expressions of its condition, its
annotations and what it returns. The values differ per call. So a shape is compiled once,
each value standing as one placeholder, and a later call only prepares its values for the
database. A shape this cannot describe (a condition with a lookup other than equality,
or on a list or a None, a field that writes its own placeholder) is compiled per call, as
any query is.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models
from django.db.models.sql import UpdateQuery

# Compiled statements kept per process. Shapes are few (one per call site); this bounds a
# caller that builds a new expression each call, which would otherwise grow it for ever.
MAX_STATEMENTS = 256
_statements: dict[tuple, "CompiledMove"] = {}

# Values whose equality compiles to one placeholder whatever the value.
_SCALARS = (bool, int, str, uuid.UUID, datetime)


class _Uncacheable(Exception):
    """A part of a move whose SQL may depend on its value."""


@dataclass(frozen=True)
class _Marker:
    """Where a call's value goes among a compiled statement's parameters."""

    index: int


class _Slot(models.Expression):
    """The ``index``-th value of a call: one placeholder in the compiled SQL."""

    def __init__(self, index: int, output_field: models.Field):
        super().__init__(output_field=output_field)
        self.index = index

    def as_sql(self, compiler, connection):
        return "%s", [_Marker(self.index)]


@dataclass(frozen=True)
class CompiledMove:
    sql: str
    params: tuple
    attnames: tuple[str, ...]
    annotation_names: tuple[str, ...]
    converters: dict

    def params_for(self, values: list) -> list:
        return [values[p.index] if isinstance(p, _Marker) else p for p in self.params]

    def record(self, model: type[models.Model], db: str, row: tuple) -> models.Model:
        """The moved row as an instance, with the conversions a SELECT applies (JSON, and
        on SQLite dates, UUIDs and booleans) and its annotations set."""
        connection = connections[db]
        values = list(row)
        for position, (converters, expression) in self.converters.items():
            value = values[position]
            for convert in converters:
                value = convert(value, expression, connection)
            values[position] = value
        count = len(self.attnames)
        instance = model.from_db(db, self.attnames, values[:count])
        for name, value in zip(self.annotation_names, values[count:], strict=True):
            setattr(instance, name, value)
        return instance


def compiled_move(
    queryset, *, pk, to: str, only_if, annotations: dict, returning, fields: dict
) -> tuple[CompiledMove, list]:
    """The statement for this move and the parameters of this call."""
    connection = connections[queryset.db]
    values: list = []
    try:
        key = (
            queryset.model,
            queryset.db,
            to,
            _shape_of_fields(queryset.model, fields, values, connection),
            _shape_of_condition(queryset.model, only_if, values, connection),
            tuple(annotations.items()),
            returning,
        )
        hash(key)  # an expression that cannot be hashed cannot be a key either
    except (_Uncacheable, TypeError):
        move = _compile(
            queryset,
            pk=pk,
            to=to,
            only_if=only_if,
            annotations=annotations,
            returning=returning,
            fields=fields,
        )
        return move, list(move.params)
    pk_field = queryset.model._meta.pk
    values.append(pk_field.get_db_prep_value(pk, connection, prepared=False))
    move = _statements.get(key)
    if move is None:
        # Numbered in the order their values were appended: fields, condition, key.
        slots = iter(range(len(values)))
        fields_with_slots = _fields_with_slots(queryset.model, fields, slots)
        condition_with_slots = _with_slots(queryset.model, only_if, slots)
        move = _compile(
            queryset,
            pk=_Slot(next(slots), pk_field),
            to=to,
            only_if=condition_with_slots,
            annotations=annotations,
            returning=returning,
            fields=fields_with_slots,
        )
        if len(_statements) >= MAX_STATEMENTS:
            _statements.clear()
        _statements[key] = move
    return move, move.params_for(values)


def _compile(queryset, *, pk, to, only_if, annotations, returning, fields) -> CompiledMove:
    rows = queryset._movable(pk=pk, to=to, only_if=only_if)
    query = rows.query.chain(UpdateQuery)
    query.add_update_values({queryset.status_field: to, **fields})
    compiler = query.get_compiler(queryset.db)
    update_sql, params = compiler.as_sql()
    model_fields = [
        field
        for field in queryset.model._meta.concrete_fields
        if returning is None or field.primary_key or field.name in returning
    ]
    quote = compiler.connection.ops.quote_name
    columns = [quote(field.column) for field in model_fields]
    table = queryset.model._meta.db_table
    expressions = [field.get_col(table) for field in model_fields]
    params = list(params)
    for name, expression in annotations.items():
        resolved = expression.resolve_expression(query, allow_joins=False)
        sql, expression_params = compiler.compile(resolved)
        columns.append(f"{sql} AS {quote(name)}")
        params.extend(expression_params)  # RETURNING comes after the UPDATE's own
        expressions.append(resolved)
    return CompiledMove(
        sql=f"{update_sql} RETURNING {', '.join(columns)}",
        params=tuple(params),
        attnames=tuple(field.attname for field in model_fields),
        annotation_names=tuple(annotations),
        converters=compiler.get_converters(expressions),
    )


def _field(model, name: str) -> models.Field:
    if name == "pk":
        return model._meta.pk
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        raise _Uncacheable from None


def _shape_of_fields(model, fields: dict, values: list, connection) -> tuple:
    """The fields set, each with its expression or as a value (appended to ``values``)."""
    shape = []
    for name, value in fields.items():
        if hasattr(value, "resolve_expression"):
            shape.append((name, value))
            continue
        field = _field(model, name)
        if hasattr(field, "get_placeholder") or hasattr(value, "prepare_database_save"):
            raise _Uncacheable
        values.append(field.get_db_prep_save(value, connection))
        shape.append(name)
    return tuple(shape)


def _fields_with_slots(model, fields: dict, slots) -> dict:
    return {
        name: value
        if hasattr(value, "resolve_expression")
        else _Slot(next(slots), _field(model, name))
        for name, value in fields.items()
    }


def _shape_of_condition(model, condition, values: list, connection):
    """The condition's connectors, lookups and expressions; its values appended to ``values``."""
    if condition is None:
        return None
    parts = []
    for child in condition.children:
        if isinstance(child, models.Q):
            parts.append(_shape_of_condition(model, child, values, connection))
        elif isinstance(child, tuple):
            lookup, value = child
            if "__" in lookup or not isinstance(value, _SCALARS):
                raise _Uncacheable
            values.append(
                _field(model, lookup).get_db_prep_value(value, connection, prepared=False)
            )
            parts.append(lookup)
        else:
            parts.append(child)
    return (condition.connector, condition.negated, tuple(parts))


def _with_slots(model, condition, slots):
    if condition is None:
        return None
    children: list[Any] = []
    for child in condition.children:
        if isinstance(child, models.Q):
            children.append(_with_slots(model, child, slots))
        elif isinstance(child, tuple):
            lookup, _ = child
            children.append((lookup, _Slot(next(slots), _field(model, lookup))))
        else:
            children.append(child)
    return models.Q(*children, _connector=condition.connector, _negated=condition.negated)
