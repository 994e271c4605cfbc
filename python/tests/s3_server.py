"""A real S3-compatible server on 127.0.0.1 for tests and benchmarks.

The server is s3s-fs (a Rust S3 implementation over a folder, checking SigV4 signatures),
installed once with ``cargo install`` into ``target/s3tools`` under the repository (``make
s3-server`` does the same). Each top-level folder of the served root is a bucket and each file
below it an object, so fixtures are written straight to disk with no upload step.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
S3S_VERSION = "0.14.1"
ACCESS_KEY = "zenith-test"
SECRET_KEY = "zenith-test-secret"
REGION = "us-east-1"


def s3s_binary() -> Path:
    """Path of the s3s-fs binary, installing it into ``target/s3tools`` when missing."""
    override = os.environ.get("ZENITH_S3S_FS")
    if override:
        return Path(override)
    root = REPO / "target" / "s3tools"
    binary = root / "bin" / "s3s-fs"
    if not binary.exists():
        cargo = shutil.which("cargo")
        if cargo is None:
            raise RuntimeError("s3s-fs is not installed and cargo is missing: run `make s3-server`")
        subprocess.run(
            [cargo, "install", f"s3s-fs@{S3S_VERSION}", "--features", "binary", "--locked",
             "--root", str(root)],
            check=True,
            env={**os.environ, "CARGO_TARGET_DIR": str(root / "build")},
        )
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A running s3s-fs serving ``root``; stop with :meth:`stop`."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, root: Path, timeout_s: float = 20.0) -> S3Server:
        root.mkdir(parents=True, exist_ok=True)
        binary = s3s_binary()
        port = free_port()
        process = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port", str(port), "--access-key", ACCESS_KEY,
             "--secret-key", SECRET_KEY, str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(root, port, process)
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"s3s-fs exited with {process.returncode} on port {port}")
            try:
                urllib.request.urlopen(server.endpoint, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # any HTTP status means the server answers
            except OSError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError("s3s-fs did not answer in time") from None
                time.sleep(0.05)
        return server

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bucket(self, name: str) -> Path:
        """Creates (if needed) and returns the folder of bucket ``name``."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def options(self, endpoint: str | None = None, **extra: str) -> dict[str, str]:
        """``storage_options`` for Zenith pointing at this server (or at a proxy before it)."""
        return {
            "endpoint": endpoint or self.endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region": REGION,
            "allow_http": "true",
            **extra,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
