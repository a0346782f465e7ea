#!/usr/bin/env python3
"""Run the local AWS and Kubernetes emulators, optionally around one command.

    .venv/bin/python tests/emulator/run.py --endpoints target/emulators.json \\
        [--step-seconds 0.2] [-- CMD ARGS...]

Both servers run as threads of this one process, so nothing can be orphaned:
when this process ends, they end.  The AWS emulator (moto + ``aws_ext``,
plain HTTP) and the Kubernetes emulator (TLS) listen on free ports of
127.0.0.1; their coordinates are written atomically to the endpoints file:

    {"region": "us-east-1", "account_id": "123456789012",
     "aws": {"endpoint": "http://127.0.0.1:PORT", "access_key_id": "testing",
             "secret_access_key": "testing"},
     "kubernetes": {"server": "https://127.0.0.1:PORT", "ca_data": "<base64 CA PEM>",
                    "static_token": "<token accepted besides EKS tokens>"},
     "admin": "http://127.0.0.1:PORT/_emulator"}

With a command, it runs with ``EMULATORS_FILE``, ``AWS_ENDPOINT_URL``, test
credentials and region added to the environment; SIGINT/SIGTERM are forwarded
to it; when it exits the servers stop, the endpoints file is deleted and this
process exits with the command's status (128+N if signal N killed it).
Without a command, the emulators serve until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Start-up is measured from here; moto, the slow part, is imported in
# Emulators.start() so that this clock covers it (and --help stays instant).
STARTED = time.monotonic()

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
STATIC_TOKEN_USER = "emulator-admin"


def combined_token_verifier(static_token: str, eks_verifier: Callable[[str], str]) -> Callable[[str], str]:
    """Accept the static test-tooling token (constant-time compare), else an EKS token."""
    expected = static_token.encode()

    def verify(token: str) -> str:
        if hmac.compare_digest(token.encode(), expected):
            return STATIC_TOKEN_USER
        return eks_verifier(token)

    return verify


def start_aws_server(app: Any) -> tuple[Any, threading.Thread]:
    """Serve ``app`` on a free port of 127.0.0.1 from a daemon thread.

    Uses moto's request handler (it keeps header names with underscores, which
    S3 metadata needs) without werkzeug's per-request access log.
    """
    from moto.server import MotoRequestHandler
    from werkzeug.serving import make_server

    class QuietRequestHandler(MotoRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass

    server = make_server(HOST, 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="aws-emulator", daemon=True
    )
    thread.start()
    return server, thread


class Emulators:
    """The two servers of one run; ``stop`` is safe to call at any point."""

    def __init__(self, step_seconds: float):
        self.step_seconds = step_seconds
        self.kube: Any = None
        self.aws_server: Any = None
        self.aws_thread: threading.Thread | None = None

    def start(self) -> dict[str, Any]:
        """Start both servers and return the endpoints document."""
        from aws_ext import known_cluster_names, make_app
        from eks_token import EksTokenVerifier
        from kube_emulator import KubeEmulator

        static_token = secrets.token_urlsafe(32)
        eks_verifier = EksTokenVerifier(
            credentials={ACCESS_KEY_ID: SECRET_ACCESS_KEY}, cluster_names=known_cluster_names
        )
        self.kube = KubeEmulator(
            host=HOST,
            port=0,
            token_verifier=combined_token_verifier(static_token, eks_verifier),
            step_seconds=self.step_seconds,
        )
        self.kube.start()
        log(f"Kubernetes emulator on {self.kube.server_url}")
        self.aws_server, self.aws_thread = start_aws_server(make_app(self.kube))
        aws_url = f"http://{HOST}:{self.aws_server.server_port}"
        log(f"AWS emulator on {aws_url} (admin API {aws_url}/_emulator)")
        return {
            "region": REGION,
            "account_id": ACCOUNT_ID,
            "aws": {"endpoint": aws_url, "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY},
            "kubernetes": {
                "server": self.kube.server_url,
                "ca_data": base64.b64encode(self.kube.ca_pem).decode(),
                "static_token": static_token,
            },
            "admin": f"{aws_url}/_emulator",
        }

    def stop(self) -> None:
        if self.aws_server is not None:
            self.aws_server.shutdown()
            self.aws_server.server_close()
            self.aws_thread.join(timeout=5)
            self.aws_server = None
        if self.kube is not None:
            self.kube.stop()
            self.kube = None


class SignalRelay:
    """SIGINT/SIGTERM: remember it, and pass it on to the child command if one runs."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.signum: int | None = None
        self.child: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self.received.set()
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)


def log(message: str) -> None:
    print(f"emulators: {message}", file=sys.stderr, flush=True)


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    """Readers see either no file or the complete document, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_command(command: list[str], endpoints_file: Path, endpoints: dict[str, Any], relay: SignalRelay) -> int:
    env = dict(os.environ)
    env.update(
        EMULATORS_FILE=str(endpoints_file),
        AWS_ENDPOINT_URL=endpoints["aws"]["endpoint"],
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
    )
    try:
        relay.child = subprocess.Popen(command, env=env)
    except OSError as exc:
        log(f"cannot run {command[0]}: {exc}")
        return 127 if isinstance(exc, FileNotFoundError) else 126
    if relay.received.is_set():  # a signal arrived while the child was being spawned
        relay.child.send_signal(relay.signum)
    status = relay.child.wait()
    return 128 - status if status < 0 else status


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Options before ``--``; everything after it is the command, untouched."""
    own, command = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="run.py", description="Run the local AWS and Kubernetes emulators [around a command given after --]."
    )
    parser.add_argument("--endpoints", required=True, type=Path, help="where to write the endpoints JSON file")
    parser.add_argument(
        "--step-seconds", type=float, default=0.2, help="Kubernetes emulator's simulated time step (default 0.2)"
    )
    args = parser.parse_args(own)
    if "--" in argv and not command:
        parser.error("no command after --")
    return args, command


def main(argv: list[str] | None = None) -> int:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    relay = SignalRelay()
    relay.install()
    endpoints_file = args.endpoints.resolve()
    emulators = Emulators(args.step_seconds)
    try:
        endpoints = emulators.start()
        write_atomically(endpoints_file, endpoints)
        log(f"ready in {time.monotonic() - STARTED:.2f} s; endpoints in {endpoints_file}")
        if command:
            if relay.received.is_set():
                return 128 + relay.signum
            return run_command(command, endpoints_file, endpoints, relay)
        while not relay.received.wait(timeout=1):
            pass
        return 0
    finally:
        endpoints_file.unlink(missing_ok=True)
        emulators.stop()


if __name__ == "__main__":
    sys.exit(main())
