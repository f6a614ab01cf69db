"""deploy/systemd and deploy/docker-compose.yml: each runs the Procfile's command of its
process type, sets only variables the settings read, and passes its tool's own check
(``systemd-analyze verify``; ``docker compose config`` where compose is installed).

Plain file reads and two command-line checkers: no database, no worker, a few seconds.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs.test_docs import READ_ELSEWHERE, settings_modules, variables_read

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
CHECKOUT = "/srv/jobservice"  # where the units expect the checkout

PROCESS_TYPES = ["web", "relay", "webhooks", "worker", "beat"]
UNIT_OF = {
    "web": "jobservice-web.service",
    "relay": "jobservice-relay.service",
    "webhooks": "jobservice-webhooks.service",
    "worker": "jobservice-worker@.service",
    "beat": "jobservice-beat.service",
}
ALL_UNITS = [*UNIT_OF.values(), "jobservice-migrate.service", "jobservice.target"]
# Set for the process, not read by the settings: the venv first on PATH, as bin/serve does.
PROCESS_ENVIRONMENT = {"PATH"}


# --- reading the files ------------------------------------------------------------------


def procfile_commands() -> dict[str, list[str]]:
    """Each process type's command, split into words, without the leading ``exec``."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.match(r"^([a-z]+):\s*(.+)$", line)
        if match:
            words = shlex.split(match.group(2))
            commands[match.group(1)] = words[1:] if words[0] == "exec" else words
    return commands


def unit_entries(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of each line of a unit file; keys may repeat."""
    entries, section = [], ""
    for line in (SYSTEMD_DIR / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(name: str, key: str) -> list[str]:
    return [value for _, entry_key, value in unit_entries(name) if entry_key == key]


def unit_value(name: str, key: str) -> str:
    values = unit_values(name, key)
    assert len(values) == 1, f"{name}: expected one {key}=, found {values}"
    return values[0]


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_app_services() -> dict[str, dict]:
    """The services that run the project's image (built from deploy/docker/Dockerfile)."""
    return {name: svc for name, svc in compose()["services"].items() if "build" in svc}


def normalized(words: list[str]) -> list[str]:
    """A command with what may differ between Procfile, units and compose made equal: the
    venv's prefix of the program, the address gunicorn binds, the worker's queue list (the
    Procfile's ``$TASKS_QUEUES``, a unit instance's ``%I``) and a worker's node name (one
    per template instance)."""
    program, *rest = words
    result = [Path(program).name if "/bin/" in program else program]
    replaced = {"--bind": "ADDRESS", "-Q": "QUEUES"}
    words_left = iter(rest)
    for word in words_left:
        if word in replaced:
            next(words_left)
            result += [word, replaced[word]]
        elif word == "-n":
            next(words_left)
        else:
            result.append(word)
    return result


# --- the same commands as the Procfile ------------------------------------------------------


def test_procfile_names_the_five_process_types():
    assert sorted(procfile_commands()) == sorted(PROCESS_TYPES)


@pytest.mark.parametrize("process", PROCESS_TYPES)
def test_each_unit_runs_the_procfile_command_of_its_process(process):
    exec_start = shlex.split(unit_value(UNIT_OF[process], "ExecStart"))

    assert exec_start[0].startswith(f"{CHECKOUT}/.venv/bin/"), "the venv's own binary"
    assert normalized(exec_start) == normalized(procfile_commands()[process])


def test_the_deployment_specific_parts_of_the_unit_commands():
    web = shlex.split(unit_value(UNIT_OF["web"], "ExecStart"))
    worker = shlex.split(unit_value(UNIT_OF["worker"], "ExecStart"))

    assert web[web.index("--bind") + 1] == "127.0.0.1:${PORT}"  # for a TLS proxy on the host
    assert worker[worker.index("-Q") + 1] == "%I"  # the instance's queues, unescaped
    # The escaped instance: no comma, which would split `celery inspect ping -d`.
    assert worker[worker.index("-n") + 1] == "%i@%H"


@pytest.mark.parametrize("process", PROCESS_TYPES)
def test_each_compose_service_runs_the_procfile_command_of_its_process(process):
    command = compose_app_services()[process]["command"]

    assert isinstance(command, list), "exec form: the process is PID 1 and gets SIGTERM"
    assert normalized(command) == normalized(procfile_commands()[process])


def test_compose_web_binds_every_interface_and_the_worker_takes_the_procfile_queues():
    services = compose_app_services()
    web, worker = services["web"]["command"], services["worker"]["command"]

    assert web[web.index("--bind") + 1] == "0.0.0.0:8000"  # reached from other containers
    procfile_worker = procfile_commands()["worker"]
    assert worker[worker.index("-Q") + 1] == procfile_worker[procfile_worker.index("-Q") + 1]


# --- only variables the settings read -------------------------------------------------------


def settings_variables() -> set[str]:
    return set().union(*(variables_read(path.read_text()) for path in settings_modules()))


def unit_environment_names() -> dict[str, set[str]]:
    names = {}
    for unit in ALL_UNITS:
        assignments = [
            word for value in unit_values(unit, "Environment") for word in shlex.split(value)
        ]
        names[unit] = {assignment.partition("=")[0] for assignment in assignments}
    return names


def env_example_names() -> set[str]:
    # "NAME=value", and "# NAME=value" for the optional ones.
    text = (SYSTEMD_DIR / "env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def test_environment_reader_finds_the_names():
    assert unit_environment_names()["jobservice-web.service"] >= {
        "PORT",
        "PROMETHEUS_MULTIPROC_DIR",
    }
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "TASKS_QUEUES"} <= env_example_names()
    assert "CELERY_BROKER_URL" in compose_app_services()["worker"]["environment"]


def test_units_env_example_and_compose_set_only_variables_the_settings_read():
    known = settings_variables() | READ_ELSEWHERE | PROCESS_ENVIRONMENT
    assert len(known) > 20, "the settings reader found too few variables: has settings changed?"
    unknown = {
        f"{unit}: {name}"
        for unit, names in unit_environment_names().items()
        for name in names - known
    }
    unknown |= {f"env.example: {name}" for name in env_example_names() - known}
    unknown |= {
        f"docker-compose.yml {service}: {name}"
        for service, svc in compose_app_services().items()
        for name in set(svc.get("environment") or {}) - known
    }

    assert not unknown, f"set, but no setting reads it: {sorted(unknown)}"


# --- the units themselves -------------------------------------------------------------------

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": f"{CHECKOUT}/var",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
}


