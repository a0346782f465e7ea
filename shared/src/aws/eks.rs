//! Access to EKS clusters' Kubernetes APIs, authenticated the way EKS checks it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{AssumeRoleError, ClusterAccess, ClusterTarget, RoleSessions};

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

/// Where DescribeCluster answers are kept: a cluster's name is unique in its account, so a
/// cluster is its name and the role reaching it (`None`: this account). The session name does not
/// matter here: every execution's session sees the same cluster.
type EndpointKey = (Option<String>, String);

/// At most this many clients are kept. One per environment and, for a cluster of another
/// account, per pipeline execution (each has its own role session, so its own token); past the
/// bound the expired go first, then the oldest.
pub const MAX_CACHED_CLIENTS: usize = 32;

/// [`ClusterAccess`] to EKS clusters: endpoint and CA from DescribeCluster (once per cold
/// start and cluster), a token per cluster and role session renewed shortly before it expires,
/// and a kube client over TLS trusting only the cluster's CA.
///
/// A cluster of another account is reached through its environment's role: `roles` gives that
/// session's credentials, DescribeCluster is called with them, and the token is signed with them,
/// so the cluster sees the assumed role (its access entry there).
pub struct EksClusters<S> {
    eks: aws_sdk_eks::Client,
    credentials: SharedCredentialsProvider,
    roles: S,
    region: String,
    api_url_override: Option<String>,
    endpoints: Mutex<HashMap<EndpointKey, ClusterEndpoint>>,
    clients: Mutex<HashMap<ClusterTarget, Connected>>,
}

impl<S> fmt::Debug for EksClusters<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EksClusters")
            .field("region", &self.region)
            .field("api_url_override", &self.api_url_override)
            .finish_non_exhaustive()
    }
}

impl<S: RoleSessions> EksClusters<S> {
    /// Clusters reached with `credentials` in `region`, or with a session of `roles` where the
    /// target names one. `api_url_override`, when set, replaces the endpoint DescribeCluster
    /// gives (for a local API server; the CA still comes from EKS).
    pub fn new(
        eks: aws_sdk_eks::Client,
        credentials: SharedCredentialsProvider,
        roles: S,
        region: impl Into<String>,
        api_url_override: Option<String>,
    ) -> Self {
        Self {
            eks,
            credentials,
            roles,
            region: region.into(),
            api_url_override,
            endpoints: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials `target` is reached with.
    async fn credentials_for(&self, target: &ClusterTarget) -> Result<Credentials, UpstreamError> {
        match &target.role {
            None => self
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
                }),
            Some(session) => self
                .roles
                .credentials(session)
                .await
                .map_err(|error| match error {
                    AssumeRoleError::Denied { .. } => UpstreamError::new(
                        "STS",
                        "AssumeRole",
                        Some(ACCESS_DENIED.to_owned()),
                        error.to_string(),
                    ),
                    AssumeRoleError::Upstream(error) => error,
                }),
        }
    }

    async fn endpoint(
        &self,
        target: &ClusterTarget,
        credentials: &Credentials,
    ) -> Result<ClusterEndpoint, UpstreamError> {
        let cluster = target.cluster.as_str();
        let key: EndpointKey = (
            target.role.as_ref().map(|role| role.role_arn.clone()),
            cluster.to_owned(),
        );
        if let Some(known) = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(known.clone());
        }
        // The other account's cluster is described as the assumed role: this account's role
        // cannot see it.
        let eks = match &target.role {
            None => self.eks.clone(),
            Some(_) => aws_sdk_eks::Client::from_conf(
                self.eks
                    .config()
                    .to_builder()
                    .credentials_provider(credentials.clone())
                    .build(),
            ),
        };
        let output = eks
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
            .insert(key, endpoint.clone());
        Ok(endpoint)
    }

    async fn connect(
        &self,
        target: &ClusterTarget,
        now: SystemTime,
    ) -> Result<Connected, UpstreamError> {
        let credentials = self.credentials_for(target).await?;
        let endpoint = self.endpoint(target, &credentials).await?;
        let token =
            EksToken::sign(&credentials, &self.region, &target.cluster, now).map_err(|error| {
                UpstreamError::new("STS", "presign GetCallerIdentity", None, error.to_string())
            })?;
        let url = self.api_url_override.clone().unwrap_or(endpoint.url);
        let client = kube_client(&url, &endpoint.ca_pem, token.expose())?;
        Ok(Connected { client, token })
    }
}

