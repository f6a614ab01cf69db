import signal
import threading

from django.core.management.base import BaseCommand

from tasks_app.relay import Relay


class Command(BaseCommand):
    help = (
        "Run the relay: publish the broker messages of submitted tasks (the Procfile's relay "
        "process). SIGTERM or Ctrl-C stops it after its current batch."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, batch_size=None, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        Relay(batch_size=batch_size).run(stop)
