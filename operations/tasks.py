"""Celery tasks that beat sends for health and maintenance. Each calls one service."""
