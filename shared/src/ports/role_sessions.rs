use std::fmt;
use std::future::Future;

use aws_credential_types::Credentials;

use crate::error::UpstreamError;

/// The longest role session name STS takes (`RoleSessionName`: 2 to 64 characters).
pub const MAX_SESSION_NAME: usize = 64;

/// A role session's name, in the characters STS allows (`[\w+=,.@-]`, 2 to 64 of them).
///
/// The name is what the target account's CloudTrail records for every call made with the
/// session, and what EKS puts in the Kubernetes username (`…:assumed-role/<role>/<session>`), so
/// it names the pipeline execution the deploy belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionName(String);

impl SessionName {
    /// `<pipeline>-<execution id>`, each character STS does not allow replaced by `-`, the
    /// pipeline's name shortened so the whole fits in 64 characters: the execution id (a UUID,
    /// 36 characters) is what tells executions apart, so it is kept whole.
    pub fn for_execution(pipeline: &str, execution_id: &str) -> Self {
        let execution: String = sanitized(execution_id)
            .chars()
            .take(MAX_SESSION_NAME)
            .collect();
        let room = MAX_SESSION_NAME.saturating_sub(execution.chars().count() + 1);
        let pipeline: String = sanitized(pipeline).chars().take(room).collect();
        match (pipeline.is_empty(), execution.is_empty()) {
            (_, true) => Self::named(&pipeline),
            (true, false) => Self::named(&execution),
            (false, false) => Self(format!("{pipeline}-{execution}")),
        }
    }

    /// `text` made a session name: disallowed characters replaced by `-`, cut to 64, and
    /// `eks-deploy` when nothing is left (STS wants at least 2 characters).
    pub fn named(text: &str) -> Self {
        let name: String = sanitized(text).chars().take(MAX_SESSION_NAME).collect();
        if name.chars().count() < 2 {
            Self("eks-deploy".to_owned())
        } else {
            Self(name)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn sanitized(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A role to assume in another account, as an environment names it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleSession {
    /// The role's ARN (`arn:aws:iam::210987654321:role/eks-deploy-target`).
    pub role_arn: String,
    /// The ExternalId the role's trust policy requires.
    pub external_id: String,
    /// The session's name.
    pub session_name: SessionName,
}

impl fmt::Debug for RoleSession {
    // The ExternalId is not a secret, but it need not be in every log line either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleSession")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

/// Why no credentials came for a role.
#[derive(Debug, thiserror::Error)]
pub enum AssumeRoleError {
    /// STS refused: the role does not trust this caller, the ExternalId differs, or this
    /// caller may not assume that role (it is not in the main stack's DeployRoleArns). Asking
    /// again cannot help; the configuration must change.
    #[error(
        "not allowed to assume {role_arn} (check the role's trust policy and ExternalId, and that it is in DeployRoleArns): {message}"
    )]
    Denied {
        /// The role.
        role_arn: String,
        /// STS's words.
        message: String,
    },
    /// Any other failure: STS unreachable, throttled, or an answer without credentials.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// Temporary credentials of role sessions in other accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RoleSessions: Send + Sync {
    /// Credentials of `session`, good for minutes yet.
    fn credentials(
        &self,
        session: &RoleSession,
    ) -> impl Future<Output = Result<Credentials, AssumeRoleError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXECUTION: &str = "3f2c9a1e-7b4d-4c8e-9f10-2a3b4c5d6e7f";

    #[test]
    fn a_session_is_named_after_the_pipeline_and_its_execution() {
        assert_eq!(
            SessionName::for_execution("shop-main", EXECUTION).as_str(),
            format!("shop-main-{EXECUTION}")
        );
    }

    #[test]
    fn characters_sts_refuses_become_dashes() {
        assert_eq!(
            SessionName::for_execution("shop main/ünï", "a b").as_str(),
            "shop-main--n--a-b"
        );
        assert_eq!(SessionName::named("x").as_str(), "eks-deploy");
        assert_eq!(SessionName::named("").as_str(), "eks-deploy");
        assert_eq!(
            SessionName::named("ok@team=1,2.+_").as_str(),
            "ok@team=1,2.+_"
        );
    }

    #[test]
    fn a_long_pipeline_name_is_shortened_and_the_execution_id_kept() {
        let name = SessionName::for_execution(&"p".repeat(100), EXECUTION);
        assert_eq!(name.as_str().len(), MAX_SESSION_NAME);
        assert!(name.as_str().ends_with(&format!("-{EXECUTION}")));
        let odd = SessionName::for_execution("shop", &"e".repeat(80));
        assert_eq!(odd.as_str(), "e".repeat(64));
        assert_eq!(
            SessionName::for_execution("", EXECUTION).as_str(),
            EXECUTION
        );
        assert_eq!(SessionName::for_execution("shop", "").as_str(), "shop");
    }

    #[test]
    fn every_name_is_one_sts_takes() {
        let long = "x".repeat(200);
        for (pipeline, execution) in [("", ""), ("a", ""), ("ö", "ä"), (long.as_str(), "y")] {
            let name = SessionName::for_execution(pipeline, execution);
            let length = name.as_str().chars().count();
            assert!((2..=MAX_SESSION_NAME).contains(&length), "{name}");
            assert!(
                name.as_str()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)),
                "{name}"
            );
        }
    }
}
