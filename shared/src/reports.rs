//! CodeBuild test reports in words: `412 passed, 3 failed, 2 skipped (98.8 %)`, the failing
//! cases, and a link to the report, as Markdown for a pull-request comment and as plain text for
//! an email. Pure: the same reports always give the same text.
//!
//! Everything here comes from the build: a test's name and message are written by whoever wrote
//! the test, so a name must not be able to turn into Markdown, HTML or a link in the comment, and
//! a message of any size must cost a bounded amount of text.

use std::fmt::Write as _;

use crate::config::{Settings, comma_list};
use crate::error::ConfigError;
use crate::events::codebuild::encode_segment;
use crate::text::{clip, human_duration};

/// The environment variable naming the report groups a function reads, comma-separated (unset:
/// every report a build files).
pub const GROUPS_VARIABLE: &str = "REPORT_GROUPS";

/// The report groups [`GROUPS_VARIABLE`] names: the groups the function's role may read, so a
/// build that also files a report elsewhere does not turn every read into an access denial.
pub fn groups_from_settings<F>(settings: &Settings<F>) -> Result<Vec<String>, ConfigError>
where
    F: Fn(&str) -> Option<String>,
{
    let groups = comma_list(&settings.optional(GROUPS_VARIABLE).unwrap_or_default());
    // CodeBuild's rule for report group names: 2 to 128 letters, digits, '-' and '_'.
    let valid = |name: &str| {
        (2..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    };
    match groups.iter().find(|group| !valid(group)) {
        Some(bad) => Err(ConfigError::new(
            GROUPS_VARIABLE,
            format!("{bad:?} is not a CodeBuild report group name"),
        )),
        None => Ok(groups),
    }
}

/// The failing cases shown per report; past them, "and N more".
pub const MAX_FAILURES_SHOWN: usize = 10;

/// The longest failing-case name shown, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The longest first line of a failing case's message shown, in characters.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// How much of a message is looked at for its first line, in bytes: a message of megabytes costs
/// no more than this.
const MESSAGE_SCAN_BYTES: usize = 4_096;

/// Where a report stands, as BatchGetReports says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    /// `SUCCEEDED` or `FAILED`: its counts are final (`FAILED` means tests failed).
    Ready,
    /// `GENERATING` or `INCOMPLETE`: its counts are not all there yet.
    Processing,
    /// Anything else (`DELETING`, a status this code does not know).
    Unavailable,
}

impl ReportState {
    /// The state of a report whose status is `status`.
    pub fn parse(status: &str) -> Self {
        match status {
            "SUCCEEDED" | "FAILED" => Self::Ready,
            "GENERATING" | "INCOMPLETE" => Self::Processing,
            _ => Self::Unavailable,
        }
    }
}

/// A failing test case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedCase {
    /// Its prefix (the suite or module), as the JUnit file names it.
    pub prefix: Option<String>,
    /// Its name.
    pub name: String,
    /// Its failure message, whole as the report keeps it.
    pub message: Option<String>,
}

/// One test report of a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    /// Its ARN (`arn:aws:codebuild:REGION:ACCOUNT:report/GROUP:ID`).
    pub arn: String,
    /// Its status as CodeBuild spells it (`SUCCEEDED`, `FAILED`, `GENERATING`…).
    pub status: String,
    /// How many cases it holds.
    pub total: u64,
    /// Cases that passed (`SUCCEEDED`).
    pub passed: u64,
    /// Cases that failed (`FAILED`, `ERROR`).
    pub failed: u64,
    /// Cases that were skipped.
    pub skipped: u64,
    /// How long the tests ran, in nanoseconds.
    pub duration_nanos: Option<u64>,
    /// Its first failing cases, at most [`MAX_FAILURES_SHOWN`].
    pub failures: Vec<FailedCase>,
}

impl TestReport {
    /// Where the report stands.
    pub fn state(&self) -> ReportState {
        ReportState::parse(&self.status)
    }

    /// The report group's name, from the ARN.
    pub fn group(&self) -> Option<&str> {
        report_group(&self.arn)
    }

    /// The share of all cases that passed, as CodeBuild's console gives it (skipped ones count
    /// as not passed): `98.8`.
    pub fn pass_rate(&self) -> Option<f64> {
        let all = self.total.max(self.passed + self.failed + self.skipped);
        // Counts of a report are far below 2^53: exact as floats.
        (all > 0).then(|| (self.passed as f64) * 100.0 / (all as f64))
    }

