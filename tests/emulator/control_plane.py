"""A real Kubernetes control plane on 127.0.0.1, for the tests and the local flow.

etcd, kube-apiserver (TLS with a CA of its own, ``--authorization-mode=Node,RBAC``,
EKS tokens through a TokenReview webhook), kube-controller-manager (the
deployment, replicaset, garbage-collector, namespace and serviceaccount
controllers), kube-scheduler, and kwok, which plays the kubelet of a few fake
Nodes: it runs no containers and writes the pod status a kubelet would,
following ``tests/kubernetes/kwok-stages.yaml``.

The processes are this process's children: each gets ``PR_SET_PDEATHSIG``, so
even a ``kill -9`` of the runner takes them along, and :meth:`ControlPlane.stop`
ends them (SIGTERM, then SIGKILL) and removes their working folder. Their logs
are kept in that folder while they run, and shown when a start fails.
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STAGES = ROOT / "tests" / "kubernetes" / "kwok-stages.yaml"
HOST = "127.0.0.1"

#: The cluster admin, for test tooling and the flow's set-up (never for the function under test).
ADMIN_USER = "emulator-admin"
#: kwok's fake nodes: enough for the scheduler to spread replicas.
NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
CONTROLLERS = (
    # Takes the not-ready taint admission puts on every new Node off once kwok reports it Ready.
    "node-lifecycle-controller",
    "deployment-controller",
    "replicaset-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 2.0
PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane did not start."""


# --- certificates ----------------------------------------------------------------------


@dataclass
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class Authority:
    """The cluster's own CA: it signs the API server's, the fault proxy's and the webhook's certificates."""

    def __init__(self) -> None:
        self._key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eks-cicd local cluster CA")])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str) -> KeyPair:
        """A serving certificate for 127.0.0.1 and the names in-cluster clients use."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        names = [
            x509.IPAddress(ipaddress.ip_address(HOST)),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.DNSName("kubernetes.default.svc.cluster.local"),
        ]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        return KeyPair(certificate.public_bytes(serialization.Encoding.PEM), _pem(key))

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context trusting only this CA."""
        context = ssl.create_default_context(cadata=self.pem.decode())
        context.set_alpn_protocols(["http/1.1"])
        return context


def serving_context(pair: KeyPair, folder: Path, name: str) -> ssl.SSLContext:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    # HTTP/1.1 only: the proxy relays watches line by line, which HTTP/2 framing would not allow.
    context.set_alpn_protocols(["http/1.1"])
    return context


# --- processes -------------------------------------------------------------------------


def die_with_parent(signum: int = signal.SIGKILL):
    """For ``preexec_fn``: the child gets ``signum`` when the runner dies, however it dies."""
    parent = os.getpid()

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the runner died between fork and prctl
            os._exit(1)

    return arm


def sweep_abandoned(root: Path) -> None:
    """Removes the working folders of earlier runners that were killed (they could not)."""
    for folder in root.glob("eks-cicd-cluster-*"):
        try:
            runner = int((folder / "runner.pid").read_text())
            os.kill(runner, 0)
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(f"    {line}" for line in text[-lines:])


def kubeconfig(server: str, ca_pem: bytes, token: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "local", "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}
            ],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user"}}],
            "current-context": "local",
        }
    )


