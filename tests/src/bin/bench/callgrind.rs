//! Where a function's CPU goes, counted in instructions: `tests/scripts/bench --callgrind`.
//!
//! CPU time moves with the load of this shared VM and hardware counters are not available in
//! it; valgrind's callgrind counts the instructions a process executes, which is the same on a
//! loaded machine as on an idle one. Each function (its `profiling` build: the release profile
//! with symbols and line tables) runs under `valgrind --tool=callgrind` twice against the
//! emulators, through the Runtime API emulator, with the bench's own workload: once for
//! [`WARMUP`] events, once for [`WARMUP`] + `n` events, each run ending on SIGTERM, on which
//! valgrind writes its profile. The difference of the two profiles is `n` warm events, cold
//! start and exit left out; divided by `n`, one event.
//!
//! `callgrind_annotate` lists the instructions of each `file:function` (the file of the source
//! line, so code inlined from serde into an SDK crate counts as serde's); each line goes to one
//! of [`GROUPS`] by the crate of its source file (a path under `.cargo/registry/src/*/NAME-VER/`,
//! or the workspace), or else by the crate its symbol names first. Rust's own `library/` is the
//! exception: its generic code inlined into another crate's function is that crate's work. One AWS
//! call is the SDK's own groups (orchestrator and interceptors with the services' serializers,
//! SigV4, HTTP) of one event divided by its AWS calls (the AWS emulator's request log), and,
//! as an upper bound, everything but our code and the Lambda runtime divided the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration_tests::Function;
use serde::Serialize;

use crate::AwsLog;
use crate::measure::Subject;
use crate::workloads::Workload;

/// Events before the counted ones: the first makes the connections and fills the caches.
pub const WARMUP: usize = 3;

/// Valgrind runs a program 20–50 times slower: generous limits.
const START_LIMIT: Duration = Duration::from_secs(180);
const EVENT_LIMIT: Duration = Duration::from_secs(180);
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// The groups instructions are split into, in report order, with the crates of each (a name
/// ending in `*` is a prefix). What no group names is `other`.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "ours",
        &[
            "shared",
            "codecommit_push",
            "codebuild_status",
            "pr_validator",
            "approval_notify",
            "approval_callback",
            "eks_deploy",
            "delivery_events",
        ],
    ),
    (
        "lambda_runtime",
        &[
            "lambda_runtime",
            "lambda_runtime_api_client",
            "lambda_http",
            "aws_lambda_events",
        ],
    ),
    (
        "serde",
        &["serde", "serde_core", "serde_json", "serde_path_to_error"],
    ),
    (
        "tracing",
        &[
            "tracing",
            "tracing_core",
            "tracing_subscriber",
            "tracing_log",
            "sharded_slab",
            "thread_local",
            "nu_ansi_term",
        ],
    ),
    (
        "SDK orchestrator",
        &[
            "aws_smithy_*",
            "aws_sdk_*",
            "aws_runtime",
            "aws_types",
            "aws_config",
            "aws_credential_types",
        ],
    ),
    (
        "SigV4",
        &[
            "aws_sigv4",
            "sha2",
            "hmac",
            "digest",
            "block_buffer",
            "crypto_common",
            "hex",
            "percent_encoding",
            "form_urlencoded",
            "time",
        ],
    ),
    (
        "hyper/rustls",
        &[
            "hyper",
            "hyper_util",
            "hyper_rustls",
            "h2",
            "http",
            "http_body",
            "http_body_util",
            "httparse",
            "rustls",
            "rustls_pki_types",
            "tokio_rustls",
            "aws_lc_rs",
            "aws_lc_sys",
            "ring",
            "tower",
            "tower_service",
            "tower_layer",
        ],
    ),
    (
        "tokio",
        &[
            "tokio",
            "mio",
            "bytes",
            "futures_util",
            "futures_core",
            "pin_project_lite",
        ],
    ),
    ("std/libc", &["core", "alloc", "std", "libc"]),
];

/// Rust's own library.
const STD_CRATES: [&str; 3] = ["core", "alloc", "std"];

/// Groups an AWS call's own work is made of.
const CALL_GROUPS: [&str; 3] = ["SDK orchestrator", "SigV4", "hyper/rustls"];

/// One function's instructions.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// The function.
    pub function: String,
    /// Warm events counted.
    pub events: usize,
    /// AWS calls per event.
    pub calls_per_event: f64,
    /// Instructions per event, in all.
    pub per_event: f64,
    /// Instructions per event, by group.
    pub groups: BTreeMap<String, f64>,
    /// The SDK's own instructions per AWS call (orchestrator, SigV4, HTTP).
    pub per_call: Option<f64>,
    /// Everything but our code and the Lambda runtime, per AWS call: an upper bound.
    pub per_call_at_most: Option<f64>,
    /// The functions (`file:function`) with the most instructions per event.
    pub top: Vec<(String, f64)>,
}

