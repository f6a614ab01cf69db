"""Hosts for one test: a Linux network namespace each, on a bridge in the root namespace.

    root namespace: bridge mh<pid>br, 10.A.B.1 (PostgreSQL, Redis, S3, and the test itself)
      ├─ veth mh<pid>-web  ── namespace mh<pid>-web       10.A.B.2, hostname web
      ├─ veth mh<pid>-wa   ── namespace mh<pid>-worker-a  10.A.B.3, hostname worker-a
      └─ veth mh<pid>-wb   ── namespace mh<pid>-worker-b  10.A.B.4, hostname worker-b

A host's processes share no address but the bridge's with the other hosts; loopback is
each host's own. Each runs in a UTS namespace of its own too, so that ``hostname`` (and
with it Celery's default node name, ``celery@<hostname>``) differs from host to host, as
on separate machines. Names carry the test's pid, so concurrent runs never share one, and
``remove()`` deletes exactly what ``create()`` made.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=30)


def _ip_output(*arguments: str) -> str:
    return subprocess.run(
        ["ip", *arguments], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def namespaces_unavailable() -> str:
    """Why this machine cannot give a test its own network namespaces; empty if it can."""
    if os.geteuid() != 0:
        return "need root, to create network namespaces (ip netns) and veth pairs"
    for program in ("ip", "unshare", "hostname"):
        if shutil.which(program) is None:
            return f"need the {program!r} program (iproute2, util-linux)"
    probe = f"mh{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
        subprocess.run(
            ["ip", "netns", "exec", probe, "unshare", "--uts", "true"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except subprocess.CalledProcessError as error:
        return f"cannot create network and UTS namespaces here: {error.stderr.decode().strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return ""


def _free_subnet() -> str:
    """A /24 in 10.0.0.0/8 that no interface of the root namespace uses, picked by pid."""
    used = _ip_output("-o", "-4", "addr", "show")
    pid = os.getpid()
    for step in range(256):
        candidate = f"10.{200 + (pid + step) % 50}.{(pid // 50 + step) % 256}"
        if f" {candidate}." not in used:
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test's bridge")


@dataclass
class Host:
    """A namespace with one veth pair to the bridge; ``command()`` runs a program on it."""

    name: str
    namespace: str
    address: str
    link: str  # the root namespace's end of the veth pair: down = cut off
    is_connected: bool = True

    def command(self, shell_command: str) -> list[str]:
        """Arguments that run ``shell_command`` (sh syntax) on this host, as its hostname.

        Every step execs the next (ip, unshare, sh, and a command that starts with
        ``exec``), so the pid of the started process is that of the program itself.
        """
        return [
            *("ip", "netns", "exec", self.namespace, "unshare", "--uts", "sh", "-c"),
            f'hostname "$0" && {shell_command}',
            self.name,
        ]

    def cut(self) -> None:
        """Pull the cable: nothing goes in or out, and no peer is told."""
        _ip("link", "set", self.link, "down")
        self.is_connected = False

    def restore(self) -> None:
        _ip("link", "set", self.link, "up")
        self.is_connected = True


class Network:
    """A bridge and hosts on it; create() with the host names, remove() in a finally."""

    def __init__(self, host_names: list[str]):
        self.prefix = f"mh{os.getpid()}"
        self.bridge = f"{self.prefix}br"
        self.host_names = host_names
        self.address = ""  # the bridge's: services of the root namespace listen there
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._links: list[str] = []

    def create(self) -> "Network":
        subnet = _free_subnet()
        self.address = f"{subnet}.1"
        _ip("link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for number, name in enumerate(self.host_names, start=2):
            self.hosts[name] = self._add_host(name, f"{subnet}.{number}")
        return self

    def _add_host(self, name: str, address: str) -> Host:
        namespace = f"{self.prefix}-{name}"
        link, peer = f"{self.prefix}-{name[:2]}{name[-1]}", f"{self.prefix}-in"
        _ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        _ip("link", "add", link, "type", "veth", "peer", "name", peer, "netns", namespace)
        self._links.append(link)
        _ip("link", "set", link, "master", self.bridge, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", peer)
        _ip("-n", namespace, "link", "set", peer, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        return Host(name=name, namespace=namespace, address=address, link=link)

    def remove(self) -> None:
        """Delete the namespaces (and with them their ends of the veth pairs), then the
        root namespace's ends and the bridge; what is already gone is skipped."""
        for namespace in self._namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
        for link in reversed(self._links):
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
        self._namespaces.clear()
        self._links.clear()
