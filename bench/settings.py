"""The service's settings as shipped, with the baseline endpoints of bench/baseline_urls.py."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
