"""API latency with event streams open, next to the same load with none, in the same run.

Starts the web process as the Procfile does (gunicorn, 2 uvicorn workers, DEBUG off) and
the Procfile's relay, gives ``--streams`` / 10 scratch users (at least 20) ten tasks each,
then alternates two phases ``--rounds`` times, each ``--seconds`` long:

    A   no streams open: ``--connections`` API clients send requests one after another,
        a mix of GET /api/v1/tasks/?page_size=20 (40%), GET /api/v1/tasks/{id}/ of one of
        the user's tasks (50%) and POST /api/v1/tasks/ of diagnostics.sleep (10%), every
        request as the next of the users in turn
    B   the same, with ``--streams`` GET /api/v1/tasks/events open, ten per user, read by
        one asyncio thread; the submits are the streams' own users', so each submit is an
        event on that user's ten streams

Every stream must answer 200 ``text/event-stream`` and still be open at the end of its
phase, and the events received are counted against the submits' (each submit of a user
is an event on each of that user's streams). Ten streams a user stay under the limit
per user and web process (TASKS_EVENTS_MAX_STREAMS, 20) however they land on the two
worker processes; how they landed is printed (from /proc: the workers' open sockets).

It prints requests/s, p50 and p99 of each phase, and issue 11's goal: API p99 with the
streams open at most 1.5x the p99 without. Machines are noisy: the phases alternate
(A, B, A, B) so that both see the same machine, and both rounds are printed.

Runs against the configured database and broker (the embedded default unless
DATABASE_URL / CELERY_BROKER_URL say otherwise), in scratch users whose records are
deleted and whose messages are purged afterwards. No worker is needed: the submitted tasks
stay queued. The submit rate limit and the users' fair-use limits are lifted (as in
http_submit.py), to measure the path rather than the limiters.

    .venv/bin/python bench/events.py [--seconds 10] [--streams 200] [--connections 8]
"""

import argparse
import asyncio
import http.client
import json
import math
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.web import (  # noqa: E402  (needs the path above)
    free_port,
    percentile,
    start_relay,
    start_web,
    stop_web,
    web_bench_environment,
)

web_bench_environment()

EVENTS_PATH = "/api/v1/tasks/events"
SLEEP = json.dumps({"task_type": "diagnostics.sleep", "input": {"seconds": 0}})
# Each client's requests, in turn: 40% list, 50% detail, 10% submit.
MIX = ("list", "detail", "list", "detail", "detail", "list", "detail", "detail", "list", "submit")
STREAMS_PER_USER = 10  # half of TASKS_EVENTS_MAX_STREAMS: safe on one process
MIN_USERS = 20
TASKS_PER_USER = 10  # what the detail requests read
# Longer than the feed's poll (TASKS_EVENTS_POLL_SECONDS, 0.25 s): streams subscribed and
# a phase's last events delivered.
SETTLE_SECONDS = 1.0


