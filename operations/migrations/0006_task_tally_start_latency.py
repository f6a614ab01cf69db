"""The tally keeps the submit-to-start waits too (jobservice_task_start_latency_seconds).

Rows tallied before this migration have none: the histogram counts the records that
finish from the tally's mark on (a few minutes before the upgrade).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('operations', '0005_health_snapshot_figures'),
    ]

    operations = [
        migrations.AddField(
            model_name='tasktally',
            name='started_count',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='tasktally',
            name='start_latency_seconds_sum',
            field=models.FloatField(default=0.0),
        ),
        migrations.AddField(
            model_name='tasktally',
            name='start_latency_buckets',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
