"""The service deployed on the test's hosts as docs/deployment.md says, step by step.

- Every host gets the same settings, from the environment only (no DJANGO_SETTINGS_MODULE:
  the project's own settings, DEBUG off) and nothing of the test process's environment but
  its PATH, behind the virtualenv's ``bin`` as ``bin/serve`` puts it; each host has its own
  DJANGO_VAR_DIR, since hosts share no disk ("Production settings", "Object storage").
- The web host migrates and collects the static files ("At each deploy"), gets an admin
  and an API key ("Production settings"), and runs web, relay, webhooks and beat, one each
  ("Process types", "Several hosts"); each worker host runs one worker.
- Each process is the Procfile's line, run by ``sh`` as honcho runs it; web binds to its
  host's address instead of 127.0.0.1, as the guide says for a proxy on another host.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import BASE_DIR, procfile_line
from tests.integration.fleet import FAST_TIMINGS
from tests.integration.multihost.network import Host
from tests.integration.processes import ProcessGroup, ServiceProcess

WEB_PORT = 8000
# The settings a deployment may change that the test does change, each documented in
# docs/configuration.md. One user submits everything here, so the per-user limits of
# docs/fair-use.md are raised ("Production settings": the limits, if the defaults do not
# suit your users); lost workers, and the locks of a host gone mid-transaction, are found
# within seconds instead of minutes.
TEST_TUNINGS = {
    "API_SUBMIT_RATE": "100000/min",
    "TASKS_MAX_RUNNING_PER_USER": "1000",
    "DJANGO_DB_DEAD_CLIENT_SECONDS": "10",
    **FAST_TIMINGS,
}
READY_LINES = {
    "relay": "relay started",
    "webhooks": "webhooks sender started",
    "worker": " ready.",
    "beat": "beat: Starting...",
}


class Deployment(ProcessGroup):
    """The processes of the service on the hosts; stop_all() ends each by its pid."""

    def __init__(self, *, hosts: dict[str, Host], settings: dict[str, str], log_dir: Path):
        self.hosts = hosts
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []
        web = hosts["web"]
        self.web_url = f"http://{web.address}:{WEB_PORT}"
        self.settings = {
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": web.address,
            **settings,
            **TEST_TUNINGS,
        }

    def environment(self, host: Host) -> dict[str, str]:
        var_dir = self.log_dir / f"var-{host.name}"
        var_dir.mkdir(exist_ok=True)
        venv_bin = Path(sys.executable).parent
        environment = {
            "PATH": f"{venv_bin}:{os.environ['PATH']}",
            "LANG": "C.UTF-8",
            "HOME": str(var_dir),
            "DJANGO_VAR_DIR": str(var_dir),
            **self.settings,
        }
        if host.name == "web":
            prometheus_dir = var_dir / "prometheus"
            prometheus_dir.mkdir(exist_ok=True)
            environment.update(PORT=str(WEB_PORT), PROMETHEUS_MULTIPROC_DIR=str(prometheus_dir))
        return environment

    def run(self, host_name: str, shell_command: str) -> str:
        """Run a command on a host to its end, as an operator would; its output."""
        host = self.hosts[host_name]
        done = subprocess.run(
            host.command(shell_command),
            cwd=BASE_DIR,
            env=self.environment(host),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{shell_command} on {host_name}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, host_name: str, process_type: str) -> ServiceProcess:
        """Start the Procfile's ``process_type`` on a host (not waiting for it)."""
        line = procfile_line(process_type)
        if process_type == "web":
            assert line.count("--bind 127.0.0.1:$PORT") == 1, line
            line = line.replace("--bind 127.0.0.1:", f"--bind {self.hosts[host_name].address}:")
        return self.start_command(host_name, process_type, line)

    def start_command(self, host_name: str, name: str, shell_command: str) -> ServiceProcess:
        """Start ``shell_command`` on a host, as ``<name>@<host>`` (not waiting for it)."""
        host = self.hosts[host_name]
        process = ServiceProcess(
            f"{name}@{host_name}",
            host.command(shell_command),
            env=self.environment(host),
            log_path=self.log_dir / f"{len(self.processes)}-{name}-{host_name}.log",
        )
        self.processes.append(process)
        return process

    def wait_until_ready(self, process: ServiceProcess) -> None:
        process_type = process.name.partition("@")[0]
        process.wait_for_log(READY_LINES[process_type])
