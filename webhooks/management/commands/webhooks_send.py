import signal
import threading

from django.core.management.base import BaseCommand

from webhooks.sender import Sender


class Command(BaseCommand):
    help = (
        "Run the webhooks sender: make the events of finished tasks and deliver them (the "
        "Procfile's webhooks process). SIGTERM or Ctrl-C stops it once its attempts in "
        "flight end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=None)

    def handle(self, *args, threads=None, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        Sender(threads=threads).run(stop)
