"""PostgreSQL only: a GIN index over the chunks' English text-search vector.

The index expression is built from the same ``SearchVector("text", config="english")``
that documents.search queries with, so the planner can use it. SQLite has no such
index type; there, search scans (documents.search explains the fallback).
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

INDEX = GinIndex(SearchVector("text", config="english"), name="chunk_text_search")


def add_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("documents", "DocumentChunk"), INDEX)


def remove_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("documents", "DocumentChunk"), INDEX)


class Migration(migrations.Migration):
    dependencies = [("documents", "0001_initial")]

    operations = [migrations.RunPython(add_index, remove_index)]
