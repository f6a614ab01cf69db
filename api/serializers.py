"""JSON types as the schema states them, for input serializers.

DRF coerces: a FloatField takes ``false`` as 0.0 and ``"1.5"`` as 1.5, a CharField takes
``5`` as ``"5"``, a BooleanField takes ``"yes"``. The OpenAPI schema says "number",
"string", "boolean", and a client generated from it (or schemathesis) expects a value of
another JSON type to be refused, as it is here.
"""

from rest_framework import serializers

# The Python values json.loads gives for each JSON type a field's schema names.
_JSON_TYPES: list[tuple[type[serializers.Field], tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "A boolean (true or false) is required."),
    (serializers.IntegerField, (int,), "A whole number is required."),
    (serializers.FloatField, (int, float), "A number is required."),
    (serializers.ChoiceField, (str, int), "A string is required."),
    (serializers.CharField, (str,), "A string is required."),
]


def json_type_errors(fields: dict[str, serializers.Field], data) -> dict[str, list[str]]:
    """Errors for the values in ``data`` whose JSON type is not their field's."""
    if not isinstance(data, dict):
        return {}
    errors = {}
    for name, field in fields.items():
        if name not in data or data[name] is None:
            continue  # missing and null are the field's own business
        value = data[name]
        for field_class, json_types, message in _JSON_TYPES:
            if isinstance(field, field_class):
                # bool is an int in Python, never a number in JSON.
                wrong = not isinstance(value, json_types) or (
                    isinstance(value, bool) and bool not in json_types
                )
                if wrong:
                    errors[name] = [message]
                break
    return errors
