"""The Procfile's processes (web, relay) as benchmarks start them."""

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def web_bench_environment() -> None:
    """The environment of a bench that starts the web process, set before Django loads:
    production defaults (DEBUG off, a secret key of its own) in a var folder of its own,
    with only the submit rate limit lifted, to measure the path rather than the limiter."""
    from bench.scratch import scratch_var_dir

    scratch_var_dir()
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(40))
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("API_SUBMIT_RATE", "100000000/min")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_web(port: int) -> subprocess.Popen:
    """gunicorn as in the Procfile (2 uvicorn workers), with this process's environment."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    # As in the Procfile, with the access log written (and thrown away) as it would be.
    command = [str(gunicorn), "config.asgi", "--worker-class", "uvicorn_worker.UvicornWorker"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2"]
    command += ["--access-logfile", "-", "--no-control-socket"]
    web = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return web
        except OSError:
            time.sleep(0.2)
    web.kill()
    raise SystemExit("gunicorn did not start within 30 s")


def start_relay(log_path: Path | None = None) -> subprocess.Popen:
    """The Procfile's relay, which publishes what submits commit, with this environment."""
    output = log_path.open("w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "manage.py", "tasks_relay"],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def stop_web(web: subprocess.Popen) -> None:
    web.terminate()
    web.wait(timeout=30)


def percentile(ordered: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted samples lie (nearest rank)."""
    return ordered[max(0, int(len(ordered) * fraction) - 1)]
