"""The local EKS cluster: the real control plane, the EKS TokenReview webhook and the fault proxy.

What the AWS emulator's EKS and its admin API see of Kubernetes:
``server_url`` and ``ca_pem`` (what DescribeCluster answers: the fault proxy,
with the cluster CA, which signed both the proxy's and the API server's
certificates), the request log and faults of the proxy, and ``reset``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from cluster_binaries import locate_all
from control_plane import ADMIN_USER, HOST, Authority, ControlPlane, serving_context
from eks_token import EksTokenVerifier
from fault_proxy import FaultProxy
from token_review import (
    CallerIdentity,
    TokenReviewer,
    TokenReviewServer,
    access_entries_from_template,
    deploy_entry,
)

ROOT = Path(__file__).resolve().parent.parent.parent
PIPELINE_TEMPLATE = ROOT / "infra" / "pipeline.yaml"
#: The role eks-deploy runs as locally, and its session: Lambda names the session after the function.
DEPLOY_ROLE = "eks-cicd-EksDeployRole"
DEPLOY_SESSION = "eks-deploy"

__all__ = ["LocalCluster", "ADMIN_USER"]


class LocalCluster:
    """One cluster for one run of the emulators; ``stop`` ends every process it started."""

    def __init__(
        self,
        credentials: dict[str, str],
        account_id: str,
        cluster_names: Callable[[], Iterable[str]],
    ) -> None:
        self.authority = Authority()
        entry = deploy_entry(access_entries_from_template(PIPELINE_TEMPLATE), PIPELINE_TEMPLATE)
        self._account_id = account_id
        self._callers = {key: CallerIdentity(account_id, DEPLOY_ROLE, DEPLOY_SESSION) for key in credentials}
        self.reviewer = TokenReviewer(
            EksTokenVerifier(
                credentials=_SessionCredentials(credentials),
                cluster_names=cluster_names,
                session_token_of=_session_token_of,
            ),
            callers=self._caller,
            entry=entry,
        )
        self.deploy_user = entry.username_for(CallerIdentity(account_id, DEPLOY_ROLE, DEPLOY_SESSION))
        self.deploy_groups = list(entry.groups)
        self.control_plane: ControlPlane | None = None
        self.webhook: TokenReviewServer | None = None
        self.proxy: FaultProxy | None = None
        self.started_in: float | None = None

    def _caller(self, access_key: str) -> CallerIdentity | None:
        """The role session holding ``access_key``: eks-deploy's own (a static key), or one STS
        AssumeRole made (eks-deploy in the role of another account's environment)."""
        if access_key in self._callers:
            return self._callers[access_key]
        session = _live_session(access_key)
        return None if session is None else CallerIdentity.from_arn(session.arn)

    def caller_role_arn(self, access_key: str) -> str | None:
        """The IAM role a static key stands for locally (STS AssumeRole's caller), else None."""
        caller = self._callers.get(access_key)
        return None if caller is None else caller.role_arn

    def launch(self) -> None:
        """Starts the webhook, etcd and kube-apiserver; :meth:`finish_start` waits for them.

        Runs on the main thread: the processes die with the thread that started them.
        """
        self._started = time.monotonic()
        binaries = locate_all()
        self.control_plane = ControlPlane(binaries, webhook_url="", authority=self.authority)
        folder = self.control_plane.folder
        self.webhook = TokenReviewServer(
            self.reviewer, serving_context(self.authority.issue("eks-token-review"), folder / "pki", "token-review")
        )
        self.webhook.start()
        self.control_plane.webhook_url = self.webhook.url
        self.control_plane.start()
        self.proxy = FaultProxy(
            upstream=(HOST, self.control_plane.api_port),
            upstream_tls=self.authority.client_context(),
            serving_tls=serving_context(self.authority.issue("kube-fault-proxy"), folder / "pki", "fault-proxy"),
            user_of=self.reviewer.user_of,
            admin_token=self.control_plane.admin_token,
            admin_user=ADMIN_USER,
        )
        self.proxy.start()
        self.started_in = time.monotonic() - self._started

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None

    # --- what the AWS emulator and the endpoints file tell -------------------------------

    @property
    def server_url(self) -> str:
        """Where eks-deploy reaches the cluster: the fault proxy."""
        return self._proxy().url

    @property
    def apiserver_url(self) -> str:
        return self._plane().server

    @property
    def ca_pem(self) -> bytes:
        return self.authority.pem

    @property
    def admin_token(self) -> str:
        return self._plane().admin_token

    @property
    def version(self) -> str | None:
        return self._plane().version

    def endpoints(self) -> dict[str, Any]:
        import base64

        return {
            "server": self.server_url,
            "apiserver": self.apiserver_url,
            "ca_data": base64.b64encode(self.ca_pem).decode(),
            "static_token": self.admin_token,
            "version": self.version,
            "deploy_user": self.deploy_user,
            "deploy_groups": self.deploy_groups,
        }

    # --- the admin API's Kubernetes part --------------------------------------------------

    def reset(self) -> None:
        self._proxy().reset()

    def request_log(self) -> list[dict[str, Any]]:
        return self._proxy().request_log()

    def clear_request_log(self) -> None:
        self._proxy().clear_request_log()

    def inject_faults(self, **fault: Any) -> None:
        self._proxy().inject(**fault)

    def drop_watches_after(self, events: int, count: int = 1, path_regex: str | None = None) -> None:
        self._proxy().cut_watches(events, count, path_regex)

    def faults(self) -> list[dict[str, Any]]:
        return self._proxy().faults()

    def _proxy(self) -> FaultProxy:
        if self.proxy is None:
            raise RuntimeError("the local cluster is not running")
        return self.proxy

    def _plane(self) -> ControlPlane:
        if self.control_plane is None:
            raise RuntimeError("the local cluster is not running")
        return self.control_plane


def _live_session(access_key: str) -> Any | None:
    """The unexpired STS AssumeRole session holding ``access_key``, if the AWS emulator made one.

    Imported when asked: moto loads after the cluster starts (``run.py``).
    """
    from datetime import datetime, timezone

    from aws_ext.sts import assumed_session

    session = assumed_session(access_key)
    if session is None:
        return None
    expiration = session.expiration
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=timezone.utc)
    return session if expiration > datetime.now(timezone.utc) else None


def _session_token_of(access_key: str) -> str | None:
    session = _live_session(access_key)
    return None if session is None else session.session_token


class _SessionCredentials:
    """The static keys' secrets, then those of the live role sessions STS AssumeRole made."""

    def __init__(self, static: dict[str, str]) -> None:
        self._static = dict(static)

    def get(self, access_key: str) -> str | None:
        if access_key in self._static:
            return self._static[access_key]
        session = _live_session(access_key)
        return None if session is None else session.secret_access_key
