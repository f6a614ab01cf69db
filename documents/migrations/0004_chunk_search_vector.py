"""Chunks keep their full-text vector in a stored column (PostgreSQL), searched and ranked.

Search computed ``to_tsvector`` of every candidate chunk's text at query time: about
0.1 ms a chunk, so 150-380 ms for a user with 1,400 chunks (bench/pages.py), and the
planner, which prices that call as cheap, would not use the expression's GIN index. The
vector is now computed once, when a chunk is stored, into ``search_vector`` (a generated
column, so every writer fills it), with the GIN index on it; the expression index goes.

Adding the column rewrites the chunks table, computing each vector, with writes to it
held meanwhile. On SQLite, which searches by a plain scan, nothing changes. The column
is not in the model's state: only documents/search.py reads it, on PostgreSQL.
"""

from django.db import migrations

ADD = """
ALTER TABLE documents_documentchunk ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, COALESCE(text, ''))) STORED;
CREATE INDEX chunk_search_vector ON documents_documentchunk USING GIN (search_vector);
DROP INDEX IF EXISTS chunk_text_search;
"""
REMOVE = """
CREATE INDEX IF NOT EXISTS chunk_text_search ON documents_documentchunk
    USING GIN (to_tsvector('english'::regconfig, COALESCE(text, '')));
DROP INDEX IF EXISTS chunk_search_vector;
ALTER TABLE documents_documentchunk DROP COLUMN IF EXISTS search_vector;
"""


def add(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ADD)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REMOVE)


class Migration(migrations.Migration):
    dependencies = [("documents", "0003_chunk_generations")]

    operations = [migrations.RunPython(add, remove)]
