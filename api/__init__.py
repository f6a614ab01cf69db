"""Shared HTTP plumbing that every app's API uses: the JSON error format and the handler that
turns domain errors into it, request parsing, pagination, throttling and schema helpers.

It sits below every app and imports none of them: an app's domain error names its own
HTTP status (``api.errors.DomainError``), so the handler needs to know no app.
"""
