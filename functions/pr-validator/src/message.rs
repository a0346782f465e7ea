//! What a pull-request author reads: the comments, as Markdown, and the request tokens that
//! make posting them idempotent. Pure: the same build always gives the same text and tokens.

use std::fmt::Write as _;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use shared::events::codebuild::{BuildStateChange, BuildStatus, build_console_url, build_duration};
use shared::ports::{MAX_COMMENT_CHARS, PullRequestApproval};
use shared::reports::BuildTests;
use shared::text::{clip, human_duration, short_commit};

/// The kinds of comment pr-validator posts; each build gets at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentKind {
    /// "Build started for …".
    Started,
    /// The finished build's result, with its badge.
    Result,
    /// A finished build whose commit is no longer the pull request's head.
    Superseded,
}

impl CommentKind {
    /// The part of the comment's token naming its kind. A build's result and "superseded" share
    /// one: a build is reported once, whichever comes first (its event, a redelivery or the
    /// sweep), and a report after it is refused by CodeCommit as the same token, never posted.
    fn token_kind(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Result | Self::Superseded => "result",
        }
    }
}

/// The `clientRequestToken` of the `kind` comment on pull request `pull_request_id` about
/// build `build_id`.
///
/// Deterministic, so a redelivered event or a retry posts under the same token and CodeCommit
/// answers the comment already there instead of posting a second one. The build is part of it
/// (not only the commit) because a reopened pull request builds its commit again, and that new
/// build deserves its own comments.
pub fn comment_token(kind: CommentKind, pull_request_id: &str, build_id: &str) -> String {
    let hash = fnv1a(&["pr-validator", kind.token_kind(), pull_request_id, build_id]);
    format!("prv-{pull_request_id}-{}-{hash:016x}", kind.token_kind())
}

/// StartBuild's `idempotencyToken` for building `source_commit` of a pull request revision on
/// the event `event_id`.
///
/// Derived from the event and everything the build request carries: a redelivered event (same
/// id) within CodeBuild's five-minute window answers the build already started; a request that
/// differs (another revision of the same commit) is a new build rather than CodeBuild's
/// parameter-mismatch error; and another event for the same commit (a pull request closed and
/// reopened) gets a build of its own, where the token alone would answer the finished build
/// whose result nobody reported while the pull request was closed.
pub fn build_token(
    event_id: &str,
    pull_request_id: &str,
    repository: &str,
    source_commit: &str,
    destination_commit: &str,
    revision_id: &str,
) -> String {
    let hash = fnv1a(&[
        "pr-validator",
        event_id,
        pull_request_id,
        repository,
        source_commit,
        destination_commit,
        revision_id,
    ]);
    format!(
        "prv-{pull_request_id}-{}-{hash:016x}",
        short_commit(source_commit)
    )
}

