"""A throwaway PostgreSQL server for the store tests and benchmarks: initdb in a temp dir, started on a
free port on 127.0.0.1, stopped at the end. Debian's ``postgresql`` package provides the binaries
(``/usr/lib/postgresql/*/bin``); ``initdb`` refuses to run as root, so as root it runs as an
unprivileged user (``agentkit-pg``, created if missing, else ``nobody``)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "agentkit-pg"


class Unavailable(RuntimeError):
    """No server could be started here (the reason says why)."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise Unavailable("PostgreSQL is not installed (no initdb; apt-get install postgresql)")


def _user() -> str | None:
    """The user to run the server as (None: the current one, when it is not root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(USER)
        return USER
    except KeyError:
        pass
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        capture_output=True,
        check=False,
    )
    if made.returncode == 0:
        return USER
    return "nobody"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """``with PostgresServer() as pg: pg.dsn`` — a fresh cluster, trust auth on 127.0.0.1 only."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync  # off for tests (a throwaway cluster); on for benchmarks
        self.bin = _bin_dir()
        self.user = _user()
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="agentkit-pg-"))
        self.data = self.root / "data"
        self.dsn = f"postgresql://agentkit@127.0.0.1:{self.port}/postgres"

    def _as_user(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> PostgresServer:
        if self.user is not None:
            shutil.chown(self.root, self.user)
        done = self._as_user(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "agentkit",
            "--auth=trust",
            "-E",
            "UTF8",
            *([] if self.fsync else ["--no-sync"]),
        )
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        fsync = "on" if self.fsync else "off"
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync={fsync} "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        done = self._as_user(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start"
        )
        if done.returncode != 0:
            log_file = self.root / "log"
            log = log_file.read_text(errors="replace")[-800:] if log_file.exists() else ""
            raise Unavailable(f"pg_ctl start failed: {done.stderr.strip()[-300:]} {log}")
        return self

    def stop(self) -> None:
        if self.data.exists():
            self._as_user("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