class Streams:
    """Event streams read by one asyncio loop on a thread of its own: cheap for the client,
    so that the API clients' threads keep the processor."""

    def __init__(self, port: int):
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.open_streams: list[dict] = []

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def open(self, tokens: list[str]) -> list[dict]:
        """One stream per token; each a dict: status, content_type, events, ended."""
        self.open_streams = self.run(self._open_all(tokens))
        return self.open_streams

    def reset_counts(self) -> None:
        self.run(self._reset())

    def close(self) -> None:
        self.run(self._close_all())

    def stop(self) -> None:
        self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _reset(self) -> None:
        for stream in self.open_streams:
            stream["events"] = 0
            stream["delays"] = []

    async def _open_all(self, tokens: list[str]) -> list[dict]:
        return await asyncio.gather(*(self._open(token) for token in tokens))

    async def _open(self, token: str) -> dict:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Token {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        stream = {
            "status": int(head[0].split()[1]),
            "content_type": headers.get("content-type", ""),
            "events": 0,
            "ended": False,
            "writer": writer,
        }
        if stream["status"] == 200:
            chunked = headers.get("transfer-encoding") == "chunked"
            stream["reading"] = asyncio.create_task(self._read(stream, reader, chunked))
        else:
            stream["ended"] = True
            writer.close()
        return stream

    async def _read(self, stream: dict, reader: asyncio.StreamReader, chunked: bool) -> None:
        """Reads the stream as it comes, counting its ``task`` events, until it ends."""
        pending = b""
        try:
            while True:
                if chunked:
                    size = int((await reader.readline()).split(b";")[0] or b"0", 16)
                    data = (await reader.readexactly(size + 2))[:-2] if size else b""
                else:
                    data = await reader.read(65536)
                if not data:
                    break
                *blocks, pending = (pending + data).split(b"\n\n")
                received = time.time()
                for block in blocks:
                    lines = block.split(b"\n")
                    if b"event: task" in lines:
                        stream["events"] += 1
                        # The id is the change's moment (microseconds): its write to here.
                        position = next(line for line in lines if line.startswith(b"id: "))
                        delay = received - int(position[4:]) / 1e6
                        stream.setdefault("delays", []).append(delay)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        stream["ended"] = True

    async def _close_all(self) -> None:
        for stream in self.open_streams:
            if "reading" in stream:
                stream["reading"].cancel()
            stream["writer"].close()
        self.open_streams = []


def sockets_per_worker(web, port: int) -> dict[int, int]:
    """Established connections to ``port`` held by each of gunicorn's worker processes."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    established.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in worker_pids(web):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue  # the worker ended meanwhile
        counts[pid] = sum(link in established for link in links)
    return counts


def worker_pids(web) -> list[int]:
    pids = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as stat:
                # The parent's id is the second field after the command's closing parenthesis.
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == web.pid:
                    pids.append(int(name))
        except OSError:
            continue  # the process ended meanwhile
    return sorted(pids)


def workers_cpu_seconds(web) -> float:
    """The processor time gunicorn's worker processes have used so far."""
    total = 0
    for pid in worker_pids(web):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # utime and stime, the 12th and 13th fields after the command.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def drive(port: int, users: list[dict], *, seconds: float, connections: int) -> dict:
    """The API clients for ``seconds``: {"latencies": {kind: [s]}, "rate", "submits"}.

    Client n sends MIX in turn, request i as user (n + i * connections) % len(users); every
    answer must be 200 or 202. ``submits`` counts the submits answered, per user index.
    """
    latencies: dict[str, list[float]] = {kind: [] for kind in set(MIX)}
    submits: Counter = Counter()
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        choose = random.Random(number).choice
        mine: dict[str, list[float]] = {kind: [] for kind in latencies}
        my_submits: Counter = Counter()
        index = 0
        while time.monotonic() < stop_at and not errors:
            kind = MIX[index % len(MIX)]
            who = (number + index * connections) % len(users)
            user = users[who]
            index += 1
            headers = {"Authorization": f"Token {user['token']}"}
            if kind == "list":
                method, path, body = "GET", "/api/v1/tasks/?page_size=20", None
            elif kind == "detail":
                method, path, body = "GET", f"/api/v1/tasks/{choose(user['task_ids'])}/", None
            else:
                method, path, body = "POST", "/api/v1/tasks/", SLEEP
                headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            mine[kind].append(time.perf_counter() - started)
            if response.status not in (200, 202):
                errors.append(f"{method} {path}: {response.status} {answer[:200]!r}")
            elif kind == "submit":
                my_submits[who] += 1
        connection.close()
        with lock:
            for kind, values in mine.items():
                latencies[kind].extend(values)
            submits.update(my_submits)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    if errors:
        raise SystemExit(errors[0])
    count = sum(len(values) for values in latencies.values())
    return {"latencies": latencies, "rate": count / took, "submits": submits}


def give_tasks(port: int, users: list[dict]) -> None:
    """TASKS_PER_USER submitted tasks for each user, whose ids the detail requests read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for user in users:
        user["task_ids"] = []
        headers = {"Authorization": f"Token {user['token']}", "Content-Type": "application/json"}
        for _ in range(TASKS_PER_USER):
            connection.request("POST", "/api/v1/tasks/", body=SLEEP, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 202:
                raise SystemExit(f"a submit answered {response.status}: {answer[:200]!r}")
            user["task_ids"].append(json.loads(answer)["id"])
    connection.close()


def open_streams(streams: Streams, users: list[dict], count: int) -> tuple[list[int], float]:
    """``count`` streams, stream k as user k % len(users): their users' indexes, and the
    seconds opening them all took. Each must answer 200 text/event-stream."""
    owners = [k % len(users) for k in range(count)]
    started = time.perf_counter()
    opened = streams.open([users[owner]["token"] for owner in owners])
    took = time.perf_counter() - started
    refused = Counter(s["status"] for s in opened if s["status"] != 200)
    wrong = [s["content_type"] for s in opened if not s["content_type"].startswith("text/event")]
    if refused or wrong:
        raise SystemExit(f"streams refused: {dict(refused)}; with another type: {wrong[:3]}")
    return owners, took


def wait_until_closed(web, port: int, timeout: float = 30) -> None:
    """Until the web workers hold no connection: the closed streams' slots are given back."""
    deadline = time.monotonic() + timeout
    while sum(sockets_per_worker(web, port).values()):
        if time.monotonic() > deadline:
            raise SystemExit(f"the web workers still hold streams {timeout} s after they closed")
        time.sleep(0.1)


def measure(args, users: list[dict]) -> list[dict]:
    """The phases in turn; each a dict for ``report``."""
    port = free_port()
    web, relay = start_web(port), start_relay()
    streams = Streams(port)
    phases = []

    def phase() -> dict:
        """The API load, and the web workers' processor time (ms) per request meanwhile."""
        cpu = workers_cpu_seconds(web)
        figures = drive(port, users, seconds=args.seconds, connections=args.connections)
        requests = sum(len(values) for values in figures["latencies"].values())
        return {**figures, "cpu_ms": (workers_cpu_seconds(web) - cpu) * 1000 / requests}

    try:
        give_tasks(port, users)
        drive(port, users, seconds=2, connections=args.connections)  # warm-up
        for round_number in range(1, args.rounds + 1):
            phases.append({"name": f"A{round_number}", **phase()})

            owners, took = open_streams(streams, users, args.streams)
            time.sleep(SETTLE_SECONDS)  # subscribed; events of before the phase delivered
            streams.reset_counts()
            measured = phase()
            time.sleep(SETTLE_SECONDS)  # the phase's last submits reach their streams
            opened = streams.open_streams
            expected = sum(measured["submits"][owner] for owner in owners)
            phases.append(
                {
                    "name": f"B{round_number}",
                    **measured,
                    "opening": took,
                    "open": sum(not stream["ended"] for stream in opened),
                    "per_worker": sorted(sockets_per_worker(web, port).values()),
                    "events": sum(stream["events"] for stream in opened),
                    "delays": sorted(d for stream in opened for d in stream.get("delays", [])),
                    "expected": expected,
                }
            )
            streams.close()
            wait_until_closed(web, port)
    finally:
        streams.stop()
        stop_web(web)
        relay.terminate()
        relay.wait(timeout=30)
    return phases


def report(args, phases: list[dict], loads: tuple) -> None:
    import django.db

    from config.celery import app

    print(f"database: {django.db.connection.vendor}, broker: {app.conf.broker_url.split(':')[0]}")
    print(
        f"gunicorn 2 uvicorn workers and the relay; {args.connections} API clients (40% list, "
        f"50% detail, 10% submit) over {args.users} users, {args.seconds:g} s a phase; "
        f"{args.streams} streams in B; load average {loads[0]:.1f} before, {loads[1]:.1f} after"
    )
    print(
        f"{'phase':<14} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'web cpu':>7}  "
        "streams open (per worker)  events (expected)"
    )
    pooled: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    p99s = {}
    for phase in phases:
        every = sorted(value for values in phase["latencies"].values() for value in values)
        p99s[phase["name"]] = percentile(every, 0.99)
        for kind, values in phase["latencies"].items():
            pooled[phase["name"][0]].setdefault(kind, []).extend(values)
        line = (
            f"{phase['name'] + (' streams' if 'open' in phase else ' none'):<14} "
            f"{phase['rate']:>7.1f} {statistics.median(every) * 1000:>7.1f} "
            f"{p99s[phase['name']] * 1000:>7.1f} {phase['cpu_ms']:>7.2f}"
        )
        if "open" in phase:
            workers = " + ".join(map(str, phase["per_worker"]))
            line += (
                f"  {phase['open']:>3} of {args.streams} ({workers})".ljust(27)
                + f"  {phase['events']} ({phase['expected']}), opened in {phase['opening']:.2f} s"
            )
        print(line)
    for name in ("A", "B"):
        every = sorted(value for values in pooled[name].values() for value in values)
        p99s[name] = percentile(every, 0.99)
        kinds = ", ".join(
            f"{kind} {percentile(sorted(values), 0.99) * 1000:.1f}"
            for kind, values in sorted(pooled[name].items())
        )
        print(
            f"all {name:<10} {'':>7} {statistics.median(every) * 1000:>7.1f} "
            f"{p99s[name] * 1000:>7.1f} {'':>7}  p99 ms by kind: {kinds}"
        )
    rounds = ", ".join(
        f"round {n} {p99s[f'B{n}'] / p99s[f'A{n}']:.2f}x" for n in range(1, args.rounds + 1)
    )
    print(
        f"API p99 with {args.streams} streams / without: {rounds}, all "
        f"{p99s['B'] / p99s['A']:.2f}x (goal <= 1.5)"
    )
    print("web cpu: the web workers' processor time per API request, ms (B's includes streams)")
    delays = sorted(d for phase in phases for d in phase.get("delays", []))
    if delays:
        print(
            f"events, from the change's write to the stream's reader: p50 "
            f"{statistics.median(delays) * 1000:.0f} ms, p99 {percentile(delays, 0.99) * 1000:.0f}"
            f" ms, max {delays[-1] * 1000:.0f} ms over {len(delays)} events (the dashboard's"
            " goal: within 1 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--connections", type=int, default=8, help="API clients")
    parser.add_argument("--rounds", type=int, default=2, help="of A (no streams), B (streams)")
    args = parser.parse_args()
    args.users = max(MIN_USERS, math.ceil(args.streams / STREAMS_PER_USER))

    import django

    from bench.scratch import scratch_users

    loads = [os.getloadavg()[0]]
    with scratch_users("bench-events", count=args.users) as scratch:
        from tasks_app.tokens import user_token_issue

        users = [{"token": user_token_issue(user=user)[1]} for user in scratch]
        django.db.connections.close_all()
        phases = measure(args, users)
    loads.append(os.getloadavg()[0])
    report(args, phases, tuple(loads))


if __name__ == "__main__":
    main()
