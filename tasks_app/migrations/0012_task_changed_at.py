"""Task records: when each last changed as its owner sees it, for the event stream.

GET /api/v1/tasks/events follows ``changed_at`` through task_owner_changed (owner,
changed_at). Records that exist already get the migration's time: adding a column with a
constant default rewrites no row on PostgreSQL 11+ or SQLite. Building the index holds
writes to the table while it runs (about a second per million records here).
"""

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks_app", "0011_staff_list_index_instead_of_owner_fk_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="changed_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="When its status or progress last changed.",
            ),
        ),
        migrations.AddIndex(
            model_name="taskrecord",
            index=models.Index(fields=["owner", "changed_at"], name="task_owner_changed"),
        ),
    ]