    /// `412 passed, 3 failed, 2 skipped (98.8 %) in 3 min 10 s`.
    pub fn counts(&self) -> String {
        let mut text = format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        if let Some(rate) = self.pass_rate() {
            // Floor to one decimal: 99.96 % of passing tests is not "100.0 %".
            let tenths = (rate * 10.0).floor() / 10.0;
            let _ = write!(text, " ({tenths:.1} %)");
        }
        if let Some(nanos) = self.duration_nanos {
            let _ = write!(text, " in {}", human_duration(nanos / 1_000_000_000));
        }
        text
    }

    /// The report's page in the CodeBuild console.
    pub fn console_url(&self) -> Option<String> {
        let mut parts = self.arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("codebuild"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let report = parts.next()?.strip_prefix("report/")?;
        let ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok(region) || !account.bytes().all(|b| b.is_ascii_digit()) || account.is_empty() {
            return None;
        }
        let host = match partition {
            "aws-cn" => format!("{region}.console.amazonaws.cn"),
            "aws-us-gov" => format!("{region}.console.amazonaws-us-gov.com"),
            _ => format!("{region}.console.aws.amazon.com"),
        };
        Some(format!(
            "https://{host}/codesuite/codebuild/{account}/testReports/reports/{}?region={region}",
            encode_segment(report)
        ))
    }

    fn hidden_failures(&self) -> u64 {
        self.failed.saturating_sub(self.failures.len() as u64)
    }
}

/// The report group of report `arn` (`arn:aws:codebuild:REGION:ACCOUNT:report/GROUP:ID`).
pub fn report_group(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":report/")?;
    rest.rsplit_once(':')
        .map(|(group, _)| group)
        .filter(|group| !group.is_empty())
}

/// What a build's notification says of its tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BuildTests {
    /// The build filed no test report (or none of the groups read): nothing is said, as
    /// before test reports existed.
    #[default]
    None,
    /// Its reports, in the build's order.
    Read(Vec<TestReport>),
    /// They could not be read (throttled, access denied…); the notification goes out without
    /// them rather than not at all.
    Unreadable {
        /// The service's error code, when it gave one (`AccessDeniedException`).
        code: Option<String>,
    },
}

impl BuildTests {
    /// As Markdown for a pull-request comment, in at most `max_chars` characters.
    pub fn markdown(&self, max_chars: usize) -> String {
        match self {
            Self::None => String::new(),
            Self::Read(reports) => markdown_within(reports, max_chars),
            // The error code stays in the log: a comment is read by everyone with the repository.
            Self::Unreadable { .. } => {
                let text = "\n**Tests**: the build's test reports could not be read; they are on the build's page.\n";
                if text.chars().count() <= max_chars {
                    text.to_owned()
                } else {
                    String::new()
                }
            }
        }
    }

    /// As plain text for an email.
    pub fn plain(&self) -> String {
        match self {
            Self::None => String::new(),
            Self::Read(reports) => plain(reports),
            Self::Unreadable { code } => format!(
                "Tests: the build's test reports could not be read ({}); they are on the build's page.\n",
                one_line(code.as_deref().unwrap_or("no answer"))
            ),
        }
    }
}

/// A failing case on one line: `prefix.name: first line of the message`, cut, with no character
/// that could close the code block it is shown in or break the line.
pub fn case_line(case: &FailedCase) -> String {
    // Some JUnit writers (NUnit's, say) already start the name with its prefix.
    let name = match case.prefix.as_deref().filter(|p| !p.is_empty()) {
        Some(prefix) if !case.name.starts_with(prefix) => format!("{prefix}.{}", case.name),
        _ => case.name.clone(),
    };
    let mut line = clip(&one_line(&name), MAX_NAME_CHARS);
    if let Some(message) = case
        .message
        .as_deref()
        .map(first_line)
        .filter(|m| !m.is_empty())
    {
        let _ = write!(line, ": {}", clip(&message, MAX_MESSAGE_CHARS));
    }
    // A fence opened with three backticks closes only on three backticks.
    line.replace('`', "'")
}

/// The first non-empty line of `message`, looking at its first [`MESSAGE_SCAN_BYTES`] only.
fn first_line(message: &str) -> String {
    let mut end = message.len().min(MESSAGE_SCAN_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end]
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(one_line)
        .unwrap_or_default()
}

/// `text` without control characters (a line break or an escape sequence in a name).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Text escaped so Markdown shows it as it is: no emphasis, link, image, heading, HTML tag or
/// entity can come out of it.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in one_line(text).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The reports of a build as Markdown, for the pull-request comment; empty when it has none.
pub fn markdown(reports: &[TestReport]) -> String {
    markdown_within(reports, usize::MAX)
}

