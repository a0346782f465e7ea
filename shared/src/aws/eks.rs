//! Access to EKS clusters' Kubernetes APIs, authenticated the way EKS checks it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::SecretString;

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::ClusterAccess;

const SERVICE: &str = "EKS";

/// How long EKS accepts a token after it was signed: aws-iam-authenticator counts 15 minutes
/// from `X-Amz-Date` (the presigned URL's own 60 s expiry is checked for shape only).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A token is replaced this long before EKS would refuse it, so no request races its expiry.
pub const TOKEN_RENEWAL_MARGIN: Duration = Duration::from_secs(60);

/// How long a connection to the API server may take to open (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bearer token for an EKS cluster's API server.
#[derive(Clone)]
pub struct EksToken {
    value: String,
    signed_at: SystemTime,
}

impl fmt::Debug for EksToken {
    // The token is a credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EksToken")
            .field("signed_at", &self.signed_at)
            .finish_non_exhaustive()
    }
}

impl EksToken {
    /// Makes a token exactly as aws-iam-authenticator does: an STS `GetCallerIdentity` URL,
    /// presigned (SigV4, query string, `X-Amz-Expires=60`) with the `x-k8s-aws-id: <cluster>`
    /// header signed, base64url-encoded without padding, prefixed `k8s-aws-v1.`.
    ///
    /// The URL is the regional STS endpoint the SDK resolves for `region`, so the token names
    /// the host of the region's partition (`sts.cn-north-1.amazonaws.com.cn`,
    /// `sts.us-iso-east-1.c2s.ic.gov`…): EKS's authenticator accepts only its own partition's STS
    /// hosts.
    pub fn sign(
        credentials: &Credentials,
        region: &str,
        cluster: &str,
        at: SystemTime,
    ) -> Result<Self, TokenError> {
        let url = format!(
            "{}/?Action=GetCallerIdentity&Version=2011-06-15",
            sts_endpoint(region)?
        );
        let identity = credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(60));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("sts")
            .time(at)
            .settings(settings)
            .build()
            .map_err(|error| TokenError(error.to_string()))?
            .into();
        let headers = [("x-k8s-aws-id", cluster)];
        let signable = SignableRequest::new(
            "GET",
            url.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(&[]),
        )
        .map_err(|error| TokenError(error.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| TokenError(error.to_string()))?
            .into_parts();
        let mut request = http::Request::builder()
            .method("GET")
            .uri(url.as_str())
            .body(())
            .map_err(|error| TokenError(error.to_string()))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(Self {
            value: format!(
                "k8s-aws-v1.{}",
                URL_SAFE_NO_PAD.encode(request.uri().to_string())
            ),
            signed_at: at,
        })
    }

    /// The token, for the `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether it is still good at `now`, with the renewal margin to spare.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now.duration_since(self.signed_at)
            .is_ok_and(|age| age + TOKEN_RENEWAL_MARGIN < TOKEN_LIFETIME)
    }
}

/// The regional STS endpoint of `region` (`https://sts.<region>.<partition's DNS suffix>`), from
/// the SDK's endpoint rules and partition table. Never the configured `AWS_ENDPOINT_URL`: the
/// token is checked by EKS against the real STS host, whatever endpoint the function's own calls
/// use.
fn sts_endpoint(region: &str) -> Result<String, TokenError> {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};

    use aws_sdk_sts::config::endpoint::{DefaultResolver, Params, ResolveEndpoint as _};

    let params = Params::builder()
        .region(region)
        .use_dual_stack(false)
        .use_fips(false)
        .use_global_endpoint(false)
        .build()
        .map_err(|error| TokenError(error.to_string()))?;
    let resolver = DefaultResolver::new();
    let mut resolving = std::pin::pin!(resolver.resolve_endpoint(&params));
    // The rules are evaluated in place, without I/O: the answer is ready at the first poll.
    match resolving
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(endpoint)) => Ok(endpoint.url().trim_end_matches('/').to_owned()),
        Poll::Ready(Err(error)) => Err(TokenError(format!(
            "no STS endpoint for region {region}: {error}"
        ))),
        Poll::Pending => Err(TokenError(format!(
            "the STS endpoint of region {region} is not known at once"
        ))),
    }
}

/// A token could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot sign the EKS token: {0}")]
pub struct TokenError(String);

/// What DescribeCluster says about where and how to reach a cluster's API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEndpoint {
    /// `https://...`.
    pub url: String,
    /// The cluster CA certificate, PEM.
    pub ca_pem: Vec<u8>,
}

struct Connected {
    client: kube::Client,
    token: EksToken,
}

/// [`ClusterAccess`] to EKS clusters: endpoint and CA from DescribeCluster (once per cold
/// start), a token per cluster renewed shortly before it expires, and a kube client over TLS
/// trusting only the cluster's CA.
pub struct EksClusters {
    eks: aws_sdk_eks::Client,
    credentials: SharedCredentialsProvider,
    region: String,
    api_url_override: Option<String>,
    endpoints: Mutex<HashMap<String, ClusterEndpoint>>,
    clients: Mutex<HashMap<String, Connected>>,
}

