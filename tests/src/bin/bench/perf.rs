//! Where a function's CPU goes natively, kernel included: `tests/scripts/bench --perf`.
//!
//! Instruction counts (`--callgrind`) are steady on a loaded machine but leave two things out:
//! the kernel's work for the process (system calls, the socket and scheduler work they cause)
//! and the CPU's own instructions valgrind hides (SHA-256 runs its portable code under valgrind,
//! several times the `sha_ni` code that runs natively). This samples the real thing: the
//! function's `profiling` build runs normally under the Runtime API emulator against the
//! emulators; after [`WARMUP`] events, `perf record -e cpu-clock` (a software clock: this VM has
//! no hardware counters) samples its process, kernel side included, for `n` warm events.
//! `perf report` gives the samples of each symbol and object; each goes to the kernel or, by the
//! crate its symbol names, to one of the instruction groups ([`callgrind::GROUPS`]). Without
//! line tables here, std's generic code inlined into another crate counts as that crate's only
//! where its symbol says so (a `HashMap::get` is std's).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::AwsLog;
use crate::callgrind::{self, GROUPS, WARMUP, drive};
use crate::measure::{Subject, cpu_ns};
use crate::workloads::Workload;

/// Samples per second of CPU time.
const FREQUENCY: u32 = 4999;

const START_LIMIT: Duration = Duration::from_secs(60);
const EVENT_LIMIT: Duration = Duration::from_secs(60);

/// The process's own CPU, sampled.
#[derive(Debug, Clone, Serialize)]
pub struct NativeProfile {
    /// The function.
    pub function: String,
    /// Warm events sampled.
    pub events: usize,
    /// AWS calls per event (the AWS emulator's request log).
    pub calls_per_event: f64,
    /// The process's CPU time per event over the sampled events, µs (its threads' schedstat).
    pub cpu_us_per_event: f64,
    /// Samples taken.
    pub samples: u64,
    /// Share of the samples, by group (`kernel` and the instruction groups), percent.
    pub groups: BTreeMap<String, f64>,
    /// The symbols with the most samples: (`symbol [object]`, percent).
    pub top: Vec<(String, f64)>,
}

/// Samples `subject` (a Rust function) over `events` warm events of `workload`.
pub async fn profile<W: Workload>(
    subject: &Subject,
    workload: &mut W,
    events: usize,
    aws_log: &AwsLog,
    out_dir: &Path,
) -> NativeProfile {
    std::fs::create_dir_all(out_dir).unwrap();
    let data = out_dir.join(format!("{}.data", subject.function));
    let _ = std::fs::remove_file(&data);
    let label = subject.label();
    let function = subject.start_ready(START_LIMIT).await;
    let pid = function.pid().unwrap();
    let mut next = 0;
    drive(&function, &label, workload, &mut next, WARMUP, EVENT_LIMIT).await;
    let mut recorder = tokio::process::Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-F"])
        .arg(FREQUENCY.to_string())
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(&data)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("perf record: {e}"));
    // perf attaches to the process's threads before it samples anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    aws_log.clear().await;
    let before = cpu_ns(pid);
    drive(&function, &label, workload, &mut next, events, EVENT_LIMIT).await;
    let used_ns = cpu_ns(pid).saturating_sub(before);
    let calls: u64 = aws_log.counts().await.values().sum();
    if let Some(perf) = recorder.id() {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &perf.to_string()])
            .status();
    }
    let ended = tokio::time::timeout(Duration::from_secs(60), recorder.wait()).await;
    assert!(
        matches!(ended, Ok(Ok(_))) && data.exists(),
        "{label}: perf record wrote nothing to {}",
        data.display()
    );
    function.stop().await;
    let samples = report(&data);
    let total: u64 = samples.values().sum();
    assert!(total > 0, "{label}: perf took no sample");
    let percent = |n: u64| n as f64 * 100.0 / total as f64;
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    for (entry, count) in &samples {
        *groups.entry(group_of(entry).to_owned()).or_default() += percent(*count);
    }
    let mut top: Vec<(String, f64)> = samples
        .iter()
        .map(|(entry, count)| (entry.clone(), percent(*count)))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(15);
    NativeProfile {
        function: subject.function.clone(),
        events,
        calls_per_event: calls as f64 / events as f64,
        cpu_us_per_event: used_ns as f64 / 1e3 / events as f64,
        samples: total,
        groups,
        top,
    }
}

/// `symbol [object]` → samples, from `perf report` of `data`.
fn report(data: &Path) -> BTreeMap<String, u64> {
    parse_report(&callgrind::report_of(
        "perf",
        &[
            "report",
            "--stdio",
            "--no-children",
            "-g",
            "none",
            "--percent-limit",
            "0",
            "--sort",
            "dso,sym",
            "--fields",
            "sample,dso,sym",
            "-i",
        ],
        data,
    ))
}