/// Profiles `subject` (a Rust function) over `events` warm events of `workload`.
pub async fn profile<W: Workload>(
    subject: &Subject,
    workload: &mut W,
    events: usize,
    aws_log: &AwsLog,
    out_dir: &Path,
) -> Profile {
    std::fs::create_dir_all(out_dir).unwrap();
    let short_file = out_dir.join(format!("{}-{WARMUP}.out", subject.function));
    let long_file = out_dir.join(format!("{}-{}.out", subject.function, WARMUP + events));
    let mut next = 0;
    let short_calls = run(subject, workload, &mut next, WARMUP, aws_log, &short_file).await;
    let long_calls = run(
        subject,
        workload,
        &mut next,
        WARMUP + events,
        aws_log,
        &long_file,
    )
    .await;
    let short = annotate(&short_file);
    let long = annotate(&long_file);
    let per = |long: f64, short: f64| (long - short).max(0.0) / events as f64;

    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_function: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (entry, count) in &long {
        by_function.entry(entry.clone()).or_default().1 += count;
    }
    for (entry, count) in &short {
        by_function.entry(entry.clone()).or_default().0 += count;
    }
    for (entry, (short, long)) in &by_function {
        *groups.entry(group_of(entry).to_owned()).or_default() += per(*long, *short);
    }
    let per_event: f64 = groups.values().sum();
    let calls_per_event = long_calls.saturating_sub(short_calls) as f64 / events as f64;
    let call_work: f64 = CALL_GROUPS
        .iter()
        .map(|g| groups.get(*g).copied().unwrap_or_default())
        .sum();
    let not_ours = per_event
        - groups.get("ours").copied().unwrap_or_default()
        - groups.get("lambda_runtime").copied().unwrap_or_default();
    let mut top: Vec<(String, f64)> = by_function
        .iter()
        .map(|(entry, (short, long))| (entry.clone(), per(*long, *short)))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(15);
    Profile {
        function: subject.function.clone(),
        events,
        calls_per_event,
        per_event,
        groups,
        per_call: (calls_per_event > 0.0).then(|| call_work / calls_per_event),
        per_call_at_most: (calls_per_event > 0.0).then(|| not_ours / calls_per_event),
        top,
    }
}

/// Runs `subject` under callgrind for `count` events (numbered from `next` on), writing its
/// profile to `out`; returns the AWS calls the function made after its cold start.
async fn run<W: Workload>(
    subject: &Subject,
    workload: &mut W,
    next: &mut usize,
    count: usize,
    aws_log: &AwsLog,
    out: &Path,
) -> u64 {
    let _ = std::fs::remove_file(out);
    let mut args = vec![
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
        subject.program.display().to_string(),
    ];
    args.extend(subject.args.iter().cloned());
    let valgrind = Subject {
        program: PathBuf::from("valgrind"),
        args,
        ..subject.clone()
    };
    let function = valgrind.start_ready(START_LIMIT).await;
    aws_log.clear().await;
    drive(
        &function,
        &subject.label(),
        workload,
        next,
        count,
        EVENT_LIMIT,
    )
    .await;
    let calls: u64 = aws_log.counts().await.values().sum();
    let ended = function.terminate(EXIT_LIMIT).await;
    assert!(
        ended && out.exists(),
        "{}: valgrind wrote no profile to {}",
        subject.label(),
        out.display()
    );
    calls
}

/// Sends `count` events of `workload` (numbered from `next` on) to `function`, one after the
/// other, each checked, waiting each time until the function asks for the next one.
pub async fn drive<W: Workload>(
    function: &Function,
    label: &str,
    workload: &mut W,
    next: &mut usize,
    count: usize,
    limit: Duration,
) {
    let runtime = function.runtime();
    for _ in 0..count {
        let index = *next;
        *next += 1;
        let (kind, event) = workload.event(index).await;
        let polls = runtime.polls();
        let result = runtime.invoke(&event, limit).await;
        assert!(
            runtime.wait_for_polls(polls + 1, limit).await,
            "{label} did not ask for more work after event {index} ({kind})"
        );
        workload.check(&kind, &result).unwrap_or_else(|problem| {
            panic!("{label}: event {index} ({kind}) went wrong: {problem}")
        });
        workload.after(&kind, &result).await;
    }
}

/// `file:function` → instructions, from `callgrind_annotate` of `file`.
fn annotate(file: &Path) -> BTreeMap<String, f64> {
    parse_annotation(&report_of(
        "callgrind_annotate",
        &[
            "--threshold=100",
            "--show-percs=no",
            "--auto=no",
            "--inclusive=no",
        ],
        file,
    ))
}

