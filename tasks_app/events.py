"""Each owner's task changes, as they happen: what GET /api/v1/tasks/events streams.

Every write an owner would see (a move of the state machine, progress) sets the record's
``changed_at``; heartbeats and the relay's ``dispatched_at`` do not. A stream is a cursor
over ``changed_at`` in the owner's records (index task_owner_changed), so it resumes
from any earlier position (an event's id, ``Last-Event-ID``) and needs nothing written
beside the records themselves.

One ``TaskChangeFeed`` per web process (per event loop) reads the changes of every owner
with an open stream in one query every ``TASKS_EVENTS_POLL_SECONDS``, on a thread and a
database connection of its own, and hands each change to that owner's streams. So the
database sees a few queries a second however many streams are open, and an open stream
holds no thread and no connection while it waits: an ``asyncio.Queue``.

A moment is not a commit order: a writer takes ``changed_at`` before it commits, so a
change may become visible after a later one was read. Each read therefore looks
``CHANGE_OVERLAP`` back past the newest change it saw and drops what it has delivered:
a change that took longer than that to commit is missed by the live streams (the record's
next change, a reload or a resume still shows it). Every event carries the record's whole
current state, so one delivered twice (a resume overlaps too) is harmless.
"""

import asyncio
import logging
import threading
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from tasks_app import selectors
from tasks_app.models import TaskRecord

logger = logging.getLogger(__name__)

# How far behind the newest change each read looks again: the longest a write's commit
# may lag its ``changed_at`` and still reach the live streams.
CHANGE_OVERLAP = timedelta(seconds=2)
# The most changes one read takes; the next read goes on from the newest of them.
READ_LIMIT = 1000
# Changes waiting for one stream; a stream that falls this far behind is ended, and its
# client resumes from its last event (EventSource does that by itself).
STREAM_BACKLOG = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cursor_of(moment: datetime) -> str:
    """An event id: a moment as whole microseconds since 1970 (clients treat it as opaque)."""
    return str((moment - _EPOCH) // _MICROSECOND)


def moment_of(cursor: str) -> datetime | None:
    """The moment an event id stands for, or None for one this service did not make."""
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 17:
        return None
    return _EPOCH + int(cursor) * _MICROSECOND


class StreamEnded(Exception):
    """The stream must end: its client read too slowly (its backlog was dropped), or this
    process is stopping. Either way the client resumes by id, here or at another process."""


class _Subscription:
    def __init__(self, owner_id: int):
        self.owner_id = owner_id
        # One place more than the backlog, for the wake-up of ``end``.
        self.queue: asyncio.Queue[TaskRecord | None] = asyncio.Queue(maxsize=STREAM_BACKLOG + 1)
        self.ended = False

    def offer(self, record: TaskRecord) -> None:
        if self.queue.qsize() >= STREAM_BACKLOG:
            self.end()
        else:
            self.queue.put_nowait(record)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(None)  # wakes a stream that waits

    async def next_change(self, timeout: float) -> TaskRecord | None:
        """The next change, or None if none came within ``timeout`` seconds."""
        try:
            record = None if self.ended else await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if self.ended:
            raise StreamEnded
        return record


class TaskChangeFeed:
    """The changes of the owners with open streams, read together and handed out by owner."""

    def __init__(self, fields: tuple[str, ...]):
        self.fields = fields
        self._subscriptions: dict[int, set[_Subscription]] = defaultdict(set)
        self._stopping = False
        self._poller: asyncio.Task | None = None
        # One thread, so one database connection, however many streams are open.
        self._database = ThreadPoolExecutor(1, thread_name_prefix="task-events")

    async def read(self, function: Callable, /, **kwargs):
        """``function(**kwargs)`` on the feed's database thread."""
        loop = asyncio.get_running_loop()
        on_connection = lambda: _on_own_connection(function, kwargs)  # noqa: E731
        return await loop.run_in_executor(self._database, on_connection)

    @asynccontextmanager
    async def subscription(self, owner_id: int) -> AsyncIterator[_Subscription]:
        subscription = _Subscription(owner_id)
        if self._stopping:
            subscription.end()
        self._subscriptions[owner_id].add(subscription)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield subscription
        finally:
            self._subscriptions[owner_id].discard(subscription)
            if not self._subscriptions[owner_id]:
                del self._subscriptions[owner_id]

    def end_all(self) -> None:
        """End every stream, now and from now on: the process is stopping."""
        self._stopping = True
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.end()

    async def _poll(self) -> None:
        """Read and hand out changes while any stream is open; then end (the next restarts it)."""
        newest_seen = datetime.now(UTC) - CHANGE_OVERLAP
        delivered: dict = {}  # record id → the changed_at last handed out, within the overlap
        while self._subscriptions:
            await asyncio.sleep(settings.TASKS_EVENTS_POLL_SECONDS)
            owners = list(self._subscriptions)
            if not owners:
                break
            try:
                records = await self.read(
                    selectors.task_changes_for_owners,
                    owner_ids=owners,
                    since=newest_seen - CHANGE_OVERLAP,
                    fields=self.fields,
                    limit=READ_LIMIT,
                )
            except DatabaseError as error:
                logger.warning("task events: reading changes failed, retrying: %s", error)
                continue
            except Exception:  # a bug must not silence every stream of the process for good
                logger.exception("task events: reading changes failed, retrying")
                continue
            for record in records:
                if delivered.get(record.pk) == record.changed_at:
                    continue
                delivered[record.pk] = record.changed_at
                newest_seen = max(newest_seen, record.changed_at)
                for subscription in self._subscriptions.get(record.owner_id, ()):
                    subscription.offer(record)
            horizon = newest_seen - CHANGE_OVERLAP
            delivered = {pk: moment for pk, moment in delivered.items() if moment > horizon}


def _on_own_connection(function: Callable, kwargs: dict):
    # The thread's connection lives as long as the process, as a web request's does: closed
    # and opened again past CONN_MAX_AGE, or after an error (a restarted database).
    close_old_connections()
    try:
        return function(**kwargs)
    except DatabaseError:
        connection.close()
        raise


_feeds: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TaskChangeFeed]" = (
    weakref.WeakKeyDictionary()
)