@pytest.mark.parametrize("unit", [*UNIT_OF.values(), "jobservice-migrate.service"])
def test_each_service_runs_from_the_checkout_as_its_user_hardened(unit):
    assert unit_value(unit, "User") == "jobservice"
    assert unit_value(unit, "WorkingDirectory") == CHECKOUT
    assert unit_value(unit, "EnvironmentFile") == "/etc/jobservice/env"
    for key, value in HARDENING.items():
        assert unit_value(unit, key) == value, key
    assert unit_value(unit, "CapabilityBoundingSet") == ""


@pytest.mark.parametrize("process", PROCESS_TYPES)
def test_each_process_restarts_on_failure_and_stops_gracefully(process):
    unit = UNIT_OF[process]

    assert unit_value(unit, "Restart") == "on-failure"
    assert unit_value(unit, "KillSignal") == "SIGTERM"
    assert unit_value(unit, "KillMode") == "mixed"
    assert "jobservice.target" in unit_value(unit, "WantedBy")
    assert unit_value(unit, "PartOf") == "jobservice.target"


def test_stop_timeouts_outlast_the_graceful_stops():
    assert int(unit_value(UNIT_OF["web"], "TimeoutStopSec")) > 30  # gunicorn's graceful timeout
    assert int(unit_value(UNIT_OF["worker"], "TimeoutStopSec")) >= 300  # running tasks finish


def test_web_requires_the_migrations_and_the_others_are_ordered_after_them():
    assert "jobservice-migrate.service" in unit_value(UNIT_OF["web"], "Requires")
    for unit in UNIT_OF.values():
        assert "jobservice-migrate.service" in unit_value(unit, "After")
    commands = [
        shlex.split(value)[1:] for value in unit_values("jobservice-migrate.service", "ExecStart")
    ]
    assert commands == [
        ["manage.py", "migrate", "--noinput"],
        ["manage.py", "collectstatic", "--noinput", "-v0"],
    ]


