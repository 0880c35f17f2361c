"""A real Net-SNMP snmptrapd for tests: started on free UDP ports, its log parsed into traps.

snmptrapd runs in the foreground (`-f`), reads only the configuration written here (`-C -c`),
keeps its persistent state in its own directory (SNMP_PERSISTENT_DIR), and logs every trap it
accepts to a file (`-Lf`). A trap it rejects (unknown community, wrong key, wrong engine id)
is not logged as a trap (snmptrapd may log a line such as "Authentication failed for <user>").
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

SYSTEM_BINARY_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin", "/sbin")

# Each trap is logged as a frame: its transport ("UDP: [127.0.0.1]:35986->[127.0.0.1]:17162"),
# then its varbinds separated by tabs (a long Hex-STRING wraps onto more lines), then END-TRAP.
BEGIN = "BEGIN-TRAP "
END = "END-TRAP"
TRAP_FORMAT = BEGIN + "%b\\n%v\\n" + END + "\\n"
_VARBIND = re.compile(r"^(?P<oid>\S+) = (?:(?P<type>[A-Za-z0-9-]+): )?(?P<value>.*)$", re.DOTALL)


def find_binary(name: str, package: str) -> str:
    """The path of a system binary, or fail the test naming the Debian package to install."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SYSTEM_BINARY_DIRECTORIES))
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package}", pytrace=False)
    return path


def free_udp_port(hosts: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """A UDP port nothing listens on right now, on every one of `hosts`."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        if all(_udp_port_is_free(host, port) for host in hosts[1:]):
            return port
    raise AssertionError(f"found no UDP port free on all of {hosts}")


def _udp_port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _string(text: str) -> bytes:
    # Without a MIB, Net-SNMP prints a printable string in double quotes, escaping '"' and '\'
    # with '\'; with a MIB whose DISPLAY-HINT applies, it prints the text as it is.
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL).encode("utf-8")
    return text.encode("utf-8")


def _value(kind: str | None, text: str) -> Any:
    text = text.strip()
    if kind == "STRING":
        return _string(text)
    if kind == "Hex-STRING":
        return bytes.fromhex("".join(text.split()))
    if kind in ("INTEGER", "Gauge32", "Counter32", "Counter64", "Unsigned32"):
        return int(text)
    if kind == "Timeticks":
        return int(text[1 : text.index(")")])
    if kind == "OID":
        return text.lstrip(".")
    return text


@dataclass(frozen=True)
class Trap:
    """One trap as snmptrapd logged it: the transport and the varbinds (OID, type, value) in order."""

    transport: str
    varbinds: tuple[tuple[str, str | None, Any], ...]
    text: str

    @property
    def oids(self) -> list[str]:
        return [oid for oid, _, _ in self.varbinds]

    def get(self, oid: str, default: Any = None) -> Any:
        """The value of a varbind, or `default` if the trap has none with that OID."""
        for name, _, value in self.varbinds:
            if name == oid:
                return value
        return default

    def value(self, oid: str) -> Any:
        """The value of a varbind the trap must have."""
        value = self.get(oid, KeyError)
        if value is KeyError:
            raise KeyError(oid)
        return value


def parse_log(text: str) -> list[Trap]:
    """Every complete trap in a snmptrapd log written with `TRAP_FORMAT`.

    Lines outside a BEGIN-TRAP/END-TRAP frame are snmptrapd's own messages, such as
    "Authentication failed for <user>"; a frame without its END-TRAP line is still being written.
    """
    traps = []
    transport: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith(BEGIN):
            transport, body = line[len(BEGIN) :], []
        elif line == END and transport is not None:
            traps.append(_trap(transport, "\n".join(body)))
            transport = None
        elif transport is not None:
            body.append(line)
    return traps


def _trap(transport: str, body: str) -> Trap:
    varbinds = []
    for field in body.split("\t"):
        if not field.strip():
            continue
        match = _VARBIND.match(field.strip("\n"))
        if match is None:
            raise ValueError(f"cannot parse the varbind {field!r} that snmptrapd logged")
        kind = match["type"]
        if kind is None and match["value"].strip() == '""':
            kind = "STRING"  # Net-SNMP prints an empty string without its type
        varbinds.append((match["oid"].lstrip("."), kind, _value(kind, match["value"])))
    return Trap(transport, tuple(varbinds), body)


class TrapReceiver:
    """snmptrapd listening on the given transport specifiers (`{port}` is filled in)."""

    def __init__(
        self,
        directory: Path,
        configuration: list[str],
        *,
        listen: tuple[str, ...] = ("udp:127.0.0.1:{port}",),
        mib_modules: str = "",
        mib_directories: list[Path] | None = None,
        numeric_oids: bool = True,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port(("127.0.0.1", "::1") if any("udp6" in spec for spec in listen) else ("127.0.0.1",))
        self.log_path = directory / "traps.log"
        self.configuration_path = directory / "snmptrapd.conf"
        self.configuration_path.write_text("\n".join(configuration) + "\n")
        command = [
            find_binary("snmptrapd", "snmptrapd"),
            "-f",
            "-Lf",
            str(self.log_path),
            "-C",
            "-c",
            str(self.configuration_path),
            "-m",
            mib_modules,
            "-p",
            str(directory / "snmptrapd.pid"),
            "-F",
            TRAP_FORMAT,
        ]
        if mib_directories:
            command += ["-M", ":".join(str(path) for path in mib_directories)]
        if numeric_oids:
            command.append("-On")
        command.append(",".join(spec.format(port=self.port) for spec in listen))
        environment = {**os.environ, "SNMP_PERSISTENT_DIR": str(directory / "persistent")}
        self.errors_path = directory / "stderr.log"
        with open(self.errors_path, "w") as errors:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=environment)
        self._wait_until_listening()

    def _wait_until_listening(self, seconds: float = 10.0) -> None:
        # snmptrapd logs its version once its sockets are open.
        deadline = time.monotonic() + seconds
        while "NET-SNMP version" not in self.log_text():
            if self.process.poll() is not None:
                errors = self.errors_path.read_text(errors="replace")
                pytest.fail(
                    f"snmptrapd exited with {self.process.returncode}: {errors}{self.log_text()}", pytrace=False
                )
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"snmptrapd did not start within {seconds:g} s: {self.log_text()}", pytrace=False)
            time.sleep(0.02)
        problems = [line for line in self.log_text().splitlines() if "rror" in line or "unknown" in line.lower()]
        if problems:
            self.stop()
            pytest.fail(f"snmptrapd rejected its configuration: {problems}", pytrace=False)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def traps(self) -> list[Trap]:
        return parse_log(self.log_text())

    def wait_for(self, predicate: Callable[[Trap], bool], what: str, seconds: float = 5.0) -> Trap:
        """The first logged trap that satisfies `predicate`; fail the test after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            for trap in self.traps():
                if predicate(trap):
                    return trap
            if time.monotonic() > deadline:
                pytest.fail(f"snmptrapd logged no trap with {what} within {seconds:g} s; log:\n{self.log_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
