"""Django settings, all from the environment (12-factor).

With nothing set, the project runs embedded: SQLite and Celery's filesystem broker in
``var/``. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis.
Every variable is listed in docs/configuration.md (a test checks it) and in ``.env.example``.

Read in this order, one part per module:

    base    paths, the environment, Django itself, HTTPS, the database, the REST API, logging
    celery  the broker, results and delivery guarantees, and the shared cache
    apps    the knobs of tasks_app, documents and operations
"""

from config.settings.apps import *  # noqa: F403
from config.settings.base import *  # noqa: F403
from config.settings.celery import *  # noqa: F403