/// What closing a report's text may still need: the code block's fence, "and N more." and
/// the line saying reports were left out, so whatever is cut, the text stays well formed.
const CLOSING_RESERVE: usize = 96;

/// Like [`markdown`], in at most `max_chars` characters (a comment has a limit): failing cases
/// that do not fit are counted in "and N more", reports that do not fit are counted at the end;
/// with too little room for any of it, nothing.
pub fn markdown_within(reports: &[TestReport], max_chars: usize) -> String {
    // Too little room for even the closing parts: nothing rather than a cut-off fence.
    if max_chars < 2 * CLOSING_RESERVE {
        return String::new();
    }
    let mut text = Budgeted::new(max_chars - CLOSING_RESERVE);
    for (index, report) in reports.iter().enumerate() {
        let group = escape_markdown(report.group().unwrap_or("test report"));
        let title = match report.console_url() {
            Some(url) => format!("[{group}]({url})"),
            None => group,
        };
        let header = match report.state() {
            ReportState::Processing => {
                format!("\n**Tests** {title}: the report is still being processed.\n")
            }
            ReportState::Unavailable => {
                format!("\n**Tests** {title}: the report is not available.\n")
            }
            ReportState::Ready => format!("\n**Tests** {title}: {}.\n", report.counts()),
        };
        if !text.try_push(&header) {
            let left = reports.len() - index;
            text.force(&format!(
                "\n{left} more test report{} on the build's page.\n",
                if left == 1 { "" } else { "s" }
            ));
            break;
        }
        if report.state() != ReportState::Ready {
            continue;
        }
        let mut shown = 0_u64;
        for case in &report.failures {
            let opening = if shown == 0 { "\n```text\n" } else { "" };
            if !text.try_push(&format!("{opening}{}\n", case_line(case))) {
                break;
            }
            shown += 1;
        }
        if shown > 0 {
            text.force("```\n");
        }
        let more = report.failed.saturating_sub(shown);
        if more > 0 {
            text.force(&format!("and {more} more.\n"));
        }
    }
    text.into_string()
}

/// Text that grows while it stays within a number of characters.
struct Budgeted {
    text: String,
    chars: usize,
    max_chars: usize,
}

impl Budgeted {
    fn new(max_chars: usize) -> Self {
        Self {
            text: String::new(),
            chars: 0,
            max_chars,
        }
    }

    /// Adds `part` if it fits; says whether it did.
    fn try_push(&mut self, part: &str) -> bool {
        let length = part.chars().count();
        if self.chars + length > self.max_chars {
            return false;
        }
        self.force(part);
        true
    }

    /// Adds `part` whether it fits or not: for the short closing parts the reserve is kept for.
    fn force(&mut self, part: &str) {
        self.chars += part.chars().count();
        self.text.push_str(part);
    }

    fn into_string(self) -> String {
        self.text
    }
}

