//! What eks-deploy tells CodePipeline, as the functions that read its results rely on it.
//!
//! eks-deploy reports through the job APIs: on success, output variables on its final
//! PutJobSuccessResult ([`IMAGE`], [`IMAGE_DIGEST`], [`IMAGE_TAG`], [`PREVIOUS_IMAGE`]); on
//! failure, a message that says whether the cluster was put back ([`ROLLED_BACK_TO`]) or a canary
//! aborted ([`CANARY_ABORTED_AT`]). delivery-events reads both through ListActionExecutions, so
//! these names and phrases are a contract: eks-deploy writes them from here, delivery-events
//! reads them from here, and changing one is changing both.

/// Output variable: the image reference applied (digest-pinned when the image is in ECR).
pub const IMAGE: &str = "IMAGE";
/// Output variable: the image's digest (`sha256:…`), or empty when unknown.
pub const IMAGE_DIGEST: &str = "IMAGE_DIGEST";
/// Output variable: the image's tag, or empty.
pub const IMAGE_TAG: &str = "IMAGE_TAG";
/// Output variable: the image the container ran before, or empty.
pub const PREVIOUS_IMAGE: &str = "PREVIOUS_IMAGE";

/// In a failure message: the rollout failed and the container was set back to the image that
/// follows (`… . Rolled back to registry/app:v1 (rollout complete).`).
pub const ROLLED_BACK_TO: &str = "Rolled back to ";
/// A failure message that starts so: a canary was aborted at the traffic weight that follows,
/// and the stable version serves again (`aborted at 25%: alarm checkout-5xx in ALARM`).
pub const CANARY_ABORTED_AT: &str = "aborted at ";

/// What a deploy action's failure message says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployFailure {
    /// The rollout failed and the container runs `to` again; `reason` is why it failed.
    RolledBack {
        /// The image put back.
        to: String,
        /// Why the rollout failed (the message before the rollback part).
        reason: String,
    },
    /// A canary was aborted at `weight` percent; `reason` is why.
    CanaryAborted {
        /// The weight (percent) the canary had reached.
        weight: u8,
        /// Why it was aborted.
        reason: String,
    },
    /// Anything else: the cluster was not (or not knowingly) put back.
    Failed,
}

impl DeployFailure {
    /// Reads a deploy action's failure message.
    pub fn read(message: &str) -> Self {
        let message = message.trim();
        if let Some(at) = message.find(ROLLED_BACK_TO) {
            let after = &message[at + ROLLED_BACK_TO.len()..];
            // An image reference has no spaces: it ends at the first one (or at the
            // punctuation eks-deploy puts after it).
            let to: String = after
                .split(char::is_whitespace)
                .next()
                .unwrap_or_default()
                .trim_end_matches([',', ';', '.'])
                .to_owned();
            if !to.is_empty() {
                let reason = message[..at]
                    .trim_end()
                    .trim_end_matches('.')
                    .trim_end()
                    .to_owned();
                return Self::RolledBack { to, reason };
            }
        }
        // After the rollback check: a bake after the final rollout that an alarm aborted
        // (`aborted at 100%: … Rolled back to X`) put the previous image back, which is what
        // the reader must hear.
        if let Some(rest) = message.strip_prefix(CANARY_ABORTED_AT)
            && let Some((weight, reason)) = rest.split_once("%:")
            && let Ok(weight) = weight.trim().parse::<u8>()
            && weight <= 100
        {
            return Self::CanaryAborted {
                weight,
                reason: reason.trim().to_owned(),
            };
        }
        Self::Failed
    }
}

/// The digest of an image reference pinned by digest (`registry/app@sha256:…`), if it is one.
pub fn digest_of(reference: &str) -> Option<&str> {
    let (_, digest) = reference.rsplit_once('@')?;
    is_digest(digest).then_some(digest)
}

/// Whether `value` is a digest and nothing else (`sha256:` and 64 hex digits), as
/// [`IMAGE_DIGEST`] must be: a reference or anything around the digest is not one.
pub fn is_digest(value: &str) -> bool {
    value
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_rolled_back_rollout_names_the_image_put_back_and_why() {
        // The messages eks-deploy writes after a failed rollout (functions/eks-deploy/src/handler.rs).
        for (tail, to) in [
            (". Rolled back to shop:v1 (rollout complete).", "shop:v1"),
            (
                ". Rolled back to shop:v1, but that rollout failed too: x.",
                "shop:v1",
            ),
            (
                ". Rolled back to shop:v1 (rollout still in progress).",
                "shop:v1",
            ),
            (
                ". Rolled back to shop:v1; following it failed: timeout.",
                "shop:v1",
            ),
            (". Rolled back to shop:v1.", "shop:v1"),
        ] {
            let message = format!("rollout of shop/web did not finish: ImagePullBackOff{tail}");
            assert_eq!(
                DeployFailure::read(&message),
                DeployFailure::RolledBack {
                    to: to.into(),
                    reason: "rollout of shop/web did not finish: ImagePullBackOff".into()
                },
                "{message}"
            );
        }
    }

    #[test]
    fn a_canary_abort_names_its_weight() {
        assert_eq!(
            DeployFailure::read("aborted at 25%: alarm checkout-5xx is in ALARM"),
            DeployFailure::CanaryAborted {
                weight: 25,
                reason: "alarm checkout-5xx is in ALARM".into()
            }
        );
        assert_eq!(
            DeployFailure::read("aborted at many%: x"),
            DeployFailure::Failed
        );
    }

    #[test]
    fn an_alarm_in_the_bake_after_the_rollout_reads_as_the_rollback_it_caused() {
        let message = "aborted at 100%: alarm shop-5xx ALARM (Threshold Crossed) in the bake after \
                       the rollout of shop@sha256:ab. Rolled back to shop@sha256:cd (rollout complete).";
        assert_eq!(
            DeployFailure::read(message),
            DeployFailure::RolledBack {
                to: "shop@sha256:cd".into(),
                reason: "aborted at 100%: alarm shop-5xx ALARM (Threshold Crossed) in the bake \
                         after the rollout of shop@sha256:ab"
                    .into()
            }
        );
    }

    #[test]
    fn other_failures_are_not_rollbacks() {
        for message in [
            "rollout failed. Not rolled back (rollback is off).",
            "rollout failed. The rollback to shop:v1 failed: forbidden.",
            "Rolled back to ",
            "",
        ] {
            assert_eq!(
                DeployFailure::read(message),
                DeployFailure::Failed,
                "{message}"
            );
        }
    }

    #[test]
    fn digests_come_from_pinned_references_only() {
        assert_eq!(
            digest_of(&format!("1.dkr.ecr.x/shop@{DIGEST}")),
            Some(DIGEST)
        );
        assert_eq!(digest_of("1.dkr.ecr.x/shop:v1"), None);
        assert_eq!(digest_of("shop@sha256:abc"), None);
        assert!(is_digest(DIGEST));
        for not_a_digest in [
            format!("1.dkr.ecr.x/shop@{DIGEST}"),
            format!("{DIGEST} "),
            "sha256:abc".to_owned(),
            String::new(),
        ] {
            assert!(!is_digest(&not_a_digest), "{not_a_digest:?}");
        }
    }
}
