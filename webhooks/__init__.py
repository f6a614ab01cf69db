"""Signed webhooks (Standard Webhooks): users' endpoints, the events of finished tasks and
documents, and their delivery with retries, from the ``webhooks`` process."""
