"""Hosts made of Linux network namespaces on one bridge: a small data centre in a box.

Every run builds its own bridge and namespaces, named after the run (and the pid of the
process that builds them), on its own /24 of 10.77.0.0/16, so concurrent runs share
nothing. The building process stays in the machine's namespace and reaches every host
through the bridge's address (.254), as an operator's laptop on the same switch would.
Used by the multi-host suite (``tests/multihost``) and ``benchmarks/hosts.py``.

A host's processes run under ``ip netns exec`` inside a private UTS namespace carrying
the host's name, so ``socket.gethostname()`` — which a worker writes into its lease
owner — tells the hosts apart, as it does on real machines.

``Host.cut`` pulls the host's cable at the switch: its bridge-side veth goes down, so
its packets are dropped silently and open TCP connections hang, as in a real partition
(the host itself sees no error until its own timeouts fire). ``Host.heal`` plugs it back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

PREFIX = "dfmh"  # every namespace and link this harness creates starts with it
GATEWAY = 254  # the bridge's address: the test process's end of every host's cable
LOCK = Path(tempfile.gettempdir()) / "deltaflow-multihost.lock"
REQUIRED = ("ip", "unshare", "sh", "hostname")


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be built here (not root, no iproute2, no CAP_NET_ADMIN...)."""


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def check_support() -> None:
    """Raise ``NetnsUnavailable`` with the reason unless namespaces can be built here."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root (CAP_NET_ADMIN)")
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None]
    if missing:
        raise NetnsUnavailable(f"missing {', '.join(missing)} (Debian: iproute2, util-linux)")
    probe = f"{PREFIX}-probe-{os.getpid()}"
    try:
        ip("netns", "add", probe)
        ip("netns", "delete", probe)
    except RuntimeError as exc:
        raise NetnsUnavailable(f"cannot create a network namespace: {exc}") from exc


@dataclass
class Host:
    """One namespaced machine: its name (also its hostname), namespace, address, cable."""

    name: str
    netns: str
    address: str
    cable: str  # the bridge-side end of its veth pair, in the machine's namespace

    @property
    def launcher(self) -> list[str]:
        """A command prefix that runs (execs) its argument on this host, as this host."""
        return [
            "ip", "netns", "exec", self.netns,
            "unshare", "--uts", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.name,
        ]  # fmt: skip

    def command(self, argv: list[str]) -> list[str]:
        return self.launcher + argv

    def cut(self) -> None:
        ip("link", "set", self.cable, "down")

    def heal(self) -> None:
        ip("link", "set", self.cable, "up")


class Network:
    """A bridge on a /24 of its own, and the hosts plugged into it."""

    def __init__(self) -> None:
        sweep_leftovers()
        self.run = uuid.uuid4().hex[:5]
        self.tag = f"{PREFIX}-{os.getpid()}-{self.run}"  # names the run; carries our pid
        self.bridge = f"{PREFIX}{self.run}"  # interface names have at most 15 characters
        self.hosts: list[Host] = []
        with _locked():
            self.prefix = _free_prefix()
            ip("link", "add", self.bridge, "type", "bridge", "forward_delay", "0")
            try:
                ip("link", "set", self.bridge, "alias", self.tag)
                ip("addr", "add", f"{self.prefix}.{GATEWAY}/24", "dev", self.bridge)
                ip("link", "set", self.bridge, "up")
            except RuntimeError:
                self.destroy()
                raise

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        host = Host(
            name=name,
            netns=f"{self.tag}-{name}",
            address=f"{self.prefix}.{index}",
            cable=f"{self.bridge}c{index}",
        )
        self.hosts.append(host)  # before creating anything, so destroy() removes it
        inner = f"{self.bridge}p{index}"
        ip("netns", "add", host.netns)
        ip("link", "add", host.cable, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", host.netns)
        ip("link", "set", host.cable, "master", self.bridge, "up")
        ip("-n", host.netns, "link", "set", inner, "name", "eth0")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        return host

    def destroy(self) -> None:
        """Kill whatever still runs on the hosts, delete their namespaces and the bridge."""
        for host in self.hosts:
            _remove_netns(host.netns)
        with contextlib.suppress(RuntimeError):
            ip("link", "delete", self.bridge)


@contextlib.contextmanager
def _locked():  # type: ignore[no-untyped-def]
    """Serialise the choice of subnets between concurrent runs."""
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_prefix() -> str:
    """The first 10.77.N (N < 254) with no address on any interface of the machine."""
    used = set(re.findall(r"inet 10\.77\.(\d+)\.", ip("-4", "-o", "addr", "show")))
    for number in range(254):
        if str(number) not in used:
            return f"10.77.{number}"
    raise NetnsUnavailable("every 10.77.N.0/24 is in use")


def _remove_netns(name: str) -> None:
    with contextlib.suppress(RuntimeError):
        for pid in ip("netns", "pids", name).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(RuntimeError):
        ip("netns", "delete", name)  # the veth pair goes with it


def sweep_leftovers() -> None:
    """Remove what an earlier run left behind when it was killed (its pid is gone)."""
    for name in ip("netns", "list").split():
        if name.startswith(f"{PREFIX}-") and _owner_gone(name):
            _remove_netns(name)
    for line in ip("-o", "link", "show", "type", "bridge").splitlines():
        alias = re.search(rf"alias ({PREFIX}-\S+)", line)
        if alias and _owner_gone(alias.group(1)):
            with contextlib.suppress(RuntimeError):
                ip("link", "delete", line.split(":")[1].strip())


def _owner_gone(tag: str) -> bool:
    """``dfmh-<pid>-<run>...``: is the run's process gone?"""
    fields = tag.split("-")
    if len(fields) < 3 or not fields[1].isdigit():
        return False
    return not Path(f"/proc/{fields[1]}").exists()