def end_all_streams() -> None:
    """Called as the process begins to stop (from a signal handler): every stream ends, so
    that the server's graceful shutdown is not held up by streams that never would; their
    clients reconnect where they left off, to a process that is not stopping."""
    for loop, feed in list(_feeds.items()):
        loop.call_soon_threadsafe(feed.end_all)


def feed_of_this_loop(fields: tuple[str, ...]) -> TaskChangeFeed:
    """This process's feed (one per event loop: a test may run several loops in turn)."""
    loop = asyncio.get_running_loop()
    feed = _feeds.get(loop)
    if feed is None:
        feed = _feeds[loop] = TaskChangeFeed(fields)
    return feed


class StreamSlot:
    """One of an owner's streams in this process, held from the request until the stream
    ends: taken by the view (a thread), given back by the stream (the event loop), or when a
    stream that never started is collected (its client left before its first byte)."""

    _lock = threading.Lock()
    _held: dict[int, int] = defaultdict(int)

    def __init__(self, owner_id: int):
        self.owner_id = owner_id
        self._released = False

    @classmethod
    def take(cls, owner_id: int, *, limit: int) -> "StreamSlot | None":
        """A slot, or None if the owner holds ``limit`` already."""
        with cls._lock:
            if cls._held[owner_id] >= limit:
                return None
            cls._held[owner_id] += 1
        return cls(owner_id)

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
            self._held[self.owner_id] -= 1
            if not self._held[self.owner_id]:
                del self._held[self.owner_id]

    def held_by(self, stream) -> None:
        """Released when ``stream`` is collected, if nothing released it before."""
        weakref.finalize(stream, self.release)
