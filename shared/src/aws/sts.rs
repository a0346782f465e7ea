//! Role sessions in other accounts: STS AssumeRole with an ExternalId, the credentials cached
//! until shortly before they expire.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{AssumeRoleError, RoleSession, RoleSessions};

const SERVICE: &str = "STS";

/// Cached credentials are replaced this long before they expire: a rollout followed with them
/// (a watch, then the job result) must not outlive them.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The session length asked for. A Lambda function's credentials are themselves a role session,
/// so assuming another role is role chaining, which STS limits to one hour.
pub const SESSION_DURATION: Duration = Duration::from_secs(60 * 60);

/// At most this many sessions are kept: one per environment of another account and pipeline
/// execution in flight is a handful; past the bound the stalest go first.
pub const MAX_CACHED_SESSIONS: usize = 32;

/// What tells the time: the system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// [`RoleSessions`] through STS AssumeRole.
///
/// The cache is per session (role, ExternalId, session name), not per role alone: the session
/// name names the pipeline execution, so the target account's CloudTrail and the cluster's
/// audit log tie each call to the execution that made it. One execution's invocations (a rollout
/// continued over several) share its session.
pub struct StsRoleSessions {
    sts: aws_sdk_sts::Client,
    clock: Clock,
    cache: Mutex<HashMap<RoleSession, Credentials>>,
}

impl fmt::Debug for StsRoleSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("StsRoleSessions")
            .field("cached", &cached)
            .finish_non_exhaustive()
    }
}

impl StsRoleSessions {
    /// Sessions assumed with `sts` (the function's own credentials).
    pub fn new(sts: aws_sdk_sts::Client) -> Self {
        Self {
            sts,
            clock: Arc::new(SystemTime::now),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The same, telling the time by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A credentials provider for `session`, for an SDK client or the EKS token: each call takes
    /// the cached credentials or assumes the role again.
    pub fn provider(self: &Arc<Self>, session: RoleSession) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(AssumedRole {
            sessions: Arc::clone(self),
            session,
        })
    }

    /// `base` (region, endpoints, retries, HTTP client) with `session`'s credentials: for the
    /// EKS client that describes the other account's cluster.
    pub fn sdk_config(self: &Arc<Self>, base: &SdkConfig, session: RoleSession) -> SdkConfig {
        base.to_builder()
            .credentials_provider(self.provider(session))
            .build()
    }

    fn cached(&self, session: &RoleSession, now: SystemTime) -> Option<Credentials> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session)
            .filter(|credentials| fresh(credentials, now))
            .cloned()
    }

    fn keep(&self, session: &RoleSession, credentials: &Credentials, now: SystemTime) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|_, kept| fresh(kept, now));
        while cache.len() >= MAX_CACHED_SESSIONS {
            let stalest = cache
                .iter()
                .min_by_key(|(_, kept)| kept.expiry())
                .map(|(key, _)| key.clone());
            match stalest {
                Some(key) => cache.remove(&key),
                None => break,
            };
        }
        cache.insert(session.clone(), credentials.clone());
    }

    async fn assume(&self, session: &RoleSession) -> Result<Credentials, AssumeRoleError> {
        let output = self
            .sts
            .assume_role()
            .role_arn(&session.role_arn)
            .role_session_name(session.session_name.as_str())
            .external_id(&session.external_id)
            .duration_seconds(i32::try_from(SESSION_DURATION.as_secs()).unwrap_or(3600))
            .send()
            .await
            .map_err(|error| {
                if error.code() == Some("AccessDenied") {
                    AssumeRoleError::Denied {
                        role_arn: session.role_arn.clone(),
                        message: error.message().unwrap_or_default().to_owned(),
                    }
                } else {
                    AssumeRoleError::Upstream(upstream(SERVICE, "AssumeRole", error))
                }
            })?;
        let given = output.credentials().ok_or_else(|| {
            UpstreamError::new(
                SERVICE,
                "AssumeRole",
                None,
                format!("no credentials in the answer for {}", session.role_arn),
            )
        })?;
        let expiry = SystemTime::try_from(*given.expiration()).map_err(|error| {
            UpstreamError::new(
                SERVICE,
                "AssumeRole",
                None,
                "the credentials' expiration is not a time",
            )
            .with_source(error)
        })?;
        Ok(Credentials::new(
            given.access_key_id(),
            given.secret_access_key(),
            Some(given.session_token().to_owned()),
            Some(expiry),
            "AssumeRole",
        ))
    }
}

