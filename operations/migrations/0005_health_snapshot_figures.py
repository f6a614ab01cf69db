"""Health snapshots keep the figures of the minute before them, for the staff page's charts."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0004_task_tally"),
    ]

    operations = [
        migrations.AddField(
            model_name="healthsnapshot",
            name="figures",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
