"""A host that vanishes inside a transaction (powered off, cut off) leaves no lock behind
for long: PostgreSQL finds the client gone within about half a minute and rolls it back.

Without that the server would hold the locks until the kernel's TCP keepalive gives up,
after more than two hours, and whatever needs the rows would wait as long: the
reconciliation that requeues the dead worker's task, the owner's admissions.
"""

import time

import pytest
from django.db import connections, transaction

from tests.integration.multihost.conftest import DEPLOYED
from tests.integration.multihost.deployment import TEST_TUNINGS

DEAD_CLIENT_SECONDS = int(TEST_TUNINGS["DJANGO_DB_DEAD_CLIENT_SECONDS"])

pytestmark = pytest.mark.integration

# The hosts' DJANGO_DB_DEAD_CLIENT_SECONDS (10 here, 30 by default), and some slack.
RELEASED_WITHIN = DEAD_CLIENT_SECONDS + 10

HOLD_A_ROW = """
import time
from django.db import connection, transaction
with transaction.atomic():
    connection.cursor().execute("SELECT id FROM held WHERE id = 1 FOR UPDATE")
    print("holding the row", flush=True)
    time.sleep(600)
"""


def test_the_locks_of_a_host_that_vanished_mid_transaction_are_released(deployment):
    database = connections[DEPLOYED]
    with database.cursor() as cursor:
        cursor.execute("CREATE TABLE held (id integer PRIMARY KEY)")
        cursor.execute("INSERT INTO held VALUES (1)")
    holder = deployment.start_command(
        "worker-a", "holder", f"exec python manage.py shell -c '{HOLD_A_ROW}'"
    )
    holder.wait_for_log("holding the row")

    deployment.hosts["worker-a"].cut()
    holder.kill()
    cut_at = time.monotonic()
    with transaction.atomic(using=DEPLOYED), database.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{RELEASED_WITHIN}s'")
        cursor.execute("SELECT id FROM held WHERE id = 1 FOR UPDATE")  # fails if still held
    print(f"\nthe lock was released {time.monotonic() - cut_at:.1f} s after the cut")