impl fmt::Debug for EksClusters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EksClusters")
            .field("region", &self.region)
            .field("api_url_override", &self.api_url_override)
            .finish_non_exhaustive()
    }
}

impl EksClusters {
    /// Clusters reached with `credentials` in `region`. `api_url_override`, when set, replaces the
    /// endpoint DescribeCluster gives (for a local API server; the CA still comes from EKS).
    pub fn new(
        eks: aws_sdk_eks::Client,
        credentials: SharedCredentialsProvider,
        region: impl Into<String>,
        api_url_override: Option<String>,
    ) -> Self {
        Self {
            eks,
            credentials,
            region: region.into(),
            api_url_override,
            endpoints: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn endpoint(&self, cluster: &str) -> Result<ClusterEndpoint, UpstreamError> {
        if let Some(known) = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
        {
            return Ok(known.clone());
        }
        let output = self
            .eks
            .describe_cluster()
            .name(cluster)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "DescribeCluster", error))?;
        let incomplete = |what: &str| {
            UpstreamError::new(
                SERVICE,
                "DescribeCluster",
                None,
                format!("cluster {cluster} has no {what} yet"),
            )
        };
        let described = output.cluster().ok_or_else(|| incomplete("description"))?;
        let url = described
            .endpoint()
            .ok_or_else(|| incomplete("endpoint"))?
            .to_owned();
        let ca = described
            .certificate_authority()
            .and_then(|ca| ca.data())
            .ok_or_else(|| incomplete("certificate authority"))?;
        let ca_pem = STANDARD.decode(ca.trim()).map_err(|error| {
            UpstreamError::new(
                SERVICE,
                "DescribeCluster",
                None,
                "the certificate authority is not base64",
            )
            .with_source(error)
        })?;
        let endpoint = ClusterEndpoint { url, ca_pem };
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster.to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    async fn connect(&self, cluster: &str, now: SystemTime) -> Result<Connected, UpstreamError> {
        let endpoint = self.endpoint(cluster).await?;
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|error| {
                UpstreamError::new(
                    "STS",
                    "credentials",
                    None,
                    "no AWS credentials to sign the EKS token",
                )
                .with_source(error)
            })?;
        let token = EksToken::sign(&credentials, &self.region, cluster, now).map_err(|error| {
            UpstreamError::new("STS", "presign GetCallerIdentity", None, error.to_string())
        })?;
        let url = self.api_url_override.clone().unwrap_or(endpoint.url);
        let client = kube_client(&url, &endpoint.ca_pem, token.expose())?;
        Ok(Connected { client, token })
    }
}

/// A kube client for `url`, trusting only the CA in `ca_pem`, authenticating with the bearer
/// token `bearer`.
pub fn kube_client(url: &str, ca_pem: &[u8], bearer: &str) -> Result<kube::Client, UpstreamError> {
    let invalid =
        |what: &str| UpstreamError::new("Kubernetes", "connect", None, format!("invalid {what}"));
    let mut config = kube::Config::new(url.parse().map_err(|_| invalid("API server URL"))?);
    let certificates = pem_certificates(ca_pem);
    if certificates.is_empty() {
        return Err(invalid(
            "cluster certificate authority (no PEM certificate)",
        ));
    }
    config.root_cert = Some(certificates);
    config.auth_info.token = Some(SecretString::from(bearer.to_owned()));
    // No socket read timeout: in kube-client it bounds every read, so it cut each watch that
    // stayed quiet that long (and counted a pooled connection's idle time against the next
    // answer). The caller bounds each call and each watch itself, by what the call is.
    config.read_timeout = None;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // kube-client's own retry layer (429/503/504, up to 15 times, up to 1000 s apart) would sit
    // under the caller's, which is bounded by the function's deadline and logged: one policy.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|error| {
        UpstreamError::new("Kubernetes", "connect", None, "cannot build the client")
            .with_source(error)
    })
}

/// The DER bodies of the PEM certificates in `pem`.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut certificates = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match line {
            "-----BEGIN CERTIFICATE-----" => current = Some(String::new()),
            "-----END CERTIFICATE-----" => {
                if let Some(body) = current.take()
                    && let Ok(der) = STANDARD.decode(body)
                {
                    certificates.push(der);
                }
            }
            line => {
                if let Some(body) = current.as_mut() {
                    body.push_str(line);
                }
            }
        }
    }
    certificates
}

