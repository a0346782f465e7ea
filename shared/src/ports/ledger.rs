use std::future::Future;

use crate::error::UpstreamError;

/// A record of effects already produced, so a redelivered event produces none twice.
///
/// An effect is claimed before it is produced and completed after; a claim that was never
/// completed (the invocation failed, or died) is released or expires, so the retry can produce
/// it. While a claim is pending, a delivery of the same event is told so, and fails, so that
/// Lambda retries it later instead of taking "someone else is on it" for "done": an effect is
/// produced twice only if a crash between producing it and completing it outlasts the claim's
/// lease, and is never lost.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Ledger: Send + Sync {
    /// Claims `key` for this invocation.
    fn claim(&self, key: &str) -> impl Future<Output = Result<Claim, UpstreamError>> + Send;

    /// Records that the effect claimed under `key` was produced.
    fn complete(&self, key: &str) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// Gives up the claim on `key` after failing to produce the effect, so a retry can.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// Claims every key of `keys` (distinct) as [`Ledger::claim`] claims one, in as few calls
    /// as the store allows; the answers come in the order of `keys`. An error means no key was
    /// claimed by this call, except when `keys` needed more than one call: the keys of the calls
    /// that went through stay claimed, and their claims expire after the lease.
    fn claim_all(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Claim>, UpstreamError>> + Send;

    /// Records that the effects claimed under every key of `keys` were produced, as
    /// [`Ledger::complete`] records one, in as few calls as the store allows.
    fn complete_all(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Go ahead and produce the effect.
    Granted,
    /// The effect was already produced.
    Done,
    /// Another invocation claimed it and has not finished (it is producing it right now, or it
    /// failed and could not give the claim back): the effect may or may not come, so try again
    /// once the claim's lease has run out.
    Pending,
}

/// The error code of [`Claim::pending_error`].
const PENDING_CODE: &str = "ClaimPending";

impl Claim {
    /// The error a delivery that found a [`Claim::Pending`] fails with, so that it is retried.
    pub fn pending_error(key_kind: &str) -> UpstreamError {
        UpstreamError::new(
            "Ledger",
            "Claim",
            Some(PENDING_CODE.into()),
            format!(
                "another invocation holds the {key_kind} claim and has not finished; retry once its lease runs out"
            ),
        )
    }

    /// Whether `error` is [`Claim::pending_error`]: another invocation is on it.
    pub fn is_pending_error(error: &UpstreamError) -> bool {
        error.code() == Some(PENDING_CODE)
    }
}
