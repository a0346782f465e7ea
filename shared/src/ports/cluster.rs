use std::future::Future;

use crate::error::UpstreamError;
use crate::ports::RoleSession;

/// A cluster and whom to reach it as: the function's own role, or a role session in the
/// cluster's account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterTarget {
    /// The EKS cluster's name.
    pub cluster: String,
    /// The role assumed to describe the cluster and sign its token; `None`: the function's own
    /// credentials (a cluster of this account).
    pub role: Option<RoleSession>,
}

impl ClusterTarget {
    /// `cluster` of this account.
    pub fn own(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            role: None,
        }
    }
}

/// Reaching a cluster's Kubernetes API, authenticated.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ClusterAccess: Send + Sync {
    /// A client for `target`'s API server, with a credential good for the next minutes.
    fn client(
        &self,
        target: &ClusterTarget,
    ) -> impl Future<Output = Result<kube::Client, UpstreamError>> + Send;
}
