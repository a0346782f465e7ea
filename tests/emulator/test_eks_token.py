"""Tests of eks_token.EksTokenVerifier.

Tokens are made two ways: by botocore (what ``aws eks get-token`` does) and by
a small stdlib SigV4 presigner written from the AWS specification, so the
verifier (which recomputes signatures with botocore) is also checked against
a signer that shares no code with it - as the Rust token generator doesn't.

Run: cd /work/main && .venv/bin/python -m unittest discover -s tests/emulator -p 'test_eks_token.py' -v
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
import unittest
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import botocore.session

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eks_token import TOKEN_PREFIX, EksTokenVerifier, TokenError, sts_hosts  # noqa: E402

ACCESS_KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def encode(url: str, padding: bool = False) -> str:
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode()
    return token if padding else token.rstrip("=")


def presign_url(
    cluster: str = "demo",
    *,
    access_key: str = ACCESS_KEY,
    secret: str = SECRET,
    region: str = "us-east-1",
    host: str = "sts.amazonaws.com",
    when: datetime = NOW,
    expires: int = 60,
    session_token: str | None = None,
    signed_headers: tuple[str, ...] = ("host", "x-k8s-aws-id"),
    extra: dict[str, str] | None = None,
) -> str:
    """A SigV4 query-signed STS GetCallerIdentity URL, per the AWS SigV4 documentation."""
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/sts/aws4_request"
    params = {
        "Action": "GetCallerIdentity",
        "Version": "2011-06-15",
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": ";".join(signed_headers),
        **(extra or {}),
    }
    if session_token is not None:
        params["X-Amz-Security-Token"] = session_token
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
    headers = {"host": host, "x-k8s-aws-id": cluster}
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            query,
            "".join(f"{name}:{headers[name]}\n" for name in signed_headers),
            ";".join(signed_headers),
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, "sts", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"https://{host}/?{query}&X-Amz-Signature={signature}"


def botocore_token(cluster: str, region: str = "us-east-1") -> str:
    """What ``aws eks get-token`` produces: botocore presigning with the cluster header added."""
    session = botocore.session.get_session()
    client = session.create_client(
        "sts",
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        endpoint_url=f"https://sts.{region}.amazonaws.com",
    )

    def add_cluster_header(request, **_: object) -> None:
        request.headers["x-k8s-aws-id"] = cluster

    client.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    return encode(client.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"))


class EksTokenVerifierTest(unittest.TestCase):
    def setUp(self) -> None:
        self.clusters = ["demo", "other"]
        self.verifier = EksTokenVerifier({ACCESS_KEY: SECRET}, lambda: self.clusters, now=lambda: NOW)

    def assertRejected(self, token: str, fragment: str) -> None:
        with self.assertRaises(TokenError) as caught:
            self.verifier(token)
        self.assertIn(fragment, str(caught.exception))

    def test_accepts_a_token_signed_for_an_emulated_cluster(self) -> None:
        self.assertEqual(self.verifier(encode(presign_url("demo"))), ACCESS_KEY)
        self.assertEqual(self.verifier(encode(presign_url("other"))), ACCESS_KEY)

    def test_accepts_botocore_tokens(self) -> None:
        verifier = EksTokenVerifier({ACCESS_KEY: SECRET}, lambda: ["demo"])  # real clock: botocore signs "now"
        self.assertEqual(verifier(botocore_token("demo")), ACCESS_KEY)
        self.assertEqual(verifier(botocore_token("demo", region="eu-west-1")), ACCESS_KEY)
        with self.assertRaises(TokenError):
            verifier(botocore_token("elsewhere"))

    def test_padding_is_optional(self) -> None:
        url = presign_url("demo")
        self.assertEqual(self.verifier(encode(url, padding=True)), ACCESS_KEY)
        self.assertEqual(self.verifier(encode(url)), ACCESS_KEY)

    def test_regional_endpoint_needs_its_own_region_in_the_scope(self) -> None:
        url = presign_url("demo", region="eu-west-1", host="sts.eu-west-1.amazonaws.com")
        self.assertEqual(self.verifier(encode(url)), ACCESS_KEY)
        mismatch = presign_url("demo", region="eu-west-1", host="sts.amazonaws.com")
        self.assertRejected(encode(mismatch), "does not match the STS endpoint")

    def test_session_token_is_part_of_the_signature(self) -> None:
        url = presign_url("demo", session_token="FQoGZXIvYXdzEXAMPLE//token+=")
        self.assertEqual(self.verifier(encode(url)), ACCESS_KEY)
        tampered = url.replace("FQoGZXIvYXdz", "FQoGZXIvYXd0")
        self.assertNotEqual(tampered, url)
        self.assertRejected(encode(tampered), "signature does not match")

    def test_rejects_another_cluster_key_or_secret(self) -> None:
        self.assertRejected(encode(presign_url("prod")), "signature does not match any emulated cluster")
        self.assertRejected(encode(presign_url("demo", secret="wrong")), "signature does not match")
        self.assertRejected(encode(presign_url("demo", access_key="AKIDUNKNOWN")), "unknown access key id")

    def test_cluster_names_are_read_at_every_call(self) -> None:
        token = encode(presign_url("later"))
        self.assertRejected(token, "signature does not match")
        self.clusters.append("later")
        self.assertEqual(self.verifier(token), ACCESS_KEY)

    def test_expiry_is_fifteen_minutes_whatever_x_amz_expires_says(self) -> None:
        self.assertEqual(self.verifier(encode(presign_url("demo", when=NOW - timedelta(minutes=14)))), ACCESS_KEY)
        self.assertRejected(encode(presign_url("demo", when=NOW - timedelta(minutes=16))), "expired")
        self.assertRejected(encode(presign_url("demo", when=NOW + timedelta(minutes=16))), "in the future")
        self.assertRejected(encode(presign_url("demo", expires=901)), "X-Amz-Expires")

    def test_rejects_malformed_tokens(self) -> None:
        url = presign_url("demo")
        self.assertRejected(url, "prefix")
        self.assertRejected(TOKEN_PREFIX + "not base64!", "base64")
        self.assertRejected(TOKEN_PREFIX + "A" * 5000, "too large")
        self.assertRejected(encode(url.replace("https://", "http://")), "scheme")
        self.assertRejected(encode(url.replace("sts.amazonaws.com", "sts.evil.example")), "hostname")
        self.assertRejected(encode(url.replace("/?", "/other?")), "path")
        self.assertRejected(encode(url.replace("GetCallerIdentity", "AssumeRole")), "action")

    def test_rejects_unexpected_query_parameters(self) -> None:
        self.assertRejected(encode(presign_url("demo", extra={"Foo": "bar"})), "non-whitelisted")
        self.assertRejected(encode(presign_url("demo") + "&Action=GetCallerIdentity"), "multiple values")
        self.assertRejected(encode(presign_url("demo").replace("&Version", ";Version")), "malformed")

    def test_cluster_header_must_be_signed(self) -> None:
        url = presign_url("demo", signed_headers=("host",))
        self.assertRejected(encode(url), "did not sign the x-k8s-aws-id header")


#: (partition, region, STS host of the region) - the hosts aws-iam-authenticator's verifier of each
#: partition accepts (pkg/regions: "aws-cn" -> sts.cn-north-1.amazonaws.com.cn...).
PARTITION_HOSTS = (
    ("aws", "eu-west-1", "sts.eu-west-1.amazonaws.com"),
    ("aws", "us-east-1", "sts.amazonaws.com"),
    ("aws", "us-east-2", "sts-fips.us-east-2.amazonaws.com"),
    ("aws-cn", "cn-north-1", "sts.cn-north-1.amazonaws.com.cn"),
    ("aws-cn", "cn-northwest-1", "sts.cn-northwest-1.amazonaws.com.cn"),
    ("aws-us-gov", "us-gov-west-1", "sts.us-gov-west-1.amazonaws.com"),
    ("aws-iso", "us-iso-east-1", "sts.us-iso-east-1.c2s.ic.gov"),
    ("aws-iso-b", "us-isob-east-1", "sts.us-isob-east-1.sc2s.sgov.gov"),
    ("aws-iso-e", "eu-isoe-west-1", "sts.eu-isoe-west-1.cloud.adc-e.uk"),
    ("aws-iso-f", "us-isof-south-1", "sts.us-isof-south-1.csp.hci.ic.gov"),
    ("aws-eusc", "eusc-de-east-1", "sts.eusc-de-east-1.amazonaws.eu"),
)


class PartitionTest(unittest.TestCase):
    """The STS host is checked against the verifier's partition, as aws-iam-authenticator does."""

    def verifier(self, partition: str) -> EksTokenVerifier:
        return EksTokenVerifier({ACCESS_KEY: SECRET}, lambda: ["demo"], now=lambda: NOW, partition=partition)

    def test_each_partition_takes_its_own_sts_hosts_and_refuses_the_others(self) -> None:
        for partition in sorted({p for p, _, _ in PARTITION_HOSTS}):
            verifier = self.verifier(partition)
            for owner, region, host in PARTITION_HOSTS:
                token = encode(presign_url("demo", region=region, host=host))
                with self.subTest(verifier=partition, host=host):
                    if owner == partition:
                        self.assertEqual(verifier(token), ACCESS_KEY)
                    else:
                        with self.assertRaises(TokenError) as caught:
                            verifier(token)
                        self.assertIn("unexpected hostname", str(caught.exception))

    def test_the_default_partition_is_aws(self) -> None:
        default = EksTokenVerifier({ACCESS_KEY: SECRET}, lambda: ["demo"], now=lambda: NOW)
        self.assertEqual(default(encode(presign_url("demo", region="us-west-2", host="sts.us-west-2.amazonaws.com"))), ACCESS_KEY)
        with self.assertRaises(TokenError):
            default(encode(presign_url("demo", region="cn-north-1", host="sts.cn-north-1.amazonaws.com.cn")))

    def test_hosts_of_no_region_of_the_partition_are_refused(self) -> None:
        for host in ("sts.xx-moon-1.amazonaws.com", "sts.us-east-1.amazonaws.com.evil.example", "STS.us-east-1.amazonaws.com"):
            with self.subTest(host=host), self.assertRaises(TokenError) as caught:
                self.verifier("aws")(encode(presign_url("demo", region="us-east-1", host=host)))
            self.assertIn("unexpected hostname", str(caught.exception))

    def test_the_host_table_is_the_authenticators(self) -> None:
        hosts = sts_hosts("aws")
        # A sample of aws-iam-authenticator's own expectations for "aws" (pkg/regions tests).
        for host in ("sts.amazonaws.com", "sts-fips.us-west-2.amazonaws.com", "sts.af-south-1.amazonaws.com", "sts.il-central-1.amazonaws.com"):
            self.assertIn(host, hosts)
        self.assertEqual(hosts["sts.amazonaws.com"], "us-east-1")
        self.assertEqual(set(sts_hosts("aws-cn")), {"sts.cn-north-1.amazonaws.com.cn", "sts.cn-northwest-1.amazonaws.com.cn"})
        self.assertEqual(sts_hosts("aws-us-gov")["sts.us-gov-east-1.amazonaws.com"], "us-gov-east-1")

    def test_an_unknown_partition_is_refused_when_the_verifier_is_made(self) -> None:
        with self.assertRaises(ValueError):
            self.verifier("aws-eu-gov")


if __name__ == "__main__":
    unittest.main()
