"""Who is calling and where: account, region and caller identity of a request.

Resolved exactly as moto resolves them, so an extension handler and moto's own
handlers always look at the same backend (``backends[account_id][region]``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

DEFAULT_REGION = "us-east-1"

# "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/codepipeline/aws4_request, ..."
_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class RequestContext:
    access_key: str
    account_id: str
    region: str
    signing_service: str | None

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> RequestContext:
        """Read the SigV4 credential scope; unsigned requests get moto's defaults.

        Account precedence mirrors ``moto.core.responses.BaseResponse``:
        ``MOTO_ACCOUNT_ID``, then the ``x-moto-account-id`` header, then the
        account an IAM access key belongs to, then 123456789012.
        """
        match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        access_key, region, service = match.groups() if match else ("AKIAEXAMPLE", DEFAULT_REGION, None)
        account_id = (
            os.environ.get("MOTO_ACCOUNT_ID")
            or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
            or get_account_id_from(access_key)
            or DEFAULT_ACCOUNT_ID
        )
        return cls(access_key=access_key, account_id=account_id, region=region, signing_service=service)

    @property
    def partition(self) -> str:
        return get_partition(self.region)

    def caller_arn(self) -> str:
        """The ARN STS ``GetCallerIdentity`` on this emulator returns for the caller."""
        sts = sts_backends[self.account_id][self.partition]
        return sts.get_caller_identity(self.access_key, self.region)[1]
