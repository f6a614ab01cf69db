"""Task records: an index for staff's list of every task, newest first, in the place of the
owner's foreign-key index, which task_owner_created (owner, -created_at) made redundant.

Without task_created, staff's GET /api/v1/tasks/ sorted every record for each page (over a
second at a million records). Dropping the owner index keeps the writes per insert as they
were. Only the index is dropped, by name: Django's AlterField would drop and re-create
the foreign key on PostgreSQL, checking every row while writes wait, and rebuild the table
on SQLite. Building task_created holds writes to the table while it runs (about a second
per million records here).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The name Django gave the foreign key's index (0001), the same on every database.
OWNER_INDEX = "tasks_app_taskrecord_owner_id_5e558aaf"


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0010_task_batches"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="taskrecord",
                    name="owner",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="task_records",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{OWNER_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{OWNER_INDEX}" ON "tasks_app_taskrecord" '
                    '("owner_id")',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="taskrecord",
            index=models.Index(fields=["-created_at", "-id"], name="task_created"),
        ),
    ]