/// The lines of `perf report --fields sample,dso,sym` (`  123  libc.so.6  [.] malloc`), as
/// `symbol [object]` → samples; comments and blank lines left out.
pub fn parse_report(text: &str) -> BTreeMap<String, u64> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(Ok(count)) = fields.next().map(str::parse::<u64>) else {
            continue;
        };
        let (Some(object), Some(mode)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !(mode.starts_with('[') && mode.ends_with(']')) {
            continue;
        }
        let symbol = fields.collect::<Vec<_>>().join(" ");
        *samples.entry(format!("{symbol} [{object}]")).or_default() += count;
    }
    samples
}

/// The group of a `symbol [object]` sample: the kernel's, or the instruction group of the crate
/// the symbol names (the C library by its object).
pub fn group_of(entry: &str) -> &'static str {
    if entry.ends_with("[[kernel.kallsyms]]") || entry.ends_with("[[vdso]]") {
        return "kernel";
    }
    callgrind::group_of(&format!("???:{entry}"))
}

/// The report's section: one row per function, shares of its CPU samples.
pub fn markdown(profiles: &[NativeProfile], command: &str) -> String {
    let mut text = String::new();
    text.push_str("| function | AWS calls / event | CPU µs / event | samples | kernel |");
    for (group, _) in GROUPS {
        text.push_str(&format!(" {group} |"));
    }
    text.push_str(" other |\n|");
    text.push_str(&" --- |".repeat(GROUPS.len() + 6));
    text.push('\n');
    for profile in profiles {
        text.push_str(&format!(
            "| {} | {:.1} | {:.0} | {} |",
            profile.function, profile.calls_per_event, profile.cpu_us_per_event, profile.samples
        ));
        for group in ["kernel"]
            .into_iter()
            .chain(GROUPS.iter().map(|(g, _)| *g))
            .chain(["other"])
        {
            let value = profile.groups.get(group).copied().unwrap_or_default();
            text.push_str(&format!(" {value:.1} % |"));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "\nMeasured with `{command}` ({} warm events per function after {WARMUP} unsampled \
         ones, sampled {FREQUENCY} times per second of the process's CPU, kernel included; \
         shares of the samples).\n",
        profiles.first().map_or(0, |p| p.events)
    ));
    for profile in profiles {
        text.push_str(&callgrind::top_table(
            &format!("{}: the symbols with the most samples", profile.function),
            ("share", "symbol [object]"),
            profile
                .top
                .iter()
                .map(|(entry, share)| (format!("{share:.1} %"), entry.as_str())),
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_become_samples_per_symbol_and_object() {
        let text = "# Samples: 11K of event 'cpu-clock'\n#\n   643  [kernel.kallsyms]  [k] finish_task_switch.isra.0\n   193  libc.so.6          [.] _int_malloc\n    52  approval-notify    [.] <hyper::proto::h1::role::Client as hyper::proto::h1::Http1Transaction>::parse\n\n";
        let samples = parse_report(text);
        assert_eq!(samples.len(), 3);
        assert_eq!(
            samples["finish_task_switch.isra.0 [[kernel.kallsyms]]"],
            643
        );
        assert_eq!(samples["_int_malloc [libc.so.6]"], 193);
        assert_eq!(
            group_of("finish_task_switch.isra.0 [[kernel.kallsyms]]"),
            "kernel"
        );
        assert_eq!(group_of("_int_malloc [libc.so.6]"), "std/libc");
        assert_eq!(
            group_of(
                "<hyper::proto::h1::role::Client as hyper::proto::h1::Http1Transaction>::parse [approval-notify]"
            ),
            "hyper/rustls"
        );
        assert_eq!(
            group_of("aws_smithy_runtime::client::orchestrator::try_op [approval-notify]"),
            "SDK orchestrator"
        );
        assert_eq!(group_of("0x00007f [unknown]"), "other");
    }

    #[test]
    fn the_table_has_a_column_for_the_kernel_and_each_group() {
        let profile = NativeProfile {
            function: "codecommit-push".into(),
            events: 100,
            calls_per_event: 1.2,
            cpu_us_per_event: 512.4,
            samples: 300,
            groups: BTreeMap::from([("kernel".into(), 25.0), ("SigV4".into(), 1.5)]),
            top: vec![("malloc [libc.so.6]".into(), 3.0)],
        };
        let text = markdown(&[profile], "tests/scripts/bench --perf");
        let row = text.lines().nth(2).unwrap();
        assert!(
            row.starts_with("| codecommit-push | 1.2 | 512 | 300 | 25.0 % |"),
            "{row}"
        );
        assert_eq!(
            row.matches('|').count(),
            text.lines().next().unwrap().matches('|').count()
        );
        assert!(text.contains("| 3.0 % | `malloc [libc.so.6]` |"));
    }
}