/// The error code a refused AssumeRole is reported with, so the caller can tell a configuration
/// to fix from an outage.
pub const ACCESS_DENIED: &str = "AccessDenied";

/// A kube client for `url`, trusting only the CA in `ca_pem`, authenticating with the bearer
/// token `bearer`.
///
/// The HTTPS stack is the one kube-client builds (hyper-util's pooled client, rustls with
/// aws-lc-rs, HTTP/1.1), put together here rather than from a kube `Config`: a client made from
/// a `Config` links the kubeconfig and auth-plugin code (a YAML parser, JSONPath, the OS trust
/// store) that an EKS token never needs. kube-client's retry layer is left out on purpose (the
/// caller's own retries, bounded by the function's deadline and logged, are the one policy), and
/// so is a socket read timeout (it cut every watch that stayed quiet that long; the caller
/// bounds each call and each watch by what the call is).
pub fn kube_client(url: &str, ca_pem: &[u8], bearer: &str) -> Result<kube::Client, UpstreamError> {
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    let invalid =
        |what: &str| UpstreamError::new("Kubernetes", "connect", None, format!("invalid {what}"));
    let cluster_url: http::Uri = url.parse().map_err(|_| invalid("API server URL"))?;
    let certificates = pem_certificates(ca_pem);
    if certificates.is_empty() {
        return Err(invalid(
            "cluster certificate authority (no PEM certificate)",
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for der in certificates {
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .map_err(|_| invalid("cluster certificate authority"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| invalid("TLS configuration"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // The bearer token never travels in clear: only https URLs connect.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(tcp);
    // TCP and the TLS handshake together.
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let client: Client<_, kube::client::Body> =
        Client::builder(TokioExecutor::new()).build(connector);
    let mut authorization =
        http::HeaderValue::try_from(format!("Bearer {bearer}")).map_err(|_| invalid("token"))?;
    authorization.set_sensitive(true);
    let service = tower::ServiceBuilder::new()
        .layer(kube::client::middleware::BaseUriLayer::new(cluster_url))
        .map_request(move |mut request: http::Request<kube::client::Body>| {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, authorization.clone());
            request
        })
        .service(client);
    Ok(kube::Client::new(service, "default"))
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

impl<S: RoleSessions> ClusterAccess for EksClusters<S> {
    async fn client(&self, target: &ClusterTarget) -> Result<kube::Client, UpstreamError> {
        let now = SystemTime::now();
        if let Some(connected) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(target)
            && connected.token.is_fresh(now)
        {
            return Ok(connected.client.clone());
        }
        // Boxed: the assumed role's credentials, DescribeCluster and the token nest deep enough
        // to overflow the compiler's layout queries of the callers' futures otherwise. Once per
        // new client, not per call.
        let connected = Box::pin(self.connect(target, now)).await?;
        let client = connected.client.clone();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.retain(|_, kept| kept.token.is_fresh(now));
        while clients.len() >= MAX_CACHED_CLIENTS {
            let oldest = clients
                .iter()
                .min_by_key(|(_, kept)| kept.token.signed_at)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => clients.remove(&key),
                None => break,
            };
        }
        clients.insert(target.clone(), connected);
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
    fn a_client_is_refused_an_api_server_or_authority_it_cannot_use() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n";
        let refused = |url: &str, ca: &[u8]| match kube_client(url, ca, "k8s-aws-v1.secret") {
            Ok(_) => panic!("{url} was accepted"),
            Err(error) => error.to_string(),
        };
        assert!(refused("https://exa mple", pem).contains("invalid API server URL"));
        assert!(refused("https://example.com", b"garbage").contains("no PEM certificate"));
        let not_a_certificate = refused("https://example.com", pem);
        assert!(not_a_certificate.contains("invalid cluster certificate authority"));
        assert!(!not_a_certificate.contains("secret"), "{not_a_certificate}");
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

/// EksClusters against mocked EKS and STS: which calls are made, with which credentials.
#[cfg(test)]
mod cluster_tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
    use aws_sdk_eks::types::{Certificate, Cluster};
    use aws_sdk_sts::operation::assume_role::{
        AssumeRoleError as SdkAssumeRoleError, AssumeRoleOutput,
    };
    use aws_sdk_sts::types::Credentials as StsCredentials;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::DateTime;
    use aws_smithy_types::config_bag::ConfigBag;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;
    use crate::aws::StsRoleSessions;
    use crate::ports::{RoleSession, SessionName};

    const ROLE: &str = "arn:aws:iam::210987654321:role/eks-deploy-target";

    /// Records the access key each request was signed with (the `Credential=` of its
    /// Authorization header).
    #[derive(Debug, Clone, Default)]
    struct SignedWith(Arc<Mutex<Vec<String>>>);

    impl SignedWith {
        fn keys(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Intercept for SignedWith {
        fn name(&self) -> &'static str {
            "SignedWith"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let authorization = context
                .request()
                .headers()
                .get("authorization")
                .unwrap_or_default();
            let key = authorization
                .split("Credential=")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default();
            self.0.lock().unwrap().push(key.to_owned());
            Ok(())
        }
    }

    fn session(execution: &str) -> RoleSession {
        RoleSession {
            role_arn: ROLE.into(),
            external_id: "shop-main-production".into(),
            session_name: SessionName::for_execution("production", execution),
        }
    }

    fn target(role: Option<RoleSession>) -> ClusterTarget {
        ClusterTarget {
            cluster: "shop-prod".into(),
            role,
        }
    }

    fn described() -> Rule {
        mock!(aws_sdk_eks::Client::describe_cluster)
            .match_requests(|request| request.name() == Some("shop-prod"))
            .then_output(|| {
                DescribeClusterOutput::builder()
                    .cluster(
                        Cluster::builder()
                            .endpoint("https://127.0.0.1:6443")
                            .certificate_authority(
                                Certificate::builder()
                                    .data(STANDARD.encode(TEST_CA))
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            })
    }

    fn assumed(execution: &'static str, key: &'static str) -> Rule {
        mock!(aws_sdk_sts::Client::assume_role)
            .match_requests(move |request| {
                request.role_arn() == Some(ROLE)
                    && request.external_id() == Some("shop-main-production")
                    && request.role_session_name() == Some(session(execution).session_name.as_str())
            })
            .then_output(move || {
                let expires = SystemTime::now() + Duration::from_secs(3600);
                let seconds = expires.duration_since(SystemTime::UNIX_EPOCH).unwrap();
                AssumeRoleOutput::builder()
                    .credentials(
                        StsCredentials::builder()
                            .access_key_id(key)
                            .secret_access_key("secret")
                            .session_token("session-token")
                            .expiration(DateTime::from_secs(
                                i64::try_from(seconds.as_secs()).unwrap(),
                            ))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
    }

    fn own_credentials() -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Credentials::new("AKIAOWN", "own", None, None, "test"))
    }

    fn clusters(
        eks_rules: &[&Rule],
        sts_rules: &[&Rule],
    ) -> (EksClusters<StsRoleSessions>, SignedWith) {
        let signed = SignedWith::default();
        let recorder = signed.clone();
        let eks = mock_client!(aws_sdk_eks, RuleMode::MatchAny, eks_rules, |conf| conf
            .credentials_provider(Credentials::new("AKIAOWN", "own", None, None, "test"))
            .interceptor(recorder.clone()));
        let sts = mock_client!(aws_sdk_sts, RuleMode::Sequential, sts_rules);
        let clusters = EksClusters::new(
            eks,
            own_credentials(),
            StsRoleSessions::new(sts),
            "eu-west-1",
            None,
        );
        (clusters, signed)
    }

    fn decoded(token: &EksToken) -> String {
        let body = token.expose().strip_prefix("k8s-aws-v1.").unwrap();
        String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_cluster_of_another_account_is_described_and_signed_for_as_the_assumed_role() {
        let describe = described();
        let assume = assumed("e-1", "ASIAPROD");
        let (clusters, signed) = clusters(&[&describe], &[&assume]);

        let connected = clusters
            .connect(&target(Some(session("e-1"))), SystemTime::now())
            .await
            .unwrap();

        let url = decoded(&connected.token);
        assert!(url.contains("X-Amz-Credential=ASIAPROD%2F"), "{url}");
        assert!(url.contains("X-Amz-Security-Token=session-token"), "{url}");
        assert_eq!(signed.keys(), ["ASIAPROD"]);
        assert_eq!((assume.num_calls(), describe.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn clients_are_kept_per_cluster_and_role_session() {
        let describe = described();
        let first = assumed("e-1", "ASIAONE");
        let second = assumed("e-2", "ASIATWO");
        let (clusters, signed) = clusters(&[&describe], &[&first, &second]);

        // The same execution again: the kept client, no call.
        clusters
            .client(&target(Some(session("e-1"))))
            .await
            .unwrap();
        clusters
            .client(&target(Some(session("e-1"))))
            .await
            .unwrap();
        // Another execution: its own session (and token); the cluster is already described.
        clusters
            .client(&target(Some(session("e-2"))))
            .await
            .unwrap();
        // This account's cluster of the same name is another cluster: described as this account.
        clusters.client(&target(None)).await.unwrap();
        clusters.client(&target(None)).await.unwrap();

        assert_eq!(signed.keys(), ["ASIAONE", "AKIAOWN"]);
        assert_eq!(
            (first.num_calls(), second.num_calls(), describe.num_calls()),
            (1, 1, 2)
        );
        assert_eq!(clusters.clients.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_refused_role_is_an_access_denied_error_and_the_cluster_is_not_described() {
        let describe = described();
        let refused = mock!(aws_sdk_sts::Client::assume_role).then_error(|| {
            SdkAssumeRoleError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: sts:AssumeRole")
                    .build(),
            )
        });
        let (clusters, signed) = clusters(&[&describe], &[&refused]);

        let Err(error) = clusters.client(&target(Some(session("e-1")))).await else {
            panic!("the role refused: no client");
        };

        assert_eq!(error.operation(), "AssumeRole");
        assert_eq!(error.code(), Some(ACCESS_DENIED));
        assert!(error.to_string().contains(ROLE), "{error}");
        assert!(signed.keys().is_empty());
        assert_eq!((refused.num_calls(), describe.num_calls()), (1, 0));
    }

    /// A self-signed CA certificate, only for the kube client to be built with.
    const TEST_CA: &str = r"-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIULxyVFfQ63Pixrs8maiSWqj4HeFgwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPdGVzdC1jbHVzdGVyLWNhMCAXDTI2MTIwNzE2MDg0OVoYDzIx
MjYxMTEzMTYwODQ5WjAaMRgwFgYDVQQDDA90ZXN0LWNsdXN0ZXItY2EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAR65svHJJkrp22aSNcH8dioxLmtvULZtxamebBn
O5VbdFNfpG2IDgilkPT+OdhNm/OrmMV0faypVaXq9kIZRbuZo1MwUTAdBgNVHQ4E
FgQUICZ6nuqFP3BCrq8WGLtk83zxfsMwHwYDVR0jBBgwFoAUICZ6nuqFP3BCrq8W
GLtk83zxfsMwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEA9Ihs
rgkruMh9TLTPHZ9kwDuPKZ1gdfqN4JHeQI/p/PYCIFzmWvl1nAipVTUt7K8NM4bE
z6ugiIvkqokByQ3vk37r
-----END CERTIFICATE-----";
}
