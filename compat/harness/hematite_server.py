"""Start (or locate) the server under test for the Python compatibility suites.

Shared by compat/python and compat/python-legacy. Standard library only, because the
legacy suite runs in its own virtualenv.

* ``HEMATITE_URL`` set (e.g. ``http://127.0.0.1:10001``): use that endpoint, start nothing.
* otherwise start ``$HEMATITE_BIN`` (default ``<repo>/target/debug/hematite``) as
  ``hematite serve --listen 127.0.0.1:PORT --in-memory`` on a free port, wait until the
  port accepts TCP connections (10 s at most) and stop it with SIGTERM at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@dataclass
class Server:
    """Where the server under test listens."""

    base_url: str  # e.g. http://127.0.0.1:PORT (no trailing slash)
    account: str = DEV_ACCOUNT
    key: str = DEV_KEY
    proc: Optional[subprocess.Popen] = field(default=None, repr=False)
    log_path: Optional[str] = None
    data_dir: Optional[str] = None
    amqp_port: Optional[int] = None
    sb_admin_port: Optional[int] = None

    def sb_connection_string(self, *, key: str = "SAS_KEY_VALUE") -> str:
        """The emulator's connection string, pointed at this server's AMQP port."""
        return (
            f"Endpoint=sb://localhost:{self.amqp_port};"
            "SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={key};UseDevelopmentEmulator=true;"
        )

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[1].split("/", 1)[0]

    @property
    def account_url(self) -> str:
        return f"{self.base_url}/{self.account}"

    @property
    def secondary_url(self) -> str:
        return f"{self.base_url}/{self.account}-secondary"

    @property
    def secondary_hostname(self) -> str:
        """Secondary endpoint in the form azure-storage-queue 12.x wants for ``secondary_hostname=``
        (host[:port]/path, no scheme)."""
        return self.secondary_url.split("://", 1)[1]

    def connection_string(self, *, key: Optional[str] = None) -> str:
        return (
            f"DefaultEndpointsProtocol={self.base_url.split(':', 1)[0]};"
            f"AccountName={self.account};"
            f"AccountKey={key or self.key};"
            f"QueueEndpoint={self.account_url};"
        )

    def log_tail(self, limit: int = 4000) -> str:
        if not self.log_path:
            return ""
        try:
            return Path(self.log_path).read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def binary() -> Path:
    return Path(os.environ.get("HEMATITE_BIN") or REPO_ROOT / "target" / "debug" / "hematite")


def dev_cert(out_dir: str) -> dict:
    """A development CA and a server certificate for localhost/127.0.0.1, made by
    ``hematite dev-cert``: the paths of ``ca``, ``cert`` and ``key``."""
    subprocess.run(
        [str(binary()), "dev-cert", "--out", out_dir], check=True, stdout=subprocess.DEVNULL
    )
    return {name: str(Path(out_dir) / f"{name}.pem") for name in ("ca", "cert", "key")}


def fresh_postgres_database(prefix: str) -> str:
    """A new, empty database on the PostgreSQL server ``$HEMATITE_TEST_POSTGRES`` (which
    ``scripts/test`` starts), for one test's nodes; its URL."""
    url = os.environ.get("HEMATITE_TEST_POSTGRES")
    if not url:
        raise RuntimeError(
            "set HEMATITE_TEST_POSTGRES to a PostgreSQL URL (scripts/test starts a cluster and sets it)"
        )
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", url, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return url.rsplit("/", 1)[0] + "/" + name


def start(
    data_dir: Optional[str] = None,
    extra_args: Sequence[str] = (),
    https: bool = False,
    servicebus: bool = False,
    env: Optional[dict] = None,
) -> Server:
    """Starts a server; ``https`` says ``extra_args`` make it serve TLS. Service Bus is
    served, on free ports, only when ``servicebus`` asks for it (``sb_config``: a path
    to an emulator ``config.json`` passed in ``extra_args``). ``env`` adds to the server's
    environment."""
    url = os.environ.get("HEMATITE_URL", "").strip()
    if url:
        return Server(base_url=url.rstrip("/"))

    exe = binary()
    if not exe.is_file():
        raise RuntimeError(
            f"hematite binary not found at {exe}. Build it with `cargo build -p hematite`, "
            "or set HEMATITE_BIN to a binary, or HEMATITE_URL to a running server."
        )
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="hematite-compat-", suffix=".log", delete=False)
    # The Python suites run on the server's default, durable store (in a scratch data dir);
    # HEMATITE_TEST_STORE=memory switches to --in-memory. The JS suite runs in memory, so both
    # stores face an official SDK.
    # `data_dir` given: reuse it (a restart); the caller owns and removes it.
    keep_dir = data_dir is not None
    if data_dir is None and os.environ.get("HEMATITE_TEST_STORE", "embedded") == "memory":
        store_args = ["--in-memory"]
    else:
        data_dir = data_dir or tempfile.mkdtemp(prefix="hematite-compat-data-")
        store_args = ["--data-dir", data_dir]
    amqp_port = sb_admin_port = None
    if servicebus:
        amqp_port, sb_admin_port = _free_port(), _free_port()
        sb_args = [
            "--amqp-listen",
            f"127.0.0.1:{amqp_port}",
            "--sb-admin-listen",
            f"127.0.0.1:{sb_admin_port}",
        ]
    else:
        sb_args = ["--no-servicebus"]
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            *store_args,
            *sb_args,
            *extra_args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    log.close()
    server = Server(
        base_url=f"{'https' if https else 'http'}://127.0.0.1:{port}",
        proc=proc,
        log_path=log.name,
        data_dir=None if keep_dir else data_dir,
        amqp_port=amqp_port,
        sb_admin_port=sb_admin_port,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"hematite exited with code {proc.returncode} before accepting connections.\n"
                f"--- server log ---\n{server.log_tail()}"
            )
        if _port_accepts(port) and (amqp_port is None or _port_accepts(amqp_port)):
            return server
        time.sleep(0.05)
    stop(server)
    raise RuntimeError(
        f"hematite did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT_S} s.\n"
        f"--- server log ---\n{server.log_tail()}"
    )


def stop(server: Server) -> Optional[str]:
    """Stop a server we started. Returns an error message if it ignored SIGTERM."""
    proc = server.proc
    if proc is None or proc.poll() is not None:
        _remove_data(server)
        return None
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
        return None
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"hematite did not exit within {STOP_TIMEOUT_S} s of SIGTERM and was killed"
    finally:
        _remove_data(server)


def _remove_data(server: Server) -> None:
    if server.data_dir:
        shutil.rmtree(server.data_dir, ignore_errors=True)


def kill9(server: Server) -> None:
    """SIGKILL: no shutdown code runs, as in a crash."""
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()
