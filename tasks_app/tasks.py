"""Celery tasks of tasks_app: its task types, which live in diagnostics.py.

The maintenance that beat runs (reconciliation, dead-letter pruning) is operations/tasks.py.
"""

from tasks_app import diagnostics as _diagnostics  # noqa: F401  (registers its task types)
