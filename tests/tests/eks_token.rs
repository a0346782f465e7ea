//! The EKS token is checked against an independent implementation: botocore presigning the same
//! request with the same credentials at the same time must give the same signature.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::workspace_root;
use shared::aws::EksToken;

const BOTOCORE_PRESIGN: &str = r#"
import datetime, sys
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

access_key, secret, session, region, cluster, epoch = sys.argv[1:7]
fixed = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
botocore.auth.get_current_datetime = lambda *args, **kwargs: fixed
request = AWSRequest(
    method="GET",
    url=f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
    headers={"x-k8s-aws-id": cluster},
)
credentials = Credentials(access_key, secret, session or None)
botocore.auth.SigV4QueryAuth(credentials, "sts", region, expires=60).add_auth(request)
print(request.url)
"#;

fn botocore_url(
    access_key: &str,
    secret: &str,
    session: &str,
    region: &str,
    cluster: &str,
    epoch: u64,
) -> String {
    let python = workspace_root().join(".venv/bin/python");
    let output = Command::new(&python)
        .args([
            "-c",
            BOTOCORE_PRESIGN,
            access_key,
            secret,
            session,
            region,
            cluster,
            &epoch.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/scripts/setup first)", python.display()));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn query(url: &str) -> BTreeMap<String, String> {
    let (_, query) = url.split_once('?').unwrap();
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn our_token_signs_exactly_as_botocore_presigns() {
    let cases = [
        (
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "",
            "eu-west-1",
            "shop-prod",
            1_795_000_000_u64,
        ),
        (
            "ASIAEXAMPLE",
            "secret/with+chars=",
            "FwoGZXIvYXdzEJr//////////wEaDKEXAMPLE=",
            "us-east-1",
            "shop_staging-2",
            1_800_000_123,
        ),
    ];
    for (access_key, secret, session, region, cluster, epoch) in cases {
        let credentials = Credentials::new(
            access_key,
            secret,
            (!session.is_empty()).then(|| session.to_owned()),
            None,
            "test",
        );
        let token = EksToken::sign(
            &credentials,
            region,
            cluster,
            UNIX_EPOCH + Duration::from_secs(epoch),
        )
        .unwrap();
        let body = token.expose().strip_prefix("k8s-aws-v1.").unwrap();
        let ours = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        let theirs = botocore_url(access_key, secret, session, region, cluster, epoch);

        assert_eq!(
            ours.split('?').next(),
            theirs.split('?').next(),
            "same endpoint"
        );
        let (ours, theirs) = (query(&ours), query(&theirs));
        assert_eq!(
            ours.get("X-Amz-Signature"),
            theirs.get("X-Amz-Signature"),
            "{cluster}: same signature"
        );
        assert_eq!(ours, theirs, "{cluster}: same signed query");
    }
}
