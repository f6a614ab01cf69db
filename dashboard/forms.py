"""The submit form of a task type, generated from the type's input serializer.

A task type declares its input once, as a DRF serializer (tasks_app's registry); the API
validates JSON against it and this module turns the same fields into HTML inputs. A
posted form is first turned into the JSON the API would receive (numbers as numbers,
checkboxes as booleans, JSON fields parsed), then validated by the API's own submission
serializer: the page and the API accept and refuse the same inputs, with the same words.
"""

import json
import math
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.fields import empty

# The submission's own fields besides the type's input, as the API takes them.
PRIORITY_FIELD = "priority"
IDEMPOTENCY_FIELD = "idempotency_key"

_JSON_KINDS = (serializers.DictField, serializers.ListField, serializers.JSONField)
# Longer text than this gets a text area rather than a one-line input.
_ONE_LINE_MAX = 200


@dataclass
class InputField:
    """One input of the form, with what the template needs to render it."""

    name: str
    label: str
    kind: str  # checkbox, number, select, text, textarea, json, url, email
    required: bool
    help_text: str = ""
    value: str = ""
    checked: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def input_id(self) -> str:
        return f"field-{self.name}"


def _kind_of(serializer_field) -> str:
    # Order matters: EmailField and URLField are CharFields, BooleanField is none of them.
    if isinstance(serializer_field, serializers.BooleanField):
        return "checkbox"
    if isinstance(
        serializer_field,
        serializers.IntegerField | serializers.FloatField | serializers.DecimalField,
    ):
        return "number"
    if isinstance(serializer_field, serializers.ChoiceField):
        return "select"
    if isinstance(serializer_field, serializers.URLField):
        return "url"
    if isinstance(serializer_field, serializers.EmailField):
        return "email"
    if isinstance(serializer_field, _JSON_KINDS) or isinstance(
        serializer_field, serializers.BaseSerializer
    ):
        return "json"
    max_length = getattr(serializer_field, "max_length", None)
    return "text" if max_length is not None and max_length <= _ONE_LINE_MAX else "textarea"


def _default_of(serializer_field) -> Any:
    default = serializer_field.default
    if default is empty:
        return None
    return default() if callable(default) else default


def _as_text(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value, indent=2)
    return str(value)


def _numeric_attrs(serializer_field) -> dict[str, Any]:
    attrs = {"step": "1" if isinstance(serializer_field, serializers.IntegerField) else "any"}
    for bound, attr in (("min_value", "min"), ("max_value", "max")):
        if getattr(serializer_field, bound, None) is not None:
            attrs[attr] = getattr(serializer_field, bound)
    return attrs


def input_fields(type_input: serializers.Serializer) -> list[InputField]:
    """The form's inputs for a task type's input serializer, at their defaults."""
    fields = []
    for name, serializer_field in type_input.fields.items():
        if serializer_field.read_only:
            continue
        kind = _kind_of(serializer_field)
        default = _default_of(serializer_field)
        described = InputField(
            name=name,
            label=str(serializer_field.label or name.replace("_", " ").capitalize()),
            kind=kind,
            required=serializer_field.required,
            help_text=str(serializer_field.help_text or ""),
            value=_as_text(kind, default),
            checked=bool(default) if kind == "checkbox" else False,
        )
        if kind == "number":
            described.attrs = _numeric_attrs(serializer_field)
        elif kind == "select":
            described.choices = [
                (str(key), str(text)) for key, text in serializer_field.choices.items()
            ]
        elif getattr(serializer_field, "max_length", None) is not None:
            described.attrs = {"maxlength": serializer_field.max_length}
        fields.append(described)
    return fields


def _parse_number(raw: str, *, whole: bool) -> int | float:
    if whole:
        return int(raw)
    number = float(raw)
    if not math.isfinite(number):
        raise ValueError(raw)
    return number


def input_from_form(
    type_input: serializers.Serializer, posted: QueryDict
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What the API would receive as ``input`` for this posted form, and the errors of the
    values that are not even of their field's type (not a number, not JSON).

    Empty optional inputs are left out, so the type's defaults apply as they would for a
    JSON client that leaves them out; an unchecked box is ``false``. A value in error is
    left out of the input, so that the other fields' own errors can be found as well.
    """
    data: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for described in input_fields(type_input):
        name = described.name
        if described.kind == "checkbox":
            data[name] = name in posted
            continue
        raw = posted.get(name, "")
        if raw.strip() == "" and described.kind != "text":
            continue
        if raw == "" and not described.required:
            continue
        if described.kind == "number":
            whole = described.attrs.get("step") == "1"
            try:
                data[name] = _parse_number(raw.strip(), whole=whole)
            except ValueError:
                errors[name] = ["Enter a whole number." if whole else "Enter a number."]
        elif described.kind == "json":
            try:
                data[name] = json.loads(raw)
            except ValueError as error:
                errors[name] = [f"Enter valid JSON ({error.msg}, line {error.lineno})."]
        else:
            data[name] = raw
    return data, errors


def priority_from_form(priority_field: serializers.Field, raw: str) -> int | None:
    """The submission's priority as typed (None when left empty: the type's own), checked
    by the API's field; raises its ``ValidationError``."""
    if raw == "":
        return None
    try:
        number = int(raw)
    except ValueError:
        raise serializers.ValidationError(["Enter a whole number."]) from None
    return priority_field.run_validation(number)


def fields_with_posted(
    type_input: serializers.Serializer, posted: QueryDict, errors: dict[str, list[str]]
) -> list[InputField]:
    """The form's inputs as the user filled them in, each with its errors."""
    fields = input_fields(type_input)
    for described in fields:
        if described.kind == "checkbox":
            described.checked = described.name in posted
        else:
            described.value = posted.get(described.name, "")
        described.errors = [str(message) for message in error_messages(errors.get(described.name))]
    return fields


def error_messages(detail) -> list[str]:
    """Flatten DRF's error detail of one field (a list, or a dict for nested input)."""
    if detail is None:
        return []
    if isinstance(detail, dict):
        return [
            f"{key}: {message}"
            for key, value in detail.items()
            for message in error_messages(value)
        ]
    if isinstance(detail, list):
        return [message for item in detail for message in error_messages(item)]
    return [str(detail)]
