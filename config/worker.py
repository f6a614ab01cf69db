"""The worker's consumer: Celery's own, except that a Redis restart does not stop the worker."""

from celery.worker.consumer import Consumer as CeleryConsumer


class Consumer(CeleryConsumer):
    """Celery 5.7.0's consumer without its second close of a lost broker connection.

    After losing the connection, Celery 5.7.0 calls ``connection.collect()``, which releases
    the sockets and detaches the transport, and then ``connection.close()``. With Redis that
    close drops the channel's client pool; restoring the unacknowledged messages, or later
    acknowledging a task that was still running, then rebuilds the pool from the detached
    transport, raises AttributeError, and the worker stops ("Unrecoverable error"). Celery
    5.6 did not close again after collect(); this does what 5.6 did.
    """

    def on_connection_error_after_connected(self, exc):
        if self.connection is not None:
            self.connection.close = lambda: None  # collect() has released it already
        super().on_connection_error_after_connected(exc)
