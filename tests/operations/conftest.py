from tests.tasks_app.test_broker import queue_with_messages

__all__ = ["queue_with_messages"]  # a fixture: real messages in a queue of the real broker
