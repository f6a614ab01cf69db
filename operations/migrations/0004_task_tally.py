"""The tally of finished tasks (operations/tallies.py): counts that retention does not lower.

Both tables start empty: the first scrape or retention run counts every finished record
into the tally (one aggregate over the (status, finished_at) index), later ones only what
finished since.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('operations', '0003_reconcile_tasks_names'),
    ]

    operations = [
        migrations.CreateModel(
            name='TaskTally',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('task_type', models.CharField(max_length=100)),
                ('status', models.CharField(max_length=20)),
                ('count', models.PositiveBigIntegerField(default=0)),
                ('timed_count', models.PositiveBigIntegerField(default=0)),
                ('duration_seconds_sum', models.FloatField(default=0.0)),
                ('duration_buckets', models.JSONField(blank=True, default=dict)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('task_type', 'status'), name='task_tally_type_status')],
            },
        ),
        migrations.CreateModel(
            name='TaskTallyMark',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('counted_until', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('id', 1)), name='task_tally_mark_one')],
            },
        ),
    ]
