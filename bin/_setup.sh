# shellcheck shell=bash
# Shared set-up of bin/serve and bin/test. Sourced, not run: it defines functions and
# moves to the repository root. Every step is idempotent, so running it again is cheap.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || return
VENV="$ROOT/.venv"
# Tools in .venv/bin (python, honcho, gunicorn, celery, ruff) come first, also for the
# Procfile's processes, which inherit this PATH.
export PATH="$VENV/bin:$PATH"

say() { printf '==> %s\n' "$*"; }

# port_is_free PORT: whether gunicorn could bind 127.0.0.1:PORT. With SO_REUSEADDR, as
# gunicorn binds: connections of a stopped run left in TIME_WAIT must not make the port
# look taken for a minute after Ctrl-C.
port_is_free() {
    python3 -c 'import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

# Create .venv if missing and install requirements.txt into it, unless it is unchanged
# since the last successful install (a hash stamp inside .venv remembers which one).
setup_venv() {
    local python="${PYTHON:-python3}" stamp="$VENV/.requirements.sha256" wanted
    if [[ ! -x "$VENV/bin/python" ]]; then
        if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "error: needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)" >&2
            return 1
        fi
        say "Creating .venv with $("$python" --version)"
        "$python" -m venv "$VENV"
    fi
    wanted="$("$VENV/bin/python" -c 'import hashlib, sys
print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' requirements.txt)"
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
        say "Installing requirements.txt into .venv"
        # Concurrent set-ups (bin/serve and bin/test at once) must not run pip together.
        # The lock is released before set-up returns, so no long-running process keeps it.
        if command -v flock >/dev/null; then exec 9>"$VENV/.setup.lock" && flock 9; fi
        if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
            "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
            echo "$wanted" >"$stamp"
        fi
        if command -v flock >/dev/null; then exec 9>&-; fi
    fi
}

# The browser tests drive Debian's chromium through Playwright, whose own browser download
# cannot run here. Installed when missing and this user may install packages; otherwise
# those tests say why and skip (under CI=true they fail instead).
setup_browser() {
    command -v chromium >/dev/null && return 0
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "note: chromium is missing and cannot be installed here (apt-get as root): the browser tests will be skipped" >&2
        return 0
    fi
    say "Installing Debian's chromium, for the browser tests"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; then
        # The package lists may be missing or stale on a fresh machine.
        apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
            echo "warning: could not install chromium: the browser tests will be skipped" >&2
    fi
}

# The tests of deploy/prometheus run promtool, from Debian's prometheus package. Installed
# when missing, like chromium (where it cannot be, those tests skip, and fail under CI=true),
# without starting the Prometheus server the package brings:
# a policy-rc.d that says "no" (exit 101) keeps its postinst from starting the service,
# and update-rc.d keeps it from starting at the next boot (init script and systemd unit).
setup_promtool() {
    command -v promtool >/dev/null && return 0
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "note: promtool is missing and cannot be installed here (apt-get as root): the alert rule tests will be skipped" >&2
        return 0
    fi
    say "Installing Debian's prometheus package, for promtool (its server is not started)"
    local policy=/usr/sbin/policy-rc.d ours=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
    fi
    local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus)
    if ! "${install[@]}" >/dev/null; then
        # The package lists may be missing or stale on a fresh machine.
        apt-get update -q >/dev/null && "${install[@]}" >/dev/null ||
            echo "warning: could not install prometheus: the alert rule tests will be skipped" >&2
    fi
    if [[ -n $ours ]]; then rm -f "$policy"; fi
    if command -v promtool >/dev/null; then
        update-rc.d prometheus disable >/dev/null 2>&1 ||
            echo "note: could not disable the prometheus service's start at boot" >&2
    fi
}

# Write .env from .env.example on the first run: development mode and a fresh secret key.
# An existing .env is never touched.
setup_dotenv() {
    [[ -e .env ]] && return 0
    say "Writing .env from .env.example (DJANGO_DEBUG=true, new DJANGO_SECRET_KEY)"
    (umask 077 && "$VENV/bin/python" - <<'PY'
import re
import secrets
from pathlib import Path

text = Path(".env.example").read_text()
for name, value in {
    "DJANGO_DEBUG": "true",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
}.items():
    text, count = re.subn(rf"(?m)^#?\s*{name}=.*$", f"{name}={value}", text, count=1)
    if not count:
        text += f"\n{name}={value}\n"
Path(".env.tmp").write_text(text)
Path(".env.tmp").replace(".env")
PY
    )
}

# The value of NAME from .env (its last uncommented line, quotes removed), or nothing.
# For the few variables the shell itself needs (PORT, TASKS_QUEUES); Django reads .env alone.
dotenv_get() {
    [[ -f .env ]] || return 0
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" .env | tail -n 1 |
        sed -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}
