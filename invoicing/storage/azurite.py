"""Azurite, the local Azure Storage emulator (S1), as a context manager.

Used by the test fixtures and by ``make run`` (scripts/run_sample.py)::

    with Azurite() as azurite:
        os.environ["INVOICING_STORAGE"] = azurite.connection_string

Azurite runs from the repository's pinned npm package (``node_modules/.bin/azurite``) in its own
process group, on free ports chosen by the OS (read back from its "successfully listening at"
lines), with a throwaway data folder. ``stop()`` terminates the whole process group (then kills it
if it lingers) and removes the folder, so no process or file is ever left behind; ``stop()`` is
also registered with ``atexit`` as a last resort.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# The well-known development storage key (public, documented by Microsoft; not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
REPO_ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)


class AzuriteError(RuntimeError):
    """Azurite could not be started."""


def connection_string(
    blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1"
) -> str:
    base = f"http://{host}"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint={base}:{queue_port}/{ACCOUNT};"
        f"TableEndpoint={base}:{table_port}/{ACCOUNT};"
    )


class Azurite:
    """A private Azurite on free ports with a throwaway folder; stopped and removed on exit."""

    def __init__(
        self,
        executable: str | os.PathLike[str] | None = None,
        *,
        startup_timeout: float = 60.0,
        in_memory: bool = False,
        heap_mb: int | None = None,
    ):
        """``in_memory`` keeps the data in memory only (``--inMemoryPersistence``): Azurite
        otherwise rewrites its whole table file as JSON every few seconds, and a store of a year
        of history at the benchmark's full scale outgrows what one V8 string or heap can hold
        (node died on a V8 fatal error). ``heap_mb`` raises node's old-space limit for such a
        store."""
        self.executable = str(executable or REPO_ROOT / "node_modules" / ".bin" / "azurite")
        self.startup_timeout = startup_timeout
        self.in_memory = in_memory
        self.heap_mb = heap_mb
        self.folder: str | None = None
        self.process: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}
        self.output: deque[str] = deque(maxlen=200)
        self._reader: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Azurite:
        if not Path(self.executable).exists():
            raise AzuriteError(
                f"{self.executable} not found: run `make setup` (npm ci) to install Azurite"
            )
        self.folder = tempfile.mkdtemp(prefix="azurite-")
        command = [
            self.executable,
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            *(["--inMemoryPersistence"] if self.in_memory else ["--location", self.folder]),
            "--blobPort",
            "0",
            "--queuePort",
            "0",
            "--tablePort",
            "0",
        ]
        atexit.register(self.stop)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stop() takes node and its children
            cwd=self.folder,
            env=self._env(),
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read_output, args=(ready,), daemon=True)
        self._reader.start()
        if not ready.wait(self.startup_timeout) or len(self.ports) < 3:
            tail = "\n".join(self.output)
            self.stop()
            raise AzuriteError(
                f"Azurite did not start within {self.startup_timeout:.0f} s:\n{tail}"
            )
        return self

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.heap_mb:
            options = env.get("NODE_OPTIONS", "")
            env["NODE_OPTIONS"] = f"{options} --max-old-space-size={self.heap_mb}".strip()
        return env

    def _read_output(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:  # keeps draining so Azurite never blocks on a full pipe
            self.output.append(line.rstrip())
            match = _LISTENING.search(line)
            if match:
                self.ports[match.group(1).lower()] = int(match.group(2))
                if len(self.ports) == 3:
                    ready.set()
        ready.set()  # the process ended (a failed start): wake the waiter

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # node may leave children in the group after it exits: make sure none survive
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.stdout is not None:
                process.stdout.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        folder, self.folder = self.folder, None
        if folder:
            for _ in range(5):
                shutil.rmtree(folder, ignore_errors=True)
                if not Path(folder).exists():
                    break
                time.sleep(0.1)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- endpoints ------------------------------------------------------------------------------

    @property
    def connection_string(self) -> str:
        if len(self.ports) < 3:
            raise AzuriteError("Azurite is not running")
        return connection_string(self.ports["blob"], self.ports["queue"], self.ports["table"])

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None
