//! The figures as Markdown: the tables `BENCHMARKS.md` is made of, put into its template
//! (`tests/bench/BENCHMARKS.md.in`) in place of `{{name}}` markers.

use std::fmt::Write as _;

use crate::measure::Stats;
use crate::{Results, SubjectResult};

const MIB: f64 = 1024.0 * 1024.0;

/// The targets the issue sets.
const INIT_TARGET_MS: f64 = 15.0;
const MEMORY_TARGET_MIB: f64 = 30.0;
const ZIP_TARGET_MIB: f64 = 4.0;
const CPU_TARGET_US: f64 = 1000.0;
const COLD_START_FACTOR: f64 = 10.0;

/// `template` with every `{{name}}` marker replaced by its table.
pub fn fill(template: &str, results: &Results) -> String {
    let sections = [
        ("machine", machine(results)),
        ("settings", settings(results)),
        ("summary", summary(results)),
        ("ratios", ratios(results)),
        ("targets", targets(results)),
        ("findings", findings(results)),
        ("events", events(results)),
        ("aws-calls", aws_calls(results)),
        ("micro", micro(results)),
        ("eks", eks(results)),
        ("eks-findings", eks_findings(results)),
        ("callgrind", profiling_section("callgrind")),
        ("perf", profiling_section("perf")),
    ];
    let mut text = template.to_owned();
    for (name, table) in sections {
        text = text.replace(&format!("{{{{{name}}}}}"), table.trim_end());
    }
    text
}

/// The last `--callgrind` or `--perf` run's section (`target/bench/NAME.md`), which that run
/// also put in BENCHMARKS.md.
fn profiling_section(name: &str) -> String {
    std::fs::read_to_string(
        integration_tests::workspace_root().join(format!("target/bench/{name}.md")),
    )
    .unwrap_or_else(|_| {
        format!("Not measured by this run: `tests/scripts/bench --{name}` measures it.")
    })
}

fn spread(stats: &Stats, digits: usize) -> String {
    format!(
        "{:.d$} ({:.d$}–{:.d$})",
        stats.median,
        stats.p10,
        stats.p90,
        d = digits
    )
}

fn machine(results: &Results) -> String {
    let m = &results.machine;
    format!(
        "| | |\n| --- | --- |\n| CPU | {} ({} CPUs online, shared with other work) |\n| memory | {} MiB |\n| kernel | {} |\n| Rust | {} (release profile of the workspace: `opt-level = \"z\"`, fat LTO, `codegen-units = 1`, `strip`) |\n| baseline | {}, boto3 {}, awslambdaric {} |\n| load average (1 min) | {} before, {} after |\n| date | {} |\n",
        m.cpu,
        m.cpus,
        m.memory_mib,
        m.kernel,
        m.rustc,
        m.python,
        m.boto3,
        m.awslambdaric,
        m.load_before,
        m.load_after,
        m.date
    )
}

fn settings(results: &Results) -> String {
    let s = &results.settings;
    format!(
        "{} cold starts per subject, {} events per warm run{}; the harness ran {:.0} s.",
        s.cold_starts,
        s.events,
        if s.quick {
            " (a --quick smoke run)"
        } else {
            ""
        },
        results.harness_seconds
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / MIB)
}

