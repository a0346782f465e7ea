use std::future::Future;

use crate::error::UpstreamError;

/// A record of effects already produced, so a redelivered event produces none twice.
///
/// An effect is claimed before it is produced and completed after; a claim that was never
/// completed (the invocation failed, or died) is released or expires, so the retry can produce
/// it: an effect may be lost to nothing but a crash between producing it and completing it, and
/// is produced twice only if that crash outlasts the claim's lease.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Ledger: Send + Sync {
    /// Claims `key` for this invocation.
    fn claim(&self, key: &str) -> impl Future<Output = Result<Claim, UpstreamError>> + Send;

    /// Records that the effect claimed under `key` was produced.
    fn complete(&self, key: &str) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// Gives up the claim on `key` after failing to produce the effect, so a retry can.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), UpstreamError>> + Send;
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Go ahead and produce the effect.
    Granted,
    /// The effect was already produced, or another invocation is producing it right now.
    Taken,
}
