use std::future::Future;

use crate::error::UpstreamError;

/// Reaching a cluster's Kubernetes API, authenticated.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ClusterAccess: Send + Sync {
    /// A client for `cluster`'s API server, with a credential good for the next minutes.
    fn client(
        &self,
        cluster: &str,
    ) -> impl Future<Output = Result<kube::Client, UpstreamError>> + Send;
}
