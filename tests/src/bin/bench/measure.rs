//! What is measured of a function process: init time over cold starts, then one warm run of
//! events with the process's own CPU time per event, wall time per event and peak memory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration_tests::Function;
use integration_tests::runtime_api::InvocationResult;
use serde::Serialize;
use serde_json::Value;

use crate::workloads::Workload;

/// How long one event may take before the run counts as broken.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// What runs as the function: one of our binaries, or a baseline under another runtime.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The function (`codecommit-push`…).
    pub function: String,
    /// `rust` or `python`.
    pub implementation: &'static str,
    /// The program Lambda's bootstrap would exec.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Settings besides the emulators' endpoints and credentials.
    pub env: Vec<(String, String)>,
}

impl Subject {
    /// Starts the process under a fresh Runtime API emulator; returns it and its start instant.
    pub async fn start(&self) -> (Function, Instant) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let function =
            Function::start_program(&self.function, &self.program, &args, &self.env).await;
        (function, started)
    }

    /// Starts the process (see [`Self::start`]) and waits up to `limit` for it to ask for its
    /// first event; one that does not is the end of the run, with its init error and logs.
    pub async fn start_ready(&self, limit: Duration) -> Function {
        let (function, _) = self.start().await;
        let runtime = function.runtime();
        assert!(
            runtime.wait_for_polls(1, limit).await,
            "{} ({}) did not start: {:?} {:?}",
            self.label(),
            self.program.display(),
            runtime.init_error(),
            function.logs()
        );
        function
    }

    /// `codecommit-push (rust)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.function, self.implementation)
    }
}

/// Order statistics of a sample.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Sample size.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Stats {
    /// Statistics of `values` (nearest-rank percentiles).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Self {
            n: sorted.len(),
            min: sorted[0],
            p10: rank(0.10),
            median: rank(0.50),
            p90: rank(0.90),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        }
    }
}

/// Cold starts of one subject.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStarts {
    /// Process start → first `GET /runtime/invocation/next`, in milliseconds.
    pub init_ms: Stats,
    /// Resident memory when it first asks for work, in KiB.
    pub rss_at_init_kib: Stats,
}

/// Measures `count` cold starts: spawn, wait for the first poll, read memory, kill.
pub async fn cold_starts(subject: &Subject, count: usize) -> ColdStarts {
    let mut init = Vec::with_capacity(count);
    let mut rss = Vec::with_capacity(count);
    for _ in 0..count {
        let (function, started) = subject.start().await;
        let ready = function
            .runtime()
            .wait_for_polls(1, Duration::from_secs(30))
            .await;
        assert!(
            ready,
            "{} did not ask for work within 30 s: {:?} {:?}",
            subject.label(),
            function.runtime().init_error(),
            function.logs()
        );
        let first = function.runtime().first_poll().unwrap();
        init.push(first.duration_since(started).as_secs_f64() * 1e3);
        if let Some(pid) = function.pid() {
            rss.push(proc_status_kib(pid, "VmRSS").unwrap_or_default() as f64);
        }
        function.stop().await;
    }
    ColdStarts {
        init_ms: Stats::of(&init),
        rss_at_init_kib: Stats::of(&rss),
    }
}

/// One warm run: a cold start, then the workload's events one after the other.
#[derive(Debug, Clone, Serialize)]
pub struct WarmRun {
    /// Events sent.
    pub events: usize,
    /// The function process's CPU time (all its threads, user + system) per event, in µs:
    /// its own work, without any wait on the network or the emulators.
    pub cpu_us: Stats,
    /// Invocation → result, as the Runtime API emulator sees it, in ms (includes the AWS
    /// emulator's time).
    pub wall_ms: Stats,
    /// The same per kind of event.
    pub by_event: BTreeMap<String, EventKind>,
    /// `VmHWM` at the end: peak resident memory over the cold start and every event, in KiB.
    pub peak_rss_kib: u64,
    /// AWS calls the function made during the run, by `service:operation`.
    pub aws_calls: BTreeMap<String, u64>,
    /// Total CPU time of the process over its life (cold start included), in ms.
    pub total_cpu_ms: f64,
}

