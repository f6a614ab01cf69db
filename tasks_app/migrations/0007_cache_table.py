"""The database cache's table, for deployments whose CACHES use it (the embedded default).

``createcachetable`` does nothing for caches of other backends, and nothing when the table
exists, so this is safe everywhere; running it from ``migrate`` spares deployments a step.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("tasks_app", "0006_user_tokens_from_authtoken")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
