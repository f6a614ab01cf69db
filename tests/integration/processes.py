"""Processes that tests start (workers, beat, relay, servers): each one's output in a log
file, seen through /proc, and signalled only by the PID the test was given when it started it."""

import os
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings

from tests.waiting import wait_until

BASE_DIR = Path(settings.BASE_DIR)
START_SECONDS = 60
STOP_SECONDS = 10


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def child_pids(pid: int) -> list[int]:
    """Living processes whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                children.append(int(entry.name))
    return sorted(children)


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def sigkill(pid: int) -> None:
    _signal_quietly(pid, signal.SIGKILL)


def _signal_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _is_celery(pid: int) -> bool:
    # Guards against a pid that an unrelated process was given meanwhile.
    try:
        return b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


class ServiceProcess:
    """A process the test started (worker, beat, redis), with its output in a log file."""

    def __init__(self, name: str, command: list[str], *, env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._children_seen: set[int] = set()

    @property
    def pid(self) -> int:
        return self.process.pid

    def has_exited(self) -> bool:
        return self.process.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.has_exited():
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no {text!r} in its log; tail:\n{self.log()[-4000:]}")

    def children(self) -> list[int]:
        if self.has_exited():
            return []
        children = child_pids(self.pid)
        self._children_seen.update(children)
        return children

    def busy_children(self) -> list[int]:
        """Pool children running a task body: they have a heartbeat thread besides their own."""
        return [pid for pid in self.children() if thread_count(pid) > 1]

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a crash or the OOM killer would."""
        doomed = [self.pid, *self.children()]
        for pid in doomed:
            sigkill(pid)
        self.process.wait(timeout=STOP_SECONDS)
        wait_until(
            lambda: not any(is_alive(pid) for pid in doomed),
            timeout=STOP_SECONDS,
            what=f"{self.name} and its children to die",
        )

    def send_signal(self, signum: int, *, with_children: bool = False) -> None:
        """Signal the process, and with ``with_children`` its pool children too (as killpg)."""
        for pid in [self.pid, *(self.children() if with_children else [])]:
            _signal_quietly(pid, signum)

    def wait_then_kill(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the process to exit, then SIGKILL it and its pool."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        for pid in [self.pid, *self._children_seen]:
            if is_alive(pid) and _is_celery(pid):
                sigkill(pid)
        self.process.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        """Shut down gently (SIGTERM), then SIGKILL whatever is left, children included."""
        if not self.has_exited():
            self.children()
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in self._children_seen:  # orphans of a parent that was killed
            if is_alive(pid) and _is_celery(pid):
                sigkill(pid)
        self._log.close()


class ProcessGroup:
    """Processes a test started together; stop_all() ends each by its pid, last first."""

    processes: list[ServiceProcess]

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def log_tails(self, chars: int = 5000) -> str:
        return "\n".join(
            f"---- {process.name} (pid {process.pid}) {process.log_path}, tail ----\n"
            + process.log()[-chars:]
            for process in self.processes
        )
