use crate::emf::MetricDocument;

/// Writing metrics where CloudWatch picks them up (EMF lines in the function's log).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Metrics: Send + Sync {
    /// Writes `document`. Never fails the invocation: a metric that cannot be written is logged.
    fn emit(&self, document: &MetricDocument);
}
