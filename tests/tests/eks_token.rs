//! The EKS token is checked against independent implementations: botocore presigning the same
//! request with the same credentials at the same time must give the same signature, and in every
//! partition the token is signed for the STS host botocore resolves for the region, which the
//! emulator's verifier (checking hosts as aws-iam-authenticator does) takes.

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

/// For each `region cluster token` line: botocore's regional STS endpoint for the region, and
/// what the emulator's verifier of the region's partition answers for the token.
const VERIFY_IN_PARTITION: &str = r#"
import sys
from pathlib import Path
import botocore.session
sys.path.insert(0, str(Path(sys.argv[1]) / "tests" / "emulator"))
from eks_token import EksTokenVerifier, TokenError

session = botocore.session.get_session()
session.set_config_variable("sts_regional_endpoints", "regional")
access_key, secret = sys.argv[2:4]
for line in sys.stdin.read().splitlines():
    region, cluster, token = line.split()
    client = session.create_client(
        "sts", region_name=region, aws_access_key_id=access_key, aws_secret_access_key=secret
    )
    partition = session.get_partition_for_region(region)
    verifier = EksTokenVerifier({access_key: secret}, lambda: [cluster], partition=partition)
    try:
        verdict = "accepted as " + verifier(token)
    except TokenError as error:
        verdict = f"refused: {error}"
    print(f"{region} {partition} {client.meta.endpoint_url} {verdict}")
"#;

#[test]
fn in_every_partition_the_token_is_signed_for_its_sts_host_and_taken_by_its_verifier() {
    let regions = [
        "us-east-1",
        "eu-west-1",
        "cn-north-1",
        "cn-northwest-1",
        "us-gov-west-1",
        "us-iso-east-1",
        "us-isob-east-1",
        "eu-isoe-west-1",
        "us-isof-south-1",
        "eusc-de-east-1",
    ];
    let (access_key, secret) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let credentials = Credentials::new(access_key, secret, None, None, "test");
    let now = std::time::SystemTime::now();
    let mut input = String::new();
    let mut hosts = Vec::new();
    for region in regions {
        let token = EksToken::sign(&credentials, region, "shop-prod", now).unwrap();
        let body = token.expose().strip_prefix("k8s-aws-v1.").unwrap();
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        hosts.push(
            url.split('?')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_owned(),
        );
        input.push_str(&format!("{region} shop-prod {}\n", token.expose()));
    }

    let python = workspace_root().join(".venv/bin/python");
    let mut child = Command::new(&python)
        .args([
            "-c",
            VERIFY_IN_PARTITION,
            workspace_root().to_str().unwrap(),
            access_key,
            secret,
        ])
        // botocore's own resolution, not the emulators' endpoint the test command sets.
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_STS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/scripts/setup first)", python.display()));
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers = String::from_utf8(output.stdout).unwrap();
    let answers: Vec<&str> = answers.lines().collect();
    assert_eq!(answers.len(), regions.len(), "{answers:?}");
    for ((region, ours), answer) in regions.iter().zip(&hosts).zip(answers) {
        let mut fields = answer.splitn(4, ' ');
        let (_, partition, botocore_endpoint, verdict) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        assert_eq!(
            ours, botocore_endpoint,
            "{region} ({partition}): the STS endpoint botocore resolves"
        );
        assert_eq!(
            verdict,
            format!("accepted as {access_key}"),
            "{region} ({partition})"
        );
    }
}
