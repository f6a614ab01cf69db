"""Install the periodic tasks beat runs, so that ``migrate`` is all a deployment needs.

The same definitions and service as ``manage.py install_schedules`` (operations/schedules.py),
with this migration's historical models: missing rows are created, existing ones (an
admin's edits) are left as they are.
"""

from django.db import migrations


def install_schedules(apps, schema_editor):
    from operations.schedules import schedules_install

    schedules_install(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        # Nothing to undo: the rows are the admin's to delete.
        migrations.RunPython(install_schedules, migrations.RunPython.noop),
    ]