impl ClusterAccess for EksClusters {
    async fn client(&self, cluster: &str) -> Result<kube::Client, UpstreamError> {
        let now = SystemTime::now();
        if let Some(connected) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
            && connected.token.is_fresh(now)
        {
            return Ok(connected.client.clone());
        }
        let connected = self.connect(cluster, now).await?;
        let client = connected.client.clone();
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster.to_owned(), connected);
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn credentials() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        )
    }

    fn decoded(token: &EksToken) -> String {
        let body = token.expose().strip_prefix("k8s-aws-v1.").unwrap();
        String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
    }

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_url_with_the_cluster_header_signed() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let token = EksToken::sign(&credentials(), "eu-west-1", "shop-prod", at).unwrap();
        assert!(token.expose().starts_with("k8s-aws-v1."));
        assert!(!token.expose().contains('='), "no padding");
        let url = decoded(&token);
        assert!(
            url.starts_with(
                "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20261118%2Feu-west-1%2Fsts%2Faws4_request",
            "X-Amz-Date=20261118T110640Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
    }

    fn host_of(token: &EksToken) -> String {
        let url = decoded(token);
        let rest = url.strip_prefix("https://").unwrap();
        rest.split_once("/?").unwrap().0.to_owned()
    }

    fn signed_in(region: &str) -> EksToken {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        EksToken::sign(&credentials(), region, "shop-prod", at).unwrap()
    }

    fn assert_signed_for(region: &str, host: &str) {
        let token = signed_in(region);
        assert_eq!(host_of(&token), host, "{region}");
        assert!(
            decoded(&token).contains(&format!("%2F{region}%2Fsts%2Faws4_request")),
            "{region}: signed for the region"
        );
    }

    #[test]
    fn in_aws_the_token_is_signed_for_the_regional_sts_host() {
        assert_signed_for("us-east-1", "sts.us-east-1.amazonaws.com");
        assert_signed_for("eu-central-2", "sts.eu-central-2.amazonaws.com");
    }

    #[test]
    fn in_aws_cn_the_token_is_signed_for_the_amazonaws_com_cn_host() {
        assert_signed_for("cn-north-1", "sts.cn-north-1.amazonaws.com.cn");
        assert_signed_for("cn-northwest-1", "sts.cn-northwest-1.amazonaws.com.cn");
    }

    #[test]
    fn in_aws_us_gov_the_token_is_signed_for_the_govcloud_regional_host() {
        assert_signed_for("us-gov-west-1", "sts.us-gov-west-1.amazonaws.com");
        assert_signed_for("us-gov-east-1", "sts.us-gov-east-1.amazonaws.com");
    }

    #[test]
    fn in_aws_iso_the_token_is_signed_for_the_c2s_host() {
        assert_signed_for("us-iso-east-1", "sts.us-iso-east-1.c2s.ic.gov");
    }

    #[test]
    fn in_aws_iso_b_the_token_is_signed_for_the_sc2s_host() {
        assert_signed_for("us-isob-east-1", "sts.us-isob-east-1.sc2s.sgov.gov");
    }

    #[test]
    fn in_aws_iso_e_the_token_is_signed_for_the_adc_e_host() {
        assert_signed_for("eu-isoe-west-1", "sts.eu-isoe-west-1.cloud.adc-e.uk");
    }

    #[test]
    fn in_aws_iso_f_the_token_is_signed_for_the_hci_host() {
        assert_signed_for("us-isof-south-1", "sts.us-isof-south-1.csp.hci.ic.gov");
    }

    #[test]
    fn in_aws_eusc_the_token_is_signed_for_the_amazonaws_eu_host() {
        assert_signed_for("eusc-de-east-1", "sts.eusc-de-east-1.amazonaws.eu");
    }

    #[test]
    fn a_region_of_no_known_partition_is_signed_as_the_sdk_resolves_it() {
        // The SDK's rules take an unknown region into the aws partition (as its own clients do).
        assert_signed_for("xx-moon-1", "sts.xx-moon-1.amazonaws.com");
        assert!(EksToken::sign(&credentials(), "not a region!", "c", SystemTime::now()).is_err());
    }

    #[test]
    fn the_same_inputs_sign_the_same_token_and_another_cluster_another() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let a = EksToken::sign(&credentials(), "eu-west-1", "shop-prod", at).unwrap();
        let b = EksToken::sign(&credentials(), "eu-west-1", "shop-prod", at).unwrap();
        let c = EksToken::sign(&credentials(), "eu-west-1", "shop-staging", at).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
    }

    #[test]
    fn a_session_token_is_carried_in_the_url() {
        let with_session = Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("FwoGZXIvYXdzE".into()),
            None,
            "test",
        );
        let token = EksToken::sign(&with_session, "us-east-1", "c", SystemTime::now()).unwrap();
        assert!(decoded(&token).contains("X-Amz-Security-Token=FwoGZXIvYXdzE"));
    }

    #[test]
    fn a_token_is_renewed_a_minute_before_eks_would_refuse_it() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let token = EksToken::sign(&credentials(), "eu-west-1", "c", at).unwrap();
        assert!(token.is_fresh(at));
        assert!(token.is_fresh(at + Duration::from_secs(13 * 60)));
        assert!(!token.is_fresh(at + Duration::from_secs(14 * 60)));
        assert!(
            !token.is_fresh(at - Duration::from_secs(1)),
            "a clock that went back is not trusted"
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let token = EksToken::sign(&credentials(), "eu-west-1", "c", SystemTime::now()).unwrap();
        assert!(!format!("{token:?}").contains("k8s-aws-v1"));
    }

    #[test]
    fn pem_bundles_yield_each_certificate() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n\
                    -----BEGIN CERTIFICATE-----\nBQY=\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificates(pem), vec![vec![0, 1, 2, 3, 4], vec![5, 6]]);
        assert!(pem_certificates(b"garbage").is_empty());
    }
}