class ControlPlane:
    """The processes of one local cluster; ``stop`` is safe at any point, also twice."""

    def __init__(self, binaries: dict[str, Path], webhook_url: str, authority: Authority, folder: Path | None = None):
        self.binaries = binaries
        self.webhook_url = webhook_url
        self.authority = authority
        if folder is None:
            root = Path(_scratch_root() or tempfile.gettempdir())
            sweep_abandoned(root)
            folder = Path(tempfile.mkdtemp(prefix="eks-cicd-cluster-", dir=root))
            (folder / "runner.pid").write_text(str(os.getpid()))
        self.folder = folder
        (self.folder / "pki").mkdir(exist_ok=True)
        self.admin_token = secrets.token_urlsafe(32)
        self.components: list[Component] = []
        self.api_port = free_port()
        self.version: str | None = None
        self.keep_logs = False
        self._lock = threading.Lock()

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.api_port}"

    # --- start ---------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            # The logs stay for whoever reads the error: it names them.
            self.keep_logs = True
            self.stop()
            raise

    def _start(self) -> None:
        started = time.monotonic()
        pki = self.folder / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        serving = self.authority.issue("kube-apiserver")
        (pki / "ca.crt").write_bytes(self.authority.pem)
        (pki / "apiserver.crt").write_bytes(serving.cert_pem)
        (pki / "apiserver.key").write_bytes(serving.key_pem)
        signing = _key()
        (pki / "sa.key").write_bytes(_pem(signing))
        (pki / "sa.pub").write_bytes(
            signing.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        tokens = {
            ADMIN_USER: self.admin_token,
            "system:kube-controller-manager": secrets.token_urlsafe(32),
            "system:kube-scheduler": secrets.token_urlsafe(32),
            "system:kwok": secrets.token_urlsafe(32),
        }
        # The test tooling and the components are cluster admins (system:masters); the
        # function under test never is: it comes in through the webhook with its EKS token.
        (pki / "tokens.csv").write_text(
            "".join(f'{token},{user},{user},"system:masters"\n' for user, token in tokens.items())
        )
        (self.folder / "token-webhook.kubeconfig").write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "eks-token-review",
                            "cluster": {
                                "server": self.webhook_url,
                                "certificate-authority-data": base64.b64encode(self.authority.pem).decode(),
                            },
                        }
                    ],
                    "users": [{"name": "kube-apiserver", "user": {}}],
                    "contexts": [{"name": "webhook", "context": {"cluster": "eks-token-review", "user": "kube-apiserver"}}],
                    "current-context": "webhook",
                }
            )
        )
        for user, token in tokens.items():
            name = user.split(":")[-1]
            (self.folder / f"{name}.kubeconfig").write_text(kubeconfig(self.server, self.authority.pem, token))

        etcd_client, etcd_peer = free_port(), free_port()
        self._spawn(
            "etcd",
            [
                "--name=local",
                f"--data-dir={self.folder / 'etcd'}",
                f"--listen-client-urls=http://{HOST}:{etcd_client}",
                f"--advertise-client-urls=http://{HOST}:{etcd_client}",
                f"--listen-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-cluster=local=http://{HOST}:{etcd_peer}",
                # Test data: durability is worth nothing, each fsync is worth a lot.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://{HOST}:{etcd_client}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                # The endpoints of the `kubernetes` Service would be 127.0.0.1, which the lease
                # reconciler refuses; nothing in the cluster connects to it (kwok runs no pods).
                "--endpoint-reconciler-type=none",
                "--authorization-mode=Node,RBAC",
                f"--token-auth-file={pki / 'tokens.csv'}",
                f"--authentication-token-webhook-config-file={self.folder / 'token-webhook.kubeconfig'}",
                "--authentication-token-webhook-version=v1",
                # Every request is reviewed: a token that stops being valid is refused at once.
                "--authentication-token-webhook-cache-ttl=0s",
                "--profiling=false",
                "--v=0",
            ],
        )
        self._wait("kube-apiserver", self._apiserver_ready, started)
        shared = ["--leader-elect=false", f"--bind-address={HOST}", "--secure-port=0", "--v=0"]
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.folder / 'kube-controller-manager.kubeconfig'}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=false",
                *shared,
            ],
        )
        self._spawn("kube-scheduler", [f"--kubeconfig={self.folder / 'kube-scheduler.kubeconfig'}", *shared])
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.folder / 'kwok.kubeconfig'}",
                f"--config={STAGES}",
                "--manage-all-nodes=true",
                "--server-address=",
                "--node-lease-duration-seconds=40",
                "-v=WARN",
            ],
        )
        for node in NODES:
            self.request("POST", "/api/v1/nodes", _node(node))
        self._wait("nodes", self._nodes_ready, started)
        # The serviceaccount controller is working once the default namespace has its account.
        self._wait("kube-controller-manager", self._default_service_account, started)
        version = self.request("GET", "/version")
        self.version = version.get("gitVersion")

    def _spawn(self, name: str, arguments: list[str]) -> None:
        log = self.folder / f"{name}.log"
        handle = log.open("wb")
        try:
            process = subprocess.Popen(
                [str(self.binaries[name]), *arguments],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                preexec_fn=die_with_parent(),
            )
        finally:
            handle.close()
        with self._lock:
            self.components.append(Component(name, process, log))

    def _wait(self, what: str, ready, started: float) -> None:
        deadline = started + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            for component in self.components:
                if component.process.poll() is not None:
                    raise ControlPlaneError(
                        f"{component.name} exited with {component.process.returncode} while waiting for {what}; "
                        f"its log ({component.log}):\n{component.tail()}"
                    )
            try:
                if ready():
                    return
            except (OSError, ValueError, urllib.error.URLError) as error:
                last = str(error)
            time.sleep(0.05)
        logs = "\n".join(f"  {c.name} ({c.log}):\n{c.tail(10)}" for c in self.components)
        raise ControlPlaneError(f"{what} not ready within {START_TIMEOUT:.0f} s ({last or 'not yet'}):\n{logs}")

    def _apiserver_ready(self) -> bool:
        try:
            return self._call("GET", "/readyz")[0] == 200
        except urllib.error.HTTPError:
            return False

    def _nodes_ready(self) -> bool:
        """Every node Ready (kwok) and schedulable (the not-ready taint taken off)."""
        nodes = self.request("GET", "/api/v1/nodes")["items"]
        ready = {
            node["metadata"]["name"]
            for node in nodes
            if any(
                condition["type"] == "Ready" and condition["status"] == "True"
                for condition in node.get("status", {}).get("conditions", [])
            )
            and not node.get("spec", {}).get("taints")
        }
        return set(NODES) <= ready

    def _default_service_account(self) -> bool:
        try:
            self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise

    # --- talking to it -------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        with urllib.request.urlopen(request, context=self.authority.client_context(), timeout=10) as response:
            return response.status, response.read()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request as the cluster admin; the decoded JSON answer."""
        return json.loads(self._call(method, path, body)[1] or b"null")

    # --- stop ----------------------------------------------------------------------------

    def stop(self, keep_logs: bool = False) -> None:
        keep_logs = keep_logs or self.keep_logs
        with self._lock:
            components, self.components = list(reversed(self.components)), []
        for component in components:
            if component.process.poll() is None:
                component.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for component in components:
            try:
                component.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                component.process.kill()
                component.process.wait()
        if not keep_logs:
            shutil.rmtree(self.folder, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {component.name: component.process.pid for component in self.components}


def _node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
    }


def _scratch_root() -> str | None:
    """Memory-backed when the machine has it: etcd and the logs never wait for a disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