@pytest.fixture
def verify(tmp_path):
    """``verify(*unit_names, edit=None)``: ``systemd-analyze verify`` on copies of the units
    whose /srv/jobservice is a folder here holding the venv's binaries (verify checks that
    each command exists); returns the return code and every line naming a jobservice unit."""
    executable = shutil.which("systemd-analyze")
    if executable is None:
        message = "systemd-analyze is missing (Debian's systemd package has it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    checkout = tmp_path / "jobservice"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / "var").mkdir()
    for program in ("python", "gunicorn", "celery"):
        installed = Path(sys.executable).parent / program
        (checkout / ".venv" / "bin" / program).symlink_to(
            installed if installed.exists() else sys.executable
        )
    units = tmp_path / "units"
    units.mkdir()
    for name in ALL_UNITS:
        (units / name).write_text((SYSTEMD_DIR / name).read_text().replace(CHECKOUT, str(checkout)))

    def run(*names: str, edit=None) -> tuple[int, list[str]]:
        if edit:
            edit(units)
        command = [executable, "verify", "--man=no", *(str(units / name) for name in names)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        lines = (done.stdout + done.stderr).splitlines()
        return done.returncode, [line for line in lines if "jobservice" in line]

    return run


@pytest.mark.parametrize(
    "unit",
    [name.replace("@.", "@default\\x2clong.") for name in ALL_UNITS],  # the template: an instance
)
def test_systemd_analyze_verifies_each_unit(verify, unit):
    returncode, problems = verify(unit)

    assert (returncode, problems) == (0, [])


def test_systemd_analyze_verify_reports_a_broken_unit(verify):
    def break_kill_mode(units: Path):
        path = units / "jobservice-beat.service"
        path.write_text(path.read_text().replace("KillMode=mixed", "KillMode=gently"))

    returncode, problems = verify("jobservice-beat.service", edit=break_kill_mode)

    # A key it cannot parse is only a warning (return code 0): hence the check of the lines.
    assert any("kill mode" in line.lower() for line in problems), problems


# --- Docker -----------------------------------------------------------------------------------


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        version = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if version.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_the_file():
    command = compose_command()
    if command is None:
        pytest.skip("neither 'docker compose' (the plugin) nor docker-compose is installed")
    env = {**os.environ, "DJANGO_SECRET_KEY": "only-to-check-the-file"}
    checked = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_runs_each_process_type_after_migrate_with_a_health_check():
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", *PROCESS_TYPES} <= set(services)

    for name in PROCESS_TYPES:
        service = services[name]
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name
        assert service["healthcheck"]["test"], name
        assert not service["healthcheck"].get("disable"), name
        assert service["restart"] == "unless-stopped", name
        assert "media:/srv/jobservice/var/media" in service["volumes"], name
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_compose_health_checks_ask_the_right_thing():
    services = compose()["services"]

    def probe(name: str) -> str:
        return " ".join(services[name]["healthcheck"]["test"])

    assert "/api/v1/health/live" in probe("web")
    assert "pg_isready" in probe("postgres")
    assert "redis-cli ping" in probe("redis")
    assert "inspect ping -d celery@$$HOSTNAME" in probe("worker")


def test_compose_worker_scales_and_stops_like_the_units():
    worker = compose()["services"]["worker"]

    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N
    assert worker["stop_grace_period"] == "10m"
    assert compose()["services"]["web"]["stop_grace_period"] == "45s"


def test_the_image_runs_as_a_user_and_bakes_no_secret():
    text = DOCKERFILE.read_text()
    instructions = [
        line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))
    ]

    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install -r /tmp/requirements.txt" in text
    assert "collectstatic" in text
    assert instructions.index("USER") < instructions.index("CMD")
    assert re.search(r"^USER\s+(?!root)\S+", text, re.MULTILINE)
    secrets = re.findall(r"^(?:ENV|ARG)\b.*SECRET", text, re.MULTILINE)
    assert not secrets, "a secret in ENV or ARG stays in the image"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "var", ".git"} <= set(ignored)