/// The reports of a build as plain text, for an email; empty when it has none.
pub fn plain(reports: &[TestReport]) -> String {
    let mut text = String::new();
    for report in reports {
        let group = one_line(report.group().unwrap_or("test report"));
        match report.state() {
            ReportState::Processing => {
                let _ = writeln!(
                    text,
                    "Tests ({group}): the report is still being processed."
                );
            }
            ReportState::Unavailable => {
                let _ = writeln!(text, "Tests ({group}): the report is not available.");
            }
            ReportState::Ready => {
                let _ = writeln!(text, "Tests ({group}): {}.", report.counts());
                for case in &report.failures {
                    let _ = writeln!(text, "  - {}", case_line(case));
                }
                let more = report.hidden_failures();
                if more > 0 {
                    let _ = writeln!(text, "  and {more} more.");
                }
            }
        }
        if let Some(url) = report.console_url() {
            let _ = writeln!(text, "  Report: {url}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:codebuild:us-east-1:123456789012:report/shop-pr-tests:7f3c";

    fn report(passed: u64, failed: u64, skipped: u64, failures: usize) -> TestReport {
        TestReport {
            arn: ARN.into(),
            status: "FAILED".into(),
            total: passed + failed + skipped,
            passed,
            failed,
            skipped,
            duration_nanos: Some(190_000_000_000),
            failures: (0..failures)
                .map(|i| FailedCase {
                    prefix: Some("shop::cart".into()),
                    name: format!("case_{i}"),
                    message: Some(format!("assertion failed: left == right\nleft: {i}")),
                })
                .collect(),
        }
    }

    #[test]
    fn counts_read_as_a_person_says_them() {
        assert_eq!(
            report(412, 3, 2, 3).counts(),
            "412 passed, 3 failed, 2 skipped (98.8 %) in 3 min 10 s"
        );
        let mut r = report(2, 1, 0, 1);
        r.duration_nanos = None;
        assert_eq!(r.counts(), "2 passed, 1 failed, 0 skipped (66.6 %)");
        assert_eq!(
            report(9_999, 1, 0, 1).counts(),
            "9999 passed, 1 failed, 0 skipped (99.9 %) in 3 min 10 s",
            "never rounded up to 100 %"
        );
        assert_eq!(report(0, 0, 4, 0).pass_rate(), Some(0.0));
        assert_eq!(report(0, 0, 0, 0).pass_rate(), None);
    }

    #[test]
    fn failing_cases_are_shown_up_to_ten_then_counted() {
        let text = markdown(&[report(412, 25, 0, MAX_FAILURES_SHOWN)]);
        assert!(
            text.contains("**Tests** [shop\\-pr\\-tests](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/testReports/reports/shop-pr-tests%3A7f3c?region=us-east-1): 412 passed, 25 failed"),
            "{text}"
        );
        assert!(text.contains("```text\nshop::cart.case_0: assertion failed: left == right\n"));
        assert!(text.contains("shop::cart.case_9: assertion failed"));
        assert!(!text.contains("left: 0"), "first line only");
        assert!(text.contains("```\nand 15 more.\n"), "{text}");
        let all = markdown(&[report(5, 2, 0, 2)]);
        assert!(!all.contains("more"), "{all}");
    }

    #[test]
    fn a_report_still_being_processed_says_so() {
        for status in ["GENERATING", "INCOMPLETE"] {
            let mut r = report(1, 1, 0, 0);
            r.status = status.into();
            let text = markdown(&[r.clone()]);
            assert!(text.contains("still being processed"), "{text}");
            assert!(!text.contains("passed"), "{text}");
            assert!(plain(&[r]).contains("still being processed"));
        }
        assert_eq!(markdown(&[]), "");
        assert_eq!(plain(&[]), "");
    }

    #[test]
    fn names_and_messages_cannot_inject_markdown_html_or_links() {
        let mut r = report(1, 1, 0, 0);
        r.arn =
            "arn:aws:codebuild:us-east-1:123456789012:report/x](https://evil.example)<b>:1".into();
        r.failures = vec![FailedCase {
            prefix: None,
            name: "```\n[click](https://evil.example) <img src=x onerror=alert(1)>".into(),
            message: Some("**bold** ```\n</code>".into()),
        }];
        let text = markdown(&[r]);
        let fences = text.matches("```").count();
        assert_eq!(fences, 2, "only our own fence: {text}");
        // Outside the code block, where Markdown is read, no link and no tag of theirs.
        let (title, block) = text.split_once("```text").unwrap();
        assert!(!title.contains("](https://evil"), "{title}");
        assert!(!title.contains("<b>"), "{title}");
        assert!(title.contains("&lt;b&gt;"), "{title}");
        assert!(
            block.matches('\n').count() == 3,
            "the fence, one line for the case, the closing fence: {block}"
        );
        assert!(
            text.contains("''' [click](https://evil.example) <img"),
            "inside the code block, shown as text: {text}"
        );
        assert_eq!(escape_markdown("[a](b) <i>"), "\\[a\\]\\(b\\) &lt;i&gt;");
    }

    #[test]
    fn a_huge_message_is_cut() {
        let mut r = report(1, 1, 0, 0);
        r.failures = vec![FailedCase {
            prefix: None,
            name: "n".repeat(100_000),
            message: Some("é".repeat(50_000)),
        }];
        let line = case_line(&r.failures[0]);
        assert!(
            line.chars().count() <= MAX_NAME_CHARS + 2 + MAX_MESSAGE_CHARS,
            "{}",
            line.len()
        );
        assert!(line.ends_with('…'));
        assert!(markdown(&[r]).len() < 2_000);
    }

    #[test]
    fn two_report_groups_are_both_shown_and_plain_text_has_links() {
        let mut other = report(10, 0, 1, 0);
        other.arn = "arn:aws:codebuild:us-east-1:123456789012:report/shop-lint:9".into();
        other.status = "SUCCEEDED".into();
        let reports = [report(4, 1, 0, 1), other];
        let text = markdown(&reports);
        assert!(text.contains("shop\\-pr\\-tests"));
        assert!(text.contains("shop\\-lint"));
        assert!(text.contains("10 passed, 0 failed, 1 skipped (90.9 %)"));
        let mail = plain(&reports);
        assert!(
            mail.contains("Tests (shop-pr-tests): 4 passed, 1 failed"),
            "{mail}"
        );
        assert!(
            mail.contains("  - shop::cart.case_0: assertion failed"),
            "{mail}"
        );
        assert!(mail.contains("Report: https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/testReports/reports/shop-lint%3A9?region=us-east-1"));
    }

    #[test]
    fn foreign_arns_have_no_link() {
        let mut r = report(1, 0, 0, 0);
        r.arn = "arn:aws:s3:::bucket".into();
        assert_eq!(r.console_url(), None);
        assert_eq!(r.group(), None);
    }

    #[test]
    fn a_name_that_starts_with_its_prefix_is_not_prefixed_twice() {
        let case = FailedCase {
            prefix: Some("NUnit.Tests.MockTestFixture".into()),
            name: "NUnit.Tests.MockTestFixture.NotRunnableTest".into(),
            message: Some("No arguments were provided\n".into()),
        };
        assert_eq!(
            case_line(&case),
            "NUnit.Tests.MockTestFixture.NotRunnableTest: No arguments were provided"
        );
    }

    #[test]
    fn a_budget_cuts_cases_into_and_n_more_and_reports_into_a_count_keeping_fences_closed() {
        let mut long = report(400, 10, 0, 0);
        long.failures = (0..10)
            .map(|i| FailedCase {
                prefix: None,
                name: format!("{i}{}", "n".repeat(MAX_NAME_CHARS)),
                message: Some("m".repeat(MAX_MESSAGE_CHARS * 2)),
            })
            .collect();
        let mut second = long.clone();
        second.arn = "arn:aws:codebuild:us-east-1:123456789012:report/shop-lint:9".into();
        let reports = [long.clone(), second, long];
        let whole = markdown(&reports);
        assert!(whole.chars().count() > 10_000, "{}", whole.len());

        for budget in [400, 1_500, 3_000, 6_000] {
            let text = markdown_within(&reports, budget);
            assert!(
                text.chars().count() <= budget,
                "{budget}: {}",
                text.chars().count()
            );
            assert_eq!(text.matches("```").count() % 2, 0, "fences closed: {text}");
            assert!(text.contains(" more."), "{budget}: {text}");
        }
        let tight = markdown_within(&reports, 1_000);
        assert!(
            tight.contains("```\nand 9 more.\n"),
            "one case fits: {tight}"
        );
        assert!(
            tight.contains("more test reports on the build's page."),
            "{tight}"
        );
        assert_eq!(markdown_within(&reports, usize::MAX), whole);
        for tiny in [0, 10, 100, 191] {
            assert_eq!(markdown_within(&reports, tiny), "", "{tiny}");
        }
    }

    #[test]
    fn build_tests_say_nothing_the_reports_or_that_they_could_not_be_read() {
        assert_eq!(BuildTests::None.markdown(10_000), "");
        assert_eq!(BuildTests::None.plain(), "");
        let read = BuildTests::Read(vec![report(4, 1, 0, 1)]);
        assert_eq!(read.markdown(usize::MAX), markdown(&[report(4, 1, 0, 1)]));
        assert_eq!(read.plain(), plain(&[report(4, 1, 0, 1)]));
        let unreadable = BuildTests::Unreadable {
            code: Some("AccessDeniedException".into()),
        };
        let comment = unreadable.markdown(10_000);
        assert!(comment.contains("could not be read"), "{comment}");
        assert!(
            !comment.contains("AccessDenied"),
            "the code stays in the log: {comment}"
        );
        assert!(
            unreadable
                .plain()
                .contains("could not be read (AccessDeniedException)"),
            "{}",
            unreadable.plain()
        );
        assert_eq!(
            report_group("arn:aws:codebuild:us-east-1:1:report/g:1"),
            Some("g")
        );
        assert_eq!(
            report_group("arn:aws:codebuild:us-east-1:1:report/:1"),
            None
        );
    }

    #[test]
    fn report_groups_are_read_from_their_variable_and_checked() {
        use crate::config::map_lookup;
        let read = |value: &str| {
            let pairs = [(GROUPS_VARIABLE, value)];
            groups_from_settings(&Settings::new(map_lookup(&pairs)))
        };
        assert_eq!(
            read(" shop-pr-tests, shop_lint ").unwrap(),
            ["shop-pr-tests", "shop_lint"]
        );
        assert!(read("").unwrap().is_empty(), "unset: every report");
        let error = read("shop-pr-tests,report/x").unwrap_err();
        assert_eq!(error.variable(), GROUPS_VARIABLE);
        assert!(read("x").is_err(), "too short");
    }
}