/// What `program` with `args` prints about the profile in `file`; a failure stops the run.
pub fn report_of(program: &str, args: &[&str], file: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The per-function lines of `callgrind_annotate` (`1,234  file:function [object]`); the
/// program totals line (`PROGRAM TOTALS`) is left out.
pub fn parse_annotation(text: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((number, rest)) = line.split_once(' ') else {
            continue;
        };
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == ',') {
            continue;
        }
        let entry = rest.trim();
        if entry.is_empty() || entry.starts_with("PROGRAM TOTALS") || !entry.contains(':') {
            continue;
        }
        let Ok(count) = number.replace(',', "").parse::<f64>() else {
            continue;
        };
        *counts.entry(entry.to_owned()).or_default() += count;
    }
    counts
}

/// The group of a `file:function [object]` entry.
pub fn group_of(entry: &str) -> &'static str {
    let (file, rest) = entry.split_once(':').unwrap_or(("???", entry));
    let (symbol, object) = match rest.rsplit_once(" [") {
        Some((symbol, object)) => (symbol, object.trim_end_matches(']')),
        None => (rest, ""),
    };
    // Rust's own library is mostly generic code inlined into its callers (an integer rotate in
    // SHA-256, an iterator in the SDK): it counts as the work of the function it runs in, and as
    // std's only in std's own functions.
    let symbol_crate = crate_of_symbol(symbol);
    let krate = match crate_of_file(file) {
        Some(library) if STD_CRATES.contains(&library.as_str()) => symbol_crate
            .filter(|krate| !STD_CRATES.contains(&krate.as_str()))
            .or(Some(library)),
        Some(krate) => Some(krate),
        None => symbol_crate,
    };
    if let Some(krate) = krate {
        for (group, crates) in GROUPS {
            let named = crates.iter().any(|c| match c.strip_suffix('*') {
                Some(prefix) => krate.starts_with(prefix),
                None => krate == *c,
            });
            if named {
                return group;
            }
        }
        return "other";
    }
    // Without a source file or a Rust path: the C library's allocator and memcpy, the loader.
    if object.contains("libc.so") || object.contains("libm.so") {
        return "std/libc";
    }
    "other"
}