/// Whether `credentials` are good for [`REFRESH_MARGIN`] after `now`.
fn fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expiry()
        .is_some_and(|expiry| expiry > now + REFRESH_MARGIN)
}

impl RoleSessions for StsRoleSessions {
    async fn credentials(&self, session: &RoleSession) -> Result<Credentials, AssumeRoleError> {
        let now = (self.clock)();
        if let Some(credentials) = self.cached(session, now) {
            return Ok(credentials);
        }
        // Two callers missing the cache at once both assume the role: both get valid
        // credentials, and the later ones are kept. Rarer and cheaper than holding a lock
        // across the call.
        let credentials = self.assume(session).await?;
        tracing::info!(
            role = %session.role_arn,
            session = %session.session_name,
            "assumed the environment's role"
        );
        self.keep(session, &credentials, now);
        Ok(credentials)
    }
}

#[derive(Debug)]
struct AssumedRole {
    sessions: Arc<StsRoleSessions>,
    session: RoleSession,
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.sessions
                .credentials(&self.session)
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sts::Client;
    use aws_sdk_sts::operation::assume_role::{
        AssumeRoleError as SdkAssumeRoleError, AssumeRoleOutput,
    };
    use aws_sdk_sts::types::Credentials as StsCredentials;
    use aws_sdk_sts::types::error::RegionDisabledException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;
    use crate::ports::SessionName;

    const ROLE: &str = "arn:aws:iam::210987654321:role/eks-deploy-target";
    const START: u64 = 1_800_000_000;

