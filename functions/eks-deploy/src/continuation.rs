//! What a release remembers between invocations: the continuation token CodePipeline carries
//! from one invocation to the next (at most 2048 characters).
//!
//! The token is read back from the job event, so it is input like any other: a token that is not
//! one of ours is a typed error, never a panic. Tokens of the versions before canaries (no
//! `phase`) read as the main rollout, which is what they were.

use serde::{Deserialize, Serialize};

/// CodePipeline's limit on a continuation token.
pub const MAX_TOKEN_CHARS: usize = 2048;

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Waiting for the image's scan to finish (since `started_at`).
    Scan,
    /// A canary step: its pods coming up, then its bake.
    Canary,
    /// The main Deployment's rolling update (since `started_at`).
    #[default]
    Rollout,
    /// The bake after the final rollout.
    Bake,
}

/// The state a continued release carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Continuation {
    /// The image as the parameters give it: a token belongs to the deployment of this image.
    pub image: String,
    /// The reference applied (pinned to a digest for an ECR image); the image itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The image to roll back to.
    pub previous: Option<String>,
    /// When the current phase started (seconds since the epoch): the scan wait, the canary step,
    /// the rollout.
    pub started_at: u64,
    /// The `lastUpdateTime` of the ProgressDeadlineExceeded verdict that stood when the rollout
    /// started: an earlier rollout's, which does not judge this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_verdict: Option<String>,
    /// The phase.
    #[serde(default)]
    pub phase: Phase,
    /// The canary step (index into the strategy's steps).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step: usize,
    /// When the current bake started, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_started: Option<u64>,
    /// Who owns the canary: the job that started the release. CodePipeline gives each
    /// continuation a job of its own, so the job at hand is not the canary's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A continuation token that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than CodePipeline carries.
    #[error("the continuation token is {0} characters, more than the 2048 CodePipeline carries")]
    TooLong(usize),
    /// Not the JSON eks-deploy writes.
    #[error("the continuation token is not one eks-deploy wrote: {0}")]
    Malformed(String),
}

impl Continuation {
    /// The token CodePipeline carries; [`TokenError::TooLong`] when it would not fit in the
    /// 2048 characters CodePipeline takes (a very long image reference): PutJobSuccessResult
    /// would refuse it, and a cut token would not read back.
    pub fn encode(&self) -> Result<String, TokenError> {
        let token = serde_json::to_string(self)
            .map_err(|error| TokenError::Malformed(error.to_string()))?;
        let chars = token.chars().count();
        if chars > MAX_TOKEN_CHARS {
            return Err(TokenError::TooLong(chars));
        }
        Ok(token)
    }

    /// Reads a token.
    pub fn decode(token: &str) -> Result<Self, TokenError> {
        let chars = token.chars().count();
        if chars > MAX_TOKEN_CHARS {
            return Err(TokenError::TooLong(chars));
        }
        serde_json::from_str(token).map_err(|error| {
            // serde's message quotes what it found: keep it short and on one line.
            let message: String = error
                .to_string()
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            TokenError::Malformed(message)
        })
    }

    /// The reference applied.
    pub fn target(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_what_was_written() {
        let continuation = Continuation {
            image: "shop:v2".into(),
            target: Some(format!("shop@sha256:{}", "a".repeat(64))),
            previous: Some("shop:v1".into()),
            started_at: 1_800_000_000,
            earlier_verdict: None,
            phase: Phase::Canary,
            step: 1,
            bake_started: Some(1_800_000_060),
            owner: Some("11111111-abcd-1111-abcd-111111111111".into()),
        };
        let token = continuation.encode().unwrap();
        assert_eq!(Continuation::decode(&token), Ok(continuation));
    }

    #[test]
    fn a_token_too_long_for_codepipeline_is_refused_when_written() {
        // An image reference may be up to 4096 characters; the token carries it twice (as
        // given and pinned), and the previous image.
        let long = format!("registry.example.com/{}:v2", "a".repeat(1200));
        let continuation = Continuation {
            image: long.clone(),
            target: None,
            previous: Some(long),
            started_at: 1_800_000_000,
            earlier_verdict: None,
            phase: Phase::Rollout,
            step: 0,
            bake_started: None,
            owner: None,
        };
        let Err(TokenError::TooLong(chars)) = continuation.encode() else {
            panic!("a token over {MAX_TOKEN_CHARS} characters was written");
        };
        assert!(chars > MAX_TOKEN_CHARS, "{chars}");
        assert_eq!(
            TokenError::TooLong(chars).to_string(),
            format!(
                "the continuation token is {chars} characters, more than the 2048 CodePipeline carries"
            )
        );
        // Just within the limit it is written.
        let fits = Continuation {
            previous: None,
            ..continuation
        };
        let token = fits.encode().unwrap();
        assert!(token.chars().count() <= MAX_TOKEN_CHARS);
    }

    #[test]
    fn a_token_of_the_rolling_only_version_is_a_main_rollout() {
        let old = r#"{"image":"shop:v2","previous":"shop:v1","startedAt":1800000000}"#;
        let read = Continuation::decode(old).unwrap();
        assert_eq!(read.phase, Phase::Rollout);
        assert_eq!(read.target(), "shop:v2");
        assert_eq!(read.step, 0);
    }

    #[test]
    fn a_foreign_token_is_a_typed_error() {
        assert!(matches!(
            Continuation::decode("not json"),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            Continuation::decode(r#"{"image":"x","previous":null,"startedAt":1,"phase":"warp"}"#),
            Err(TokenError::Malformed(_))
        ));
        assert_eq!(
            Continuation::decode(&"x".repeat(3000)),
            Err(TokenError::TooLong(3000))
        );
    }
}