/// The crate a source path belongs to: a crates.io package (`…/registry/src/INDEX/NAME-VERSION/…`),
/// Rust's own library (`…/library/core/…`), or a workspace crate (`functions/NAME`, `shared`).
fn crate_of_file(file: &str) -> Option<String> {
    if let Some((_, after)) = file.split_once("/registry/src/") {
        let package = after.split('/').nth(1)?;
        let name = match package.rsplit_once('-') {
            Some((name, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => name,
            _ => package,
        };
        return Some(name.replace('-', "_"));
    }
    if let Some((_, after)) = file.split_once("/library/") {
        return after.split('/').next().map(str::to_owned);
    }
    if let Some((_, after)) = file.split_once("functions/") {
        return after.split('/').next().map(|name| name.replace('-', "_"));
    }
    if file.starts_with("shared/") || file.contains("/shared/src/") {
        return Some("shared".to_owned());
    }
    None
}

/// The crate a demangled Rust symbol names first (`<hyper::proto::… as …>::f` → `hyper`).
fn crate_of_symbol(symbol: &str) -> Option<String> {
    let trimmed = symbol.trim_start_matches(['<', '&', '*', ' ']);
    let trimmed = trimmed
        .trim_start_matches("dyn ")
        .trim_start_matches("mut ")
        .trim_start_matches("const ");
    let (first, _) = trimmed.split_once("::")?;
    first
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| first.to_owned())
}

/// The report's section: one row per function, thousands of instructions.
pub fn markdown(profiles: &[Profile], command: &str) -> String {
    let thousands = |n: f64| format!("{:.0}", n / 1e3);
    let mut text = String::new();
    text.push_str("| function | AWS calls / event | k instr. / event |");
    for (group, _) in GROUPS {
        text.push_str(&format!(" {group} |"));
    }
    text.push_str(" other | k instr. / AWS call (SDK, SigV4, HTTP) | at most (all but ours and the runtime) |\n|");
    text.push_str(&" --- |".repeat(GROUPS.len() + 6));
    text.push('\n');
    for profile in profiles {
        text.push_str(&format!(
            "| {} | {:.1} | {} |",
            profile.function,
            profile.calls_per_event,
            thousands(profile.per_event)
        ));
        for group in GROUPS.iter().map(|(g, _)| *g).chain(["other"]) {
            let value = profile.groups.get(group).copied().unwrap_or_default();
            text.push_str(&format!(" {} |", thousands(value)));
        }
        let or_dash = |v: Option<f64>| v.map_or("–".to_owned(), thousands);
        text.push_str(&format!(
            " {} | {} |\n",
            or_dash(profile.per_call),
            or_dash(profile.per_call_at_most)
        ));
    }
    text.push_str(&format!(
        "\nMeasured with `{command}` ({} warm events per function after {WARMUP} \
         uncounted ones; thousands of instructions, split by the crate of each instruction's \
         source line).\n",
        profiles.first().map_or(0, |p| p.events)
    ));
    for profile in profiles {
        text.push_str(&top_table(
            &format!(
                "{}: the functions with the most instructions per event",
                profile.function
            ),
            ("k instr.", "file:function"),
            profile
                .top
                .iter()
                .map(|(entry, count)| (thousands(*count), entry.as_str())),
        ));
    }
    text
}

/// A folded table under `summary`: one row per (figure, name), the name as code, cut short.
pub fn top_table<'a>(
    summary: &str,
    (figure, name): (&str, &str),
    rows: impl Iterator<Item = (String, &'a str)>,
) -> String {
    let mut text = format!(
        "\n<details><summary>{summary}</summary>\n\n| {figure} | {name} |\n| --- | --- |\n"
    );
    for (value, entry) in rows {
        let short: String = entry.chars().take(160).collect();
        text.push_str(&format!(
            "| {value} | `{}` |\n",
            short.replace('|', "\\|").replace('`', "'")
        ));
    }
    text.push_str("\n</details>\n");
    text
}

/// Puts `section` between the `<!-- NAME -->` and `<!-- /NAME -->` markers of `document`;
/// `None` when it has no such markers.
pub fn splice_between(document: &str, name: &str, section: &str) -> Option<String> {
    let begin = format!("<!-- {name} -->");
    let end_marker = format!("<!-- /{name} -->");
    let start = document.find(&begin)? + begin.len();
    let end = start + document[start..].find(&end_marker)?;
    Some(format!(
        "{}\n{}\n{}",
        &document[..start],
        section.trim_end(),
        &document[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_to_the_group_of_their_source_crate_or_symbol() {
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        assert_eq!(
            group_of(&format!(
                "{registry}/serde_json-1.0.145/src/de.rs:aws_sdk_sns::x [/bin/f]"
            )),
            "serde"
        );
        assert_eq!(
            group_of(&format!(
                "{registry}/aws-smithy-runtime-1.9.4/src/a.rs:f [/bin/f]"
            )),
            "SDK orchestrator"
        );
        assert_eq!(
            group_of(
                "???:<hyper::proto::h1::role::Client as hyper::proto::h1::Http1Transaction>::encode [/bin/f]"
            ),
            "hyper/rustls"
        );
        assert_eq!(
            group_of("/rustc/abc/library/core/src/fmt/mod.rs:core::fmt::write [/bin/f]"),
            "std/libc"
        );
        assert_eq!(
            group_of(
                "/rustc/abc/library/core/src/num/uint_macros.rs:sha2::sha256::compress256 [/bin/f]"
            ),
            "SigV4",
            "std's code inlined into a crate's function is that crate's work"
        );
        assert_eq!(
            group_of(
                "/rustc/abc/library/alloc/src/vec/mod.rs:<alloc::vec::Vec<T> as core::clone::Clone>::clone [/bin/f]"
            ),
            "std/libc"
        );
        assert_eq!(
            group_of("???:__memcpy_avx_unaligned_erms [/usr/lib/x86_64-linux-gnu/libc.so.6]"),
            "std/libc"
        );
        assert_eq!(
            group_of(
                "functions/approval-notify/src/handler.rs:approval_notify::handler::handle [/bin/f]"
            ),
            "ours"
        );
        assert_eq!(group_of("???:weird [/bin/f]"), "other");
    }

    #[test]
    fn annotations_are_read_line_by_line_without_the_totals() {
        let text = "--------\nIr\n--------\n12,345 (100.0%)  PROGRAM TOTALS\n\n--------\nIr  file:function\n--------\n1,000  ???:a::b [/x]\n  20  /p/q.rs:c::d [/x]\n";
        let counts = parse_annotation(text);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["???:a::b [/x]"], 1000.0);
        assert_eq!(counts["/p/q.rs:c::d [/x]"], 20.0);
    }

    #[test]
    fn the_section_replaces_what_is_between_the_markers() {
        let document = "a\n<!-- callgrind -->\nold\n<!-- /callgrind -->\nb\n";
        assert_eq!(
            splice_between(document, "callgrind", "new\n").unwrap(),
            "a\n<!-- callgrind -->\nnew\n<!-- /callgrind -->\nb\n"
        );
        assert_eq!(splice_between("no markers", "callgrind", "x"), None);
        assert_eq!(splice_between(document, "perf", "x"), None);
    }
}