/// The figures of one kind of event in a warm run.
#[derive(Debug, Clone, Serialize)]
pub struct EventKind {
    /// How many were sent.
    pub count: usize,
    /// CPU µs per event.
    pub cpu_us: Stats,
    /// Wall ms per event.
    pub wall_ms: Stats,
    /// The `outcome` of the responses (or the error type), with counts.
    pub outcomes: BTreeMap<String, usize>,
}

/// CPU µs, wall ms and outcomes of one kind of event.
type Samples = (Vec<f64>, Vec<f64>, BTreeMap<String, usize>);

/// Runs `events` events of `workload` through one process of `subject`.
pub async fn warm_run<W: Workload>(
    subject: &Subject,
    workload: &mut W,
    events: usize,
    aws_log: &crate::AwsLog,
) -> WarmRun {
    let function = subject.start_ready(Duration::from_secs(30)).await;
    let runtime = function.runtime();
    let pid = function.pid().unwrap();
    aws_log.clear().await;
    let mut cpu = Vec::with_capacity(events);
    let mut wall = Vec::with_capacity(events);
    let mut kinds: BTreeMap<String, Samples> = BTreeMap::new();
    for index in 0..events {
        let (kind, event) = workload.event(index).await;
        let before = cpu_ns(pid);
        let polls = runtime.polls();
        let sent = Instant::now();
        let result = runtime.invoke(&event, EVENT_TIMEOUT).await;
        let elapsed = sent.elapsed().as_secs_f64() * 1e3;
        assert!(
            runtime.wait_for_polls(polls + 1, EVENT_TIMEOUT).await,
            "{} did not ask for more work after event {index} ({kind})",
            subject.label()
        );
        let used = cpu_ns(pid).saturating_sub(before) as f64 / 1e3;
        let outcome = outcome_of(&result);
        workload
            .check(&kind, &result)
            .unwrap_or_else(|problem| {
                panic!(
                    "{}: event {index} ({kind}) went wrong: {problem}\nresult: {result:?}\nlast logs: {:?}",
                    subject.label(),
                    function.logs().iter().rev().take(5).collect::<Vec<_>>()
                )
            });
        workload.after(&kind, &result).await;
        cpu.push(used);
        wall.push(elapsed);
        let entry = kinds.entry(kind).or_default();
        entry.0.push(used);
        entry.1.push(elapsed);
        *entry.2.entry(outcome).or_default() += 1;
    }
    let peak_rss_kib = proc_status_kib(pid, "VmHWM").unwrap_or_default();
    let total_cpu_ms = proc_cpu_ticks_ms(pid);
    function.stop().await;
    let aws_calls = aws_log.counts().await;
    WarmRun {
        events,
        cpu_us: Stats::of(&cpu),
        wall_ms: Stats::of(&wall),
        by_event: kinds
            .into_iter()
            .map(|(kind, (cpu, wall, outcomes))| {
                (
                    kind,
                    EventKind {
                        count: cpu.len(),
                        cpu_us: Stats::of(&cpu),
                        wall_ms: Stats::of(&wall),
                        outcomes,
                    },
                )
            })
            .collect(),
        peak_rss_kib,
        aws_calls,
        total_cpu_ms,
    }
}

/// The response's `outcome`, `status:<code>` for an HTTP response, or `error:<type>`.
pub fn outcome_of(result: &InvocationResult) -> String {
    match result {
        InvocationResult::Response(value) => value
            .get("outcome")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                value
                    .get("statusCode")
                    .and_then(Value::as_u64)
                    .map(|code| format!("status:{code}"))
            })
            .unwrap_or_else(|| "response".to_owned()),
        InvocationResult::Error { error_type, .. } => format!("error:{error_type}"),
    }
}

/// CPU time of every thread of `pid` so far, in ns (`/proc/<pid>/task/*/schedstat`: exact, unlike
/// the clock ticks of `/proc/<pid>/stat`).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime of the whole process (threads that ended included), in ms.
fn proc_cpu_ticks_ms(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    ticks as f64 * 10.0
}
