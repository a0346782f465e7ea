//! The test summary of pull-request comments and emails (`shared::reports`) on arbitrary test
//! names, prefixes, messages, report ARNs and counts: what a PR's code writes into its JUnit
//! files. Whatever they hold, the Markdown fits its budget, opens no code fence it does not
//! close, and shows nothing of theirs outside the fence as Markdown, HTML or a link.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::reports::{
    BuildTests, FailedCase, MAX_FAILURES_SHOWN, TestReport, case_line, markdown_within, plain,
};

/// The parts of `data` between 0xFF bytes, as text.
fn parts(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0xFF)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let budget = usize::from(u16::from_le_bytes([head[0], head[1]]));
    let statuses = [
        "SUCCEEDED",
        "FAILED",
        "GENERATING",
        "INCOMPLETE",
        "DELETING",
        "",
    ];
    let mut parts = parts(rest).into_iter();
    let mut reports = Vec::new();
    for index in 0..usize::from(head[2] % 4) {
        let arn = parts.next().unwrap_or_default();
        let mut report = TestReport {
            arn: format!("arn:aws:codebuild:us-east-1:123456789012:report/{arn}"),
            status: statuses[(usize::from(head[3]) + index) % statuses.len()].to_owned(),
            total: u64::from(head[3]) * 7,
            passed: u64::from(head[3]),
            failed: u64::from(head[2]) * 3,
            skipped: u64::from(head[0] % 5),
            duration_nanos: Some(u64::from(head[1]) * 1_000_000_007),
            failures: Vec::new(),
        };
        for _ in 0..MAX_FAILURES_SHOWN {
            let Some(name) = parts.next() else { break };
            report.failures.push(FailedCase {
                prefix: parts.next().filter(|p| !p.is_empty()),
                name,
                message: parts.next(),
            });
        }
        reports.push(report);
    }

    let text = markdown_within(&reports, budget);
    assert!(
        text.chars().count() <= budget,
        "{} > {budget}",
        text.chars().count()
    );
    let segments: Vec<&str> = text.split("```").collect();
    assert!(segments.len() % 2 == 1, "an unclosed fence: {text}");
    for (index, segment) in segments.iter().enumerate() {
        if index % 2 == 1 {
            // Inside a fence: `text`, then one line per case, none with a backtick.
            assert!(segment.starts_with("text\n"), "{segment}");
            continue;
        }
        // Outside: only our own links (the report's console page) and no tag of theirs.
        assert!(!segment.contains('<'), "{segment}");
        assert!(!segment.contains("!["), "{segment}");
        for (at, _) in segment.match_indices("](") {
            assert!(
                segment[at..].starts_with("](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/testReports/reports/"),
                "{segment}"
            );
        }
    }
    for report in &reports {
        for case in &report.failures {
            let line = case_line(case);
            assert!(!line.contains(['`', '\n', '\r']), "{line}");
            assert!(line.chars().count() <= 200 + 2 + 300, "{}", line.len());
        }
    }
    let mail = plain(&reports);
    assert!(!mail.chars().any(|c| c.is_control() && c != '\n'), "{mail}");
    let unreadable = BuildTests::Unreadable { code: None }.markdown(budget);
    assert!(unreadable.chars().count() <= budget);
});