    fn session(execution: &str) -> RoleSession {
        RoleSession {
            role_arn: ROLE.into(),
            external_id: "shop-main-production".into(),
            session_name: SessionName::for_execution("shop-main", execution),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// A clock the test moves.
    fn clock() -> (Arc<Mutex<SystemTime>>, Clock) {
        let now = Arc::new(Mutex::new(at(START)));
        let reader = Arc::clone(&now);
        (now, Arc::new(move || *reader.lock().unwrap()))
    }

    fn issued(key: &'static str, expires: u64) -> AssumeRoleOutput {
        AssumeRoleOutput::builder()
            .credentials(
                StsCredentials::builder()
                    .access_key_id(key)
                    .secret_access_key("secret")
                    .session_token("token")
                    .expiration(DateTime::from_secs(i64::try_from(expires).unwrap()))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_role_is_assumed_with_the_session_name_and_external_id_then_served_from_the_cache() {
        let assume = mock!(Client::assume_role)
            .match_requests(|request| {
                request.role_arn() == Some(ROLE)
                    && request.external_id() == Some("shop-main-production")
                    && request.role_session_name() == Some("shop-main-e-1")
                    && request.duration_seconds() == Some(3600)
            })
            .then_output(|| issued("ASIAONE", START + 3600));
        let (now, clock) = clock();
        let sessions = StsRoleSessions::new(mock_client!(aws_sdk_sts, [&assume])).with_clock(clock);

        let first = sessions.credentials(&session("e-1")).await.unwrap();
        *now.lock().unwrap() = at(START + 3600 - 6 * 60);
        let again = sessions.credentials(&session("e-1")).await.unwrap();

        assert_eq!(first.access_key_id(), "ASIAONE");
        assert_eq!(first.session_token(), Some("token"));
        assert_eq!(first.expiry(), Some(at(START + 3600)));
        assert_eq!(again.access_key_id(), "ASIAONE");
        assert_eq!(assume.num_calls(), 1);
    }

    #[tokio::test]
    async fn credentials_near_their_expiry_are_replaced() {
        let first = mock!(Client::assume_role).then_output(|| issued("ASIAONE", START + 3600));
        let second = mock!(Client::assume_role).then_output(|| issued("ASIATWO", START + 2 * 3600));
        let (now, clock) = clock();
        let sessions = StsRoleSessions::new(mock_client!(
            aws_sdk_sts,
            RuleMode::Sequential,
            [&first, &second]
        ))
        .with_clock(clock);

        assert_eq!(
            sessions
                .credentials(&session("e-1"))
                .await
                .unwrap()
                .access_key_id(),
            "ASIAONE"
        );
        // Less than the margin left: assumed again.
        *now.lock().unwrap() = at(START + 3600 - 4 * 60);
        assert_eq!(
            sessions
                .credentials(&session("e-1"))
                .await
                .unwrap()
                .access_key_id(),
            "ASIATWO"
        );
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn each_execution_has_its_own_session() {
        let first = mock!(Client::assume_role)
            .match_requests(|request| request.role_session_name() == Some("shop-main-e-1"))
            .then_output(|| issued("ASIAONE", START + 3600));
        let second = mock!(Client::assume_role)
            .match_requests(|request| request.role_session_name() == Some("shop-main-e-2"))
            .then_output(|| issued("ASIATWO", START + 3600));
        let (_, clock) = clock();
        let sessions = StsRoleSessions::new(mock_client!(
            aws_sdk_sts,
            RuleMode::Sequential,
            [&first, &second]
        ))
        .with_clock(clock);

        sessions.credentials(&session("e-1")).await.unwrap();
        let other = sessions.credentials(&session("e-2")).await.unwrap();

        assert_eq!(other.access_key_id(), "ASIATWO");
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    fn access_denied() -> aws_smithy_mocks::Rule {
        mock!(Client::assume_role).then_error(|| {
            SdkAssumeRoleError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: sts:AssumeRole")
                    .build(),
            )
        })
    }

    #[tokio::test]
    async fn a_refusal_is_a_typed_denial_and_nothing_is_cached() {
        let (first, second) = (access_denied(), access_denied());
        let (_, clock) = clock();
        let sessions = StsRoleSessions::new(mock_client!(
            aws_sdk_sts,
            RuleMode::Sequential,
            [&first, &second]
        ))
        .with_clock(clock);

        for _ in 0..2 {
            match sessions.credentials(&session("e-1")).await {
                Err(AssumeRoleError::Denied { role_arn, message }) => {
                    assert_eq!(role_arn, ROLE);
                    assert!(message.contains("sts:AssumeRole"), "{message}");
                }
                other => panic!("expected a denial, got {other:?}"),
            }
        }
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn other_failures_are_upstream_errors() {
        let disabled = mock!(Client::assume_role).then_error(|| {
            SdkAssumeRoleError::RegionDisabledException(
                RegionDisabledException::builder()
                    .message("STS is not activated in this region")
                    // As the SDK reads it off a response: the code in the error's metadata.
                    .meta(
                        ErrorMetadata::builder()
                            .code("RegionDisabledException")
                            .message("STS is not activated in this region")
                            .build(),
                    )
                    .build(),
            )
        });
        let sessions = StsRoleSessions::new(mock_client!(aws_sdk_sts, [&disabled]));

        match sessions.credentials(&session("e-1")).await {
            Err(AssumeRoleError::Upstream(error)) => {
                assert_eq!(error.code(), Some("RegionDisabledException"));
                assert_eq!(error.operation(), "AssumeRole");
            }
            other => panic!("expected an upstream error, got {other:?}"),
        }
        assert_eq!(disabled.num_calls(), 1);
    }

    #[tokio::test]
    async fn the_provider_and_sdk_config_give_the_sessions_credentials() {
        let assume = mock!(Client::assume_role).then_output(|| issued("ASIAONE", START + 3600));
        let (_, clock) = clock();
        let sessions =
            Arc::new(StsRoleSessions::new(mock_client!(aws_sdk_sts, [&assume])).with_clock(clock));
        let base = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .build();

        let config = sessions.sdk_config(&base, session("e-1"));
        let provider = config.credentials_provider().unwrap();
        let credentials = provider.provide_credentials().await.unwrap();
        let again = sessions
            .provider(session("e-1"))
            .provide_credentials()
            .await
            .unwrap();

        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(credentials.access_key_id(), "ASIAONE");
        assert_eq!(again.access_key_id(), "ASIAONE");
        assert_eq!(assume.num_calls(), 1);
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_stalest_first() {
        let unused = mock!(Client::assume_role).then_output(|| issued("ASIAONE", START + 3600));
        let sessions = StsRoleSessions::new(mock_client!(aws_sdk_sts, [&unused]));
        let now = at(START);
        for i in 0..(MAX_CACHED_SESSIONS + 3) {
            let credentials = Credentials::new(
                "k",
                "s",
                None,
                Some(at(START + 3600 + u64::try_from(i).unwrap())),
                "test",
            );
            sessions.keep(&session(&format!("e-{i}")), &credentials, now);
        }
        let cache = sessions.cache.lock().unwrap();
        assert_eq!(cache.len(), MAX_CACHED_SESSIONS);
        assert!(!cache.contains_key(&session("e-0")));
        assert!(cache.contains_key(&session(&format!("e-{}", MAX_CACHED_SESSIONS + 2))));
        assert_eq!(unused.num_calls(), 0);
    }
}