/// 64-bit FNV-1a over the parts, each followed by a 0 byte so `["ab", "c"]` and `["a", "bc"]`
/// differ. Not a defence against anyone: the inputs are ids the service itself assigned, and
/// the token only has to be stable across Rust versions (std's hasher promises no such thing).
fn fnv1a(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// A build as a Markdown link to its console page: `[shop-pr #12](https://…)`.
pub fn build_link(project: &str, number: Option<u64>, build_arn: &str) -> String {
    let name = match number {
        Some(number) => format!("{project} #{number}"),
        None => format!("{project} build"),
    };
    match build_console_url(build_arn) {
        Some(url) => format!("[{}]({url})", escape(&name)),
        None => escape(&name),
    }
}

/// "Build started for `4b7615d`: [shop-pr #12](…)."
pub fn started(source_commit: &str, link: &str) -> String {
    format!(
        "Build started for `{}`: {link}.",
        short_commit(source_commit)
    )
}

/// The badge image of a finished build, shields.io-style: `<base>/build-<message>-<color>`.
pub fn badge(badge_base_url: &str, status: BuildStatus) -> String {
    let (message, color) = match status {
        BuildStatus::Succeeded => ("passing", "brightgreen"),
        BuildStatus::Failed => ("failing", "red"),
        BuildStatus::Fault => ("error", "red"),
        BuildStatus::TimedOut => ("timed%20out", "red"),
        BuildStatus::Stopped => ("stopped", "lightgrey"),
        BuildStatus::InProgress | BuildStatus::Other => ("unknown", "lightgrey"),
    };
    format!(
        "![build {}]({badge_base_url}/build-{message}-{color})",
        message.replace("%20", " ")
    )
}

/// The result comment of a finished build of the pull request's head commit: its badge and
/// outcome, the failed phase's reason, its `tests` (counts, failing cases, report links), the
/// approval given, and a link to its logs.
pub fn result(
    event: &EventBridgeEvent<BuildStateChange>,
    source_commit: &str,
    approval: PullRequestApproval,
    badge_base_url: &str,
    tests: &BuildTests,
) -> String {
    let build = &event.detail;
    let outcome = build.outcome();
    let link = build_link(&build.project_name, build.build_number(), &build.build_id);
    let mut text = badge(badge_base_url, outcome);
    text.push_str("\n\n");
    let timing = build_duration(event).map(human_duration);
    let (verb, preposition) = outcome_words(outcome);
    let _ = write!(
        text,
        "**Build {link} of `{}` {verb}**",
        short_commit(source_commit)
    );
    match timing {
        Some(timing) => {
            let _ = writeln!(text, " {preposition} {timing}.");
        }
        None => text.push_str(".\n"),
    }
    if outcome != BuildStatus::Succeeded
        && let Some(phase) = build.failed_phase()
    {
        let _ = writeln!(
            text,
            "\nThe {} phase ended {}:",
            phase.phase_type.replace('_', " "),
            phase.phase_status.as_deref().unwrap_or("FAILED")
        );
        let contexts: Vec<String> = phase
            .phase_context
            .iter()
            .flatten()
            .map(|c| c.trim().trim_start_matches(':').trim())
            .filter(|c| !c.is_empty())
            .map(|c| clip(c, 2_000))
            .collect();
        if !contexts.is_empty() {
            // A fence the message cannot close early.
            text.push_str("\n```text\n");
            for context in contexts {
                let _ = writeln!(text, "{}", context.replace("```", "'''"));
            }
            text.push_str("```\n");
        }
    }
    let mut closing = String::from("\n");
    closing.push_str(match approval {
        PullRequestApproval::Approve => "This revision is approved.",
        PullRequestApproval::Revoke => "This revision is not approved until a build passes.",
    });
    match logs_link(build) {
        Some(url) => {
            let _ = write!(closing, " [Logs]({url})");
        }
        None => closing
            .push_str(" Logs: not available (the build may not have started its log stream)."),
    }
    closing.push('\n');
    // The tests get what the comment's limit leaves: the approval and the logs link always show.
    let room = MAX_COMMENT_CHARS.saturating_sub(text.chars().count() + closing.chars().count());
    text.push_str(&tests.markdown(room));
    text.push_str(&closing);
    clip(&text, MAX_COMMENT_CHARS)
}

/// The comment on a finished build whose commit the pull request has moved on from.
pub fn superseded(
    event: &EventBridgeEvent<BuildStateChange>,
    source_commit: &str,
    head: &str,
) -> String {
    let build = &event.detail;
    let link = build_link(&build.project_name, build.build_number(), &build.build_id);
    let (verb, _) = outcome_words(build.outcome());
    format!(
        "Build {link} of `{}` {verb}, but it is superseded by `{}`: its result changes no approval.",
        short_commit(source_commit),
        short_commit(head)
    )
}

fn outcome_words(status: BuildStatus) -> (&'static str, &'static str) {
    match status {
        BuildStatus::Succeeded => ("passed", "in"),
        BuildStatus::Failed => ("failed", "after"),
        BuildStatus::Fault => ("failed on a CodeBuild fault", "after"),
        BuildStatus::TimedOut => ("timed out", "after"),
        BuildStatus::Stopped => ("was stopped", "after"),
        BuildStatus::InProgress | BuildStatus::Other => ("ended", "after"),
    }
}

fn logs_link(build: &BuildStateChange) -> Option<&str> {
    build
        .additional_information
        .logs
        .as_ref()
        .and_then(|logs| logs.deep_link.as_deref())
        .filter(|link| link.starts_with("https://") && !link.contains([' ', ')']))
}

/// Markdown link text with the characters that would end it escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '[' | ']' | '\\' | '*' | '_' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_distinct_and_short() {
        let started = comment_token(CommentKind::Started, "17", "shop-pr:9a2b");
        assert_eq!(
            started,
            comment_token(CommentKind::Started, "17", "shop-pr:9a2b")
        );
        assert!(started.starts_with("prv-17-started-"), "{started}");
        assert_eq!(started.len(), "prv-17-started-".len() + 16);
        assert_ne!(
            started,
            comment_token(CommentKind::Result, "17", "shop-pr:9a2b")
        );
        assert_ne!(
            started,
            comment_token(CommentKind::Started, "17", "shop-pr:9a2c")
        );
        assert_eq!(
            comment_token(CommentKind::Superseded, "17", "shop-pr:9a2b"),
            comment_token(CommentKind::Result, "17", "shop-pr:9a2b"),
            "one report per build"
        );
        assert_ne!(
            started,
            comment_token(CommentKind::Started, "1", "7shop-pr:9a2b")
        );
        // Pinned: a token must not change between releases, or a retry across a deployment
        // would post twice.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&["a"]), 0x089b_e207_b544_f1e4);

        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let build = build_token("e-1", "17", "shop", &a, &b, "r1");
        assert!(build.starts_with("prv-17-aaaaaaa-"), "{build}");
        assert_eq!(build, build_token("e-1", "17", "shop", &a, &b, "r1"));
        assert_ne!(build, build_token("e-1", "17", "shop", &a, &b, "r2"));
        assert_ne!(build, build_token("e-2", "17", "shop", &a, &b, "r1"));
    }

    #[test]
    fn build_links_point_at_the_console_and_escape_markdown() {
        assert_eq!(
            build_link(
                "shop-pr",
                Some(12),
                "arn:aws:codebuild:us-east-1:123456789012:build/shop-pr:9a2b"
            ),
            "[shop-pr #12](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/shop-pr/build/shop-pr%3A9a2b/?region=us-east-1)"
        );
        assert_eq!(build_link("shop_pr", None, "not-an-arn"), "shop\\_pr build");
    }

    #[test]
    fn badges_follow_the_status() {
        let base = "https://img.shields.io/badge";
        assert_eq!(
            badge(base, BuildStatus::Succeeded),
            "![build passing](https://img.shields.io/badge/build-passing-brightgreen)"
        );
        assert_eq!(
            badge(base, BuildStatus::TimedOut),
            "![build timed out](https://img.shields.io/badge/build-timed%20out-red)"
        );
        assert!(badge(base, BuildStatus::Stopped).ends_with("build-stopped-lightgrey)"));
    }

    #[test]
    fn long_texts_are_cut_to_fit_a_comment() {
        let text = clip(&"é".repeat(20_000), MAX_COMMENT_CHARS);
        assert_eq!(text.chars().count(), MAX_COMMENT_CHARS);
        assert!(text.ends_with('…'));
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(190), "3 min 10 s");
        assert_eq!(human_duration(3_840), "1 h 4 min");
    }
}
