"""An app of @task functions (Django's Tasks API), installed by tests/settings.py only."""
