"""Tokens of DRF's authtoken (stored in clear) become UserToken digests.

A deployment that ran before this migration has an ``authtoken_token`` table: each of its
tokens keeps working, now checked against its SHA-256 digest, and the clear keys are
deleted. The app is no longer installed, so its table is read with plain SQL, and a new
database (no such table) has nothing to convert.
"""

import datetime
import hashlib

from django.db import migrations

AUTHTOKEN_TABLE = "authtoken_token"


def tokens_from_authtoken(apps, schema_editor):
    connection = schema_editor.connection
    if AUTHTOKEN_TABLE not in connection.introspection.table_names():
        return
    UserToken = apps.get_model("tasks_app", "UserToken")
    table, key, user_id, created = (
        schema_editor.quote_name(name) for name in (AUTHTOKEN_TABLE, "key", "user_id", "created")
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {key}, {user_id}, {created} FROM {table}")
        rows = cursor.fetchall()
    UserToken.objects.bulk_create(
        UserToken(
            user_id=row_user_id,
            key_digest=hashlib.sha256(row_key.encode()).hexdigest(),
            # SQLite hands back Django's naive UTC; PostgreSQL an aware time.
            created_at=(
                row_created.replace(tzinfo=datetime.UTC)
                if row_created.tzinfo is None
                else row_created
            ),
        )
        for row_key, row_user_id, row_created in rows
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0005_user_tokens"),
    ]

    operations = [
        # Backwards, the digests stay: the clear keys are gone for good.
        migrations.RunPython(tokens_from_authtoken, migrations.RunPython.noop),
    ]