/// One row per function and implementation.
pub fn summary(results: &Results) -> String {
    let mut out = String::from(
        "| function | impl | init ms, median (p10–p90) | our CPU µs per event, median (p10–p90) | mean | wall ms per event, median (p10–p90) | peak RSS MiB | executable MiB | zip MiB |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in &results.subjects {
        let (executable, zip) = s.package.as_ref().map_or(("–".into(), "–".into()), |p| {
            (mib(p.executable_bytes), mib(p.zip_bytes))
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {} | {:.1} | {} | {} |",
            s.function,
            s.implementation,
            spread(&s.cold.init_ms, 1),
            spread(&s.warm.cpu_us, 0),
            s.warm.cpu_us.mean,
            spread(&s.warm.wall_ms, 2),
            s.warm.peak_rss_kib as f64 / 1024.0,
            executable,
            zip
        );
    }
    out
}

fn pairs(results: &Results) -> Vec<(&SubjectResult, &SubjectResult)> {
    results
        .subjects
        .iter()
        .filter(|s| s.implementation == "rust")
        .filter_map(|ours| {
            results
                .subjects
                .iter()
                .find(|b| b.function == ours.function && b.implementation == "python")
                .map(|baseline| (ours, baseline))
        })
        .collect()
}

fn ratios(results: &Results) -> String {
    let mut out = String::from(
        "| function | init (median) | CPU per event (mean) | wall per event (median) | peak RSS | zip |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for (ours, baseline) in pairs(results) {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.3} (1/{:.0})", a / b, b / a)
            } else {
                "–".into()
            }
        };
        let zip = match (&ours.package, &baseline.package) {
            (Some(o), Some(b)) => format!(
                "{:.0} (the baseline's zip holds only its module: boto3 comes with the runtime)",
                o.zip_bytes as f64 / b.zip_bytes as f64
            ),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            ours.function,
            ratio(ours.cold.init_ms.median, baseline.cold.init_ms.median),
            ratio(ours.warm.cpu_us.mean, baseline.warm.cpu_us.mean),
            ratio(ours.warm.wall_ms.median, baseline.warm.wall_ms.median),
            ratio(
                ours.warm.peak_rss_kib as f64,
                baseline.warm.peak_rss_kib as f64
            ),
            zip
        );
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn targets(results: &Results) -> String {
    let mut out = String::from(
        "| function | init < 15 ms (median) | peak memory < 30 MiB | zip < 4 MiB | our work < 1 ms per event (mean CPU) | cold start ≥ 10x faster than Python |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for s in results
        .subjects
        .iter()
        .filter(|s| s.implementation == "rust")
    {
        let init = s.cold.init_ms.median;
        let peak = s.warm.peak_rss_kib as f64 / 1024.0;
        let zip = s.package.as_ref().map(|p| p.zip_bytes as f64 / MIB);
        let cpu = s.warm.cpu_us.mean;
        let faster = results
            .subjects
            .iter()
            .find(|b| b.function == s.function && b.implementation == "python")
            .map(|b| b.cold.init_ms.median / init);
        let _ = writeln!(
            out,
            "| {} | {} ({init:.1} ms) | {} ({peak:.1} MiB) | {} | {} ({cpu:.0} µs) | {} |",
            s.function,
            verdict(init < INIT_TARGET_MS),
            verdict(peak < MEMORY_TARGET_MIB),
            zip.map_or("not built".into(), |z| format!(
                "{} ({z:.2} MiB)",
                verdict(z < ZIP_TARGET_MIB)
            )),
            verdict(cpu < CPU_TARGET_US),
            faster.map_or("no baseline".into(), |f| format!(
                "{} ({f:.0}x)",
                verdict(f >= COLD_START_FACTOR)
            )),
        );
    }
    out
}

/// The one function whose events are Kubernetes API requests rather than AWS calls.
const KUBERNETES_CLIENT: &str = "eks-deploy";

/// Where the CPU of an event goes, for each function over the per-event target: the cheapest
/// kind of event (one that ends before any AWS call) is the floor of runtime, JSON and logging;
/// what is above it, shared over the AWS calls an event makes, is the cost of one call.
fn findings(results: &Results) -> String {
    let mut out = String::new();
    let per_call = |s: &SubjectResult| {
        let calls: u64 = s.warm.aws_calls.values().sum();
        let per_event = calls as f64 / s.warm.events.max(1) as f64;
        let floor = s
            .warm
            .by_event
            .values()
            .map(|kind| kind.cpu_us.median)
            .fold(f64::INFINITY, f64::min);
        (per_event, floor, (s.warm.cpu_us.mean - floor) / per_event)
    };
    for s in results
        .subjects
        .iter()
        .filter(|s| s.implementation == "rust" && s.warm.cpu_us.mean >= CPU_TARGET_US)
    {
        let (calls, floor, cost) = per_call(s);
        let own = results
            .micro
            .iter()
            .filter(|m| m.function == s.function)
            .map(|m| m.ns.median / 1e3)
            .fold(0.0, f64::max);
        let _ = write!(
            out,
            "- **{}**: {:.0} µs of CPU per event on average. Our parsing and decision take at \
             most {own:.0} µs of it (Our work without I/O); an event that ends before any \
             call costs {floor:.0} µs (runtime, JSON, logging). ",
            s.function, s.warm.cpu_us.mean
        );
        if s.function != KUBERNETES_CLIENT && calls > 0.0 {
            let _ = write!(
                out,
                "The rest is the SDK: {calls:.2} AWS calls per event at about {cost:.0} µs \
                 each (request serialization, SigV4 signing, HTTP, response parsing)",
            );
            if let Some(baseline) = results
                .subjects
                .iter()
                .find(|b| b.function == s.function && b.implementation == "python")
            {
                let (_, _, python) = per_call(baseline);
                let _ = write!(out, "; boto3 spends about {python:.0} µs on each");
            }
            out.push_str(".\n");
        } else {
            out.push_str(
                "The rest is its Kubernetes API requests over TLS (see eks-deploy: requests per \
                 rollout), the first of them with the TLS handshake and the token's signing.\n",
            );
        }
    }
    if out.is_empty() {
        return "Every function is within the per-event target.".into();
    }
    format!("Over the per-event CPU target:\n\n{out}")
}

fn events(results: &Results) -> String {
    let mut out = String::from(
        "| function | impl | event | n | our CPU µs, median (p10–p90) | wall ms, median (p10–p90) | outcomes |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in &results.subjects {
        for (kind, figures) in &s.warm.by_event {
            let outcomes = figures
                .outcomes
                .iter()
                .map(|(o, n)| format!("{o} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "| {} | {} | {kind} | {} | {} | {} | {outcomes} |",
                s.function,
                s.implementation,
                figures.count,
                spread(&figures.cpu_us, 0),
                spread(&figures.wall_ms, 2),
            );
        }
    }
    out
}

fn aws_calls(results: &Results) -> String {
    let mut out = String::from(
        "| function | impl | AWS calls in the warm run (per event) |\n| --- | --- | --- |\n",
    );
    for s in &results.subjects {
        let events = s.warm.events.max(1) as f64;
        let calls = if s.warm.aws_calls.is_empty() {
            "none".to_owned()
        } else {
            s.warm
                .aws_calls
                .iter()
                .map(|(op, n)| format!("{op} {n} ({:.2})", *n as f64 / events))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "| {} | {} | {calls} |", s.function, s.implementation);
    }
    out
}

fn micro(results: &Results) -> String {
    let mut out = String::from(
        "| function | sample event | work timed | µs per event, median (p10–p90) |\n| --- | --- | --- | --- |\n",
    );
    for m in &results.micro {
        let us = Stats {
            min: m.ns.min / 1e3,
            p10: m.ns.p10 / 1e3,
            median: m.ns.median / 1e3,
            p90: m.ns.p90 / 1e3,
            max: m.ns.max / 1e3,
            mean: m.ns.mean / 1e3,
            n: m.ns.n,
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} |",
            m.function,
            m.event,
            m.work,
            spread(&us, 1)
        );
    }
    out
}

/// Whether the requests stayed the same when the rollout took longer (a watch, not a poll), and
/// when the canary baked longer; whether the alarm reads kept the documented pace.
fn eks_findings(results: &Results) -> String {
    let rolling = rolling_findings(results);
    let canary = canary_findings(results);
    [rolling, canary]
        .into_iter()
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn canary_findings(results: &Results) -> String {
    let canaries: Vec<&crate::eks::RolloutRequests> = results
        .eks_requests
        .iter()
        .filter(|r| r.strategy == "canary" && r.outcome.contains("succeeded"))
        .collect();
    let (Some(short), Some(long)) = (
        canaries
            .iter()
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds)),
        canaries
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds)),
    ) else {
        return String::new();
    };
    let bakes = |r: &crate::eks::RolloutRequests| {
        r.bakes
            .iter()
            .map(|b| format!("{b} s"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let requests = if short.kubernetes_requests() == long.kubernetes_requests() {
        format!(
            "The canary that baked {} (took {:.1} s) made the same {} Kubernetes requests as the \
             one that baked {} (took {:.1} s): a bake asks nothing of the cluster, and each \
             step's pods are waited for with one watch.",
            bakes(long),
            long.seconds,
            long.kubernetes_requests(),
            bakes(short),
            short.seconds
        )
    } else {
        format!(
            "**The canary's Kubernetes requests grew with its bakes**: {} for {} against {} for {}.",
            long.kubernetes_requests(),
            bakes(long),
            short.kubernetes_requests(),
            bakes(short)
        )
    };
    let reads: Vec<String> = canaries
        .iter()
        .map(|r| {
            format!(
                "{} for bakes of {} ({} documented)",
                r.alarm_reads(),
                bakes(r),
                r.documented_alarm_reads()
            )
        })
        .collect();
    let pace = if canaries
        .iter()
        .all(|r| r.alarm_reads() == r.documented_alarm_reads())
    {
        format!(
            "Alarm reads (DescribeAlarms): {}, exactly as documented: one before anything \
             changes, then at each bake's start, every `ALARM_READ_SECONDS` ({} s) and at its \
             end, so 1 + Σ (bake / {} s + 1).",
            reads.join("; "),
            crate::eks::ALARM_READ_SECONDS,
            crate::eks::ALARM_READ_SECONDS
        )
    } else {
        format!(
            "**The alarm reads did not keep the documented pace**: {}.",
            reads.join("; ")
        )
    };
    format!("{requests} {pace}")
}

fn rolling_findings(results: &Results) -> String {
    let total = |r: &crate::eks::RolloutRequests| r.kubernetes.values().sum::<u64>();
    let succeeded: Vec<_> = results
        .eks_requests
        .iter()
        .filter(|r| r.strategy == "rolling" && r.outcome.contains("succeeded"))
        .collect();
    let (Some(shortest), Some(longest)) = (
        succeeded
            .iter()
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds)),
        succeeded
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds)),
    ) else {
        return String::new();
    };
    if total(shortest) == total(longest) {
        format!(
            "The rollout that took {:.1} s made the same {} Kubernetes requests as the one that \
             took {:.1} s: eks-deploy follows a rollout with one watch, so its requests do not \
             grow with the rollout's length. A failed rollout adds what the failure needs: the \
             pods' reasons (one LIST) and the rollback (its GET, PATCH and WATCH).",
            longest.seconds,
            total(longest),
            shortest.seconds
        )
    } else {
        format!(
            "**The requests grew with the rollout's length**: {} for {:.1} s against {} for \
             {:.1} s.",
            total(longest),
            longest.seconds,
            total(shortest),
            shortest.seconds
        )
    }
}

fn eks(results: &Results) -> String {
    if results.eks_requests.is_empty() {
        return "(eks-deploy was not measured in this run)".into();
    }
    let mut out = String::from(
        "| deployment | replicas | pods Ready after | took s | job | Kubernetes API requests | AWS calls |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in &results.eks_requests {
        let join = |counts: &std::collections::BTreeMap<String, u64>| {
            let total: u64 = counts.values().sum();
            let list = counts
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{total}: {list}")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {} | {} | {} |",
            r.scenario,
            r.replicas,
            r.ready_after,
            r.seconds,
            r.outcome,
            join(&r.kubernetes),
            join(&r.aws)
        );
    }
    out
}
