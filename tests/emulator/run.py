#!/usr/bin/env python3
"""Run the local AWS emulator and a local Kubernetes cluster, optionally around one command.

    .venv/bin/python tests/emulator/run.py --endpoints target/emulators.json [-- CMD ARGS...]

The AWS emulator (moto + ``aws_ext``, plain HTTP) runs as a thread of this
process; the Kubernetes cluster is a real control plane (``local_cluster``:
etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as
child processes, the EKS TokenReview webhook and the TLS fault proxy as
threads), built once by ``tests/scripts/setup``. Everything listens on free
ports of 127.0.0.1; the coordinates are written atomically to the endpoints
file:

    {"region": "us-east-1", "account_id": "123456789012",
     "aws": {"endpoint": "http://127.0.0.1:PORT", "access_key_id": "testing",
             "secret_access_key": "testing"},
     "kubernetes": {"server": "https://127.0.0.1:PORT"     (the fault proxy: what DescribeCluster gives),
                    "apiserver": "https://127.0.0.1:PORT"  (kube-apiserver itself),
                    "ca_data": "<base64 CA PEM>",
                    "static_token": "<the cluster admin's token, for test tooling>",
                    "version": "v1.37.2",
                    "deploy_user": "<the user eks-deploy's EKS token maps to>",
                    "deploy_groups": ["eks-deploy"]},
     "admin": "http://127.0.0.1:PORT/_emulator"}

With a command, it runs with ``EMULATORS_FILE``, ``AWS_ENDPOINT_URL``, test
credentials and region added to the environment; SIGINT/SIGTERM are forwarded
to it; when it exits, everything stops (no process is left behind, even if
this one is killed: the cluster's processes die with it), the endpoints file
is deleted and this process exits with the command's status (128+N if signal N
killed it). Without a command, the emulators serve until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Start-up is measured from here; moto and the cluster, the slow parts, start in
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


def start_aws_server(app: Any) -> tuple[Any, threading.Thread]:
    """Serve ``app`` on a free port of 127.0.0.1 from a daemon thread.

    Uses moto's request handler (it keeps header names with underscores, which
    S3 metadata needs) without werkzeug's per-request access log, and with
    connections kept alive as AWS keeps them (see ``keep_alive_handler``).
    """
    from moto.server import MotoRequestHandler
    from werkzeug.serving import make_server

    server = make_server(HOST, 0, app, threaded=True, request_handler=keep_alive_handler(MotoRequestHandler))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="aws-emulator", daemon=True
    )
    thread.start()
    return server, thread


def keep_alive_handler(base: type) -> type:
    """``base`` (a werkzeug request handler) keeping HTTP/1.1 connections alive, quietly.

    AWS endpoints keep a connection open across requests, and the SDK's client reuses it: a call
    costs no TCP set-up. Werkzeug's development server closes every connection after one answer
    (it cannot tell where an unread body ends and the next request begins), so against it every
    call would pay a connection the functions never pay in AWS, and the benchmark would count
    it. Here a request's body is read whole first (by its Content-Length) and given to the
    application from memory, so the connection stays at the next request's first byte and can
    be kept; a request whose end cannot be known that way (a chunked body, or one waiting for
    ``100 Continue``) still gets ``Connection: close``. The answer leaves in several writes
    (headers, chunks), hence no Nagle delay.
    """
    import io

    class KeepAliveRequestHandler(base):  # type: ignore[misc, valid-type]
        disable_nagle_algorithm = True
        keep_alive = False

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass

        def run_wsgi(self) -> None:
            length = self.headers.get("Content-Length") or "0"
            delimited = (
                "Transfer-Encoding" not in self.headers
                and not self.headers.get("Expect")
                and length.isdigit()
            )
            if not delimited:
                self.keep_alive = False
                return super().run_wsgi()
            socket_reader = self.rfile
            # Werkzeug reads (and, after the answer, drains) wsgi.input through self.rfile: from
            # memory, neither touches the next request waiting on the socket.
            self.rfile = io.BytesIO(socket_reader.read(int(length)))
            self.keep_alive = True
            try:
                super().run_wsgi()
            finally:
                self.rfile = socket_reader

        def send_header(self, keyword: str, value: str) -> None:
            if self.keep_alive and keyword.lower() == "connection" and value.lower() == "close" and not self.close_connection:
                return
            super().send_header(keyword, value)

    return KeepAliveRequestHandler


class Emulators:
    """The two servers of one run; ``stop`` is safe to call at any point."""

    def __init__(self) -> None:
        self.kube: Any = None
        self.aws_server: Any = None
        self.aws_thread: threading.Thread | None = None

    def start(self) -> dict[str, Any]:
        """Start the cluster and the AWS emulator, and return the endpoints document."""
        # moto, the slow import, loads while the control plane boots.
        importer = threading.Thread(target=_import_aws_emulator, name="import-moto", daemon=True)
        importer.start()
        from local_cluster import LocalCluster

        from aws_ext.app import known_cluster_names

        self.kube = LocalCluster(
            credentials={ACCESS_KEY_ID: SECRET_ACCESS_KEY}, account_id=ACCOUNT_ID, cluster_names=known_cluster_names
        )
        self.kube.launch()
        log(
            f"Kubernetes {self.kube.version} on {self.kube.apiserver_url} in {self.kube.started_in:.1f} s "
            f"(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok); "
            f"clients through the fault proxy on {self.kube.server_url}"
        )
        importer.join()
        from aws_ext import make_app

        self.aws_server, self.aws_thread = start_aws_server(make_app(self.kube))
        aws_url = f"http://{HOST}:{self.aws_server.server_port}"
        log(f"AWS emulator on {aws_url} (admin API {aws_url}/_emulator)")
        return {
            "region": REGION,
            "account_id": ACCOUNT_ID,
            "aws": {"endpoint": aws_url, "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY},
            "kubernetes": self.kube.endpoints(),
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


def _import_aws_emulator() -> None:
    import aws_ext  # noqa: F401
    import moto.server  # noqa: F401


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
    from control_plane import die_with_parent

    try:
        # Killed with the runner too: without the emulators the command has nothing to talk to.
        relay.child = subprocess.Popen(command, env=env, preexec_fn=die_with_parent(signal.SIGTERM))
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
        prog="run.py", description="Run the local AWS emulator and Kubernetes cluster [around a command given after --]."
    )
    parser.add_argument("--endpoints", required=True, type=Path, help="where to write the endpoints JSON file")
    args = parser.parse_args(own)
    if "--" in argv and not command:
        parser.error("no command after --")
    return args, command


def main(argv: list[str] | None = None) -> int:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    relay = SignalRelay()
    relay.install()
    endpoints_file = args.endpoints.resolve()
    emulators = Emulators()
    try:
        try:
            endpoints = emulators.start()
        except RuntimeError as error:  # the cluster's binaries are missing, or it did not start
            log(f"cannot start: {error}")
            return 1
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
