from django.db import models


class DiagnosticCounter(models.Model):
    """How often ``diagnostics.count`` took effect for a key: proves exactly-once effects."""

    key = models.CharField(max_length=100, unique=True)
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
