//! The benchmark: for every function, init time over cold starts, our CPU time and wall time per
//! event and peak memory over a cold start plus N events, package sizes; the same for the Python
//! baselines; eks-deploy's request counts; figures in `target/bench/results.json` and
//! `BENCHMARKS.md`. Run it with `tests/scripts/bench` (which builds, packages and starts the
//! emulators); see BENCHMARKS.md for the method.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a harness: a panic is a failed run
#![allow(async_fn_in_trait)] // the workloads are used with generics only

mod callgrind;
mod eks;
mod measure;
mod micro;
mod perf;
mod report;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use integration_tests::{Emulators, http, workspace_root};
use serde::Serialize;
use serde_json::Value;

use measure::{ColdStarts, Subject, WarmRun, cold_starts, warm_run};
use workloads::Workload;

/// Every function, in the order they are measured.
pub const FUNCTIONS: [&str; 7] = [
    "codecommit-push",
    "codebuild-status",
    "pr-validator",
    "approval-notify",
    "approval-callback",
    "eks-deploy",
    "delivery-events",
];

/// Functions with a Python baseline: (function, module).
const BASELINES: [(&str, &str); 2] = [
    ("codecommit-push", "codecommit_push"),
    ("codebuild-status", "codebuild_status"),
];

/// The harness's own AWS calls carry this application name, so they are not counted.
const HARNESS_APP: &str = "bench-harness";

const USAGE: &str = "usage: bench [--quick] [--callgrind | --perf] [--cold-starts N] [--events N]
             [--only FUNCTION,...] [--results PATH] [--markdown PATH] [--template PATH]

Runs under tests/emulator/run.py (EMULATORS_FILE); tests/scripts/bench does everything.
  --quick           a smoke run: 3 cold starts, 28 events, few micro-benchmark rounds
  --callgrind       instructions per event and per AWS call under valgrind instead (the
                    `profiling` build; --events warm events, default 10), into
                    target/bench/callgrind.{json,md} and the callgrind section of --markdown
  --perf            where the CPU goes natively, kernel included, sampled by perf (the
                    `profiling` build; --events warm events, default 500), into
                    target/bench/perf.{json,md} and the perf section of --markdown
  --cold-starts N   cold starts per subject (1-1000, default 30)
  --events N        events in each warm run (1-100000, default 1000)
  --only LIST       only these functions (comma-separated)
  --results PATH    where the JSON goes (default target/bench/results.json)
  --markdown PATH   where the report goes (default: none)
  --template PATH   the report's template (default tests/bench/BENCHMARKS.md.in)";

/// What was asked of this run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Cold starts per subject.
    pub cold_starts: usize,
    /// Events per warm run.
    pub events: usize,
    /// A smoke run.
    pub quick: bool,
    /// Instruction counts under callgrind instead of times.
    pub callgrind: bool,
    /// CPU samples under perf instead of times.
    pub perf: bool,
    /// The functions measured.
    pub functions: Vec<String>,
    #[serde(skip)]
    results: PathBuf,
    #[serde(skip)]
    markdown: Option<PathBuf>,
    #[serde(skip)]
    template: PathBuf,
}

fn parse_args() -> Result<Settings, String> {
    let root = workspace_root();
    let mut settings = Settings {
        cold_starts: 30,
        events: 1000,
        quick: false,
        callgrind: false,
        perf: false,
        functions: FUNCTIONS.iter().map(|f| (*f).to_owned()).collect(),
        results: root.join("target/bench/results.json"),
        markdown: None,
        template: root.join("tests/bench/BENCHMARKS.md.in"),
    };
    let mut cold_starts = None;
    let mut events = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => settings.quick = true,
            "--callgrind" => settings.callgrind = true,
            "--perf" => settings.perf = true,
            "--cold-starts" => cold_starts = Some(bounded(&value(&arg)?, 1, 1000, &arg)?),
            "--events" => events = Some(bounded(&value(&arg)?, 1, 100_000, &arg)?),
            "--only" => {
                let list: Vec<String> = value(&arg)?.split(',').map(str::to_owned).collect();
                if let Some(unknown) = list.iter().find(|f| !FUNCTIONS.contains(&f.as_str())) {
                    return Err(format!("--only: no function {unknown}"));
                }
                settings.functions = list;
            }
            "--results" => settings.results = PathBuf::from(value(&arg)?),
            "--markdown" => settings.markdown = Some(PathBuf::from(value(&arg)?)),
            "--template" => settings.template = PathBuf::from(value(&arg)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if settings.callgrind && settings.perf {
        return Err("--callgrind and --perf: one at a time".into());
    }
    let (default_cold, default_events) = match (settings.quick, settings.callgrind, settings.perf) {
        (_, true, _) => (0, 10),
        (_, _, true) => (0, 500),
        (true, false, false) => (3, 28),
        (false, false, false) => (30, 1000),
    };
    settings.cold_starts = cold_starts.unwrap_or(default_cold);
    settings.events = events.unwrap_or(default_events);
    Ok(settings)
}

fn bounded(text: &str, min: usize, max: usize, name: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{name}: expected a number from {min} to {max}, got {text:?}"
        )),
    }
}

/// The AWS emulator's request log, through its admin API.
#[derive(Debug, Clone)]
pub struct AwsLog {
    admin: String,
}

impl AwsLog {
    /// Empties the log.
    pub async fn clear(&self) {
        let (code, answer) =
            http::json("DELETE", &format!("{}/aws/requests", self.admin), None).await;
        assert_eq!(code, 200, "{answer}");
    }

    /// The functions' calls since the last clear (not the harness's), by `service:operation`.
    pub async fn counts(&self) -> BTreeMap<String, u64> {
        let (code, answer) = http::json("GET", &format!("{}/aws/requests", self.admin), None).await;
        assert_eq!(code, 200, "{answer}");
        let mut counts = BTreeMap::new();
        for entry in answer["requests"].as_array().into_iter().flatten() {
            if entry["app"] == HARNESS_APP {
                continue;
            }
            let service = entry["service"].as_str().unwrap_or_default();
            let operation = entry["operation"].as_str().unwrap_or_default();
            *counts.entry(format!("{service}:{operation}")).or_default() += 1;
        }
        counts
    }
}

/// The figures of one subject.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectResult {
    /// The function.
    pub function: String,
    /// `rust` or `python`.
    pub implementation: String,
    /// Cold starts.
    pub cold: ColdStarts,
    /// The warm run.
    pub warm: WarmRun,
    /// What would be uploaded.
    pub package: Option<Package>,
}

/// Sizes of what would be uploaded.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// The file Lambda runs (`bootstrap`, or the handler module), in bytes.
    pub executable_bytes: u64,
    /// The zip SAM uploads, in bytes.
    pub zip_bytes: u64,
}

/// Where and with what the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Memory, in MiB.
    pub memory_mib: u64,
    /// `uname -srm`.
    pub kernel: String,
    /// `rustc -V`.
    pub rustc: String,
    /// `python -V` of the baselines.
    pub python: String,
    /// boto3's version.
    pub boto3: String,
    /// awslambdaric's version.
    pub awslambdaric: String,
    /// Load average (1 min) before and after the run: the machine is shared.
    pub load_before: String,
    /// After.
    pub load_after: String,
    /// When (UTC, from `date -u`).
    pub date: String,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// The settings.
    pub settings: Settings,
    /// One per function and implementation.
    pub subjects: Vec<SubjectResult>,
    /// In-process timing of parsing and deciding.
    pub micro: Vec<micro::Micro>,
    /// eks-deploy's requests per deployment.
    pub eks_requests: Vec<eks::RolloutRequests>,
    /// How long the harness ran, in seconds.
    pub harness_seconds: f64,
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text).trim().to_owned()
        })
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn machine(python: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024);
    let python = python.to_string_lossy();
    let version_of = |package: &str| {
        command_output(
            &python,
            &[
                "-c",
                &format!("import importlib.metadata as m; print(m.version('{package}'))"),
            ],
        )
    };
    Machine {
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_mib,
        kernel: command_output("uname", &["-srm"]),
        rustc: command_output("rustc", &["-V"]),
        python: command_output(&python, &["-V"]),
        boto3: version_of("boto3"),
        awslambdaric: version_of("awslambdaric"),
        load_before: load_average(),
        load_after: String::new(),
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

/// An SDK configuration for the emulators that marks the harness's own calls.
async fn harness_sdk(emulators: &Emulators) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(emulators.region.clone()))
        .endpoint_url(&emulators.aws.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            &emulators.aws.access_key_id,
            &emulators.aws.secret_access_key,
            None,
            None,
            "emulator",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .app_name(AppName::new(HARNESS_APP).unwrap())
        .load()
        .await
}

struct Paths {
    root: PathBuf,
    bin_dir: PathBuf,
    python: PathBuf,
}

impl Paths {
    fn rust(&self, function: &str, env: Vec<(String, String)>) -> Subject {
        Subject {
            function: function.to_owned(),
            implementation: "rust",
            program: self.bin_dir.join(function),
            args: Vec::new(),
            env,
        }
    }

    fn python(&self, function: &str, mut env: Vec<(String, String)>) -> Option<Subject> {
        let (_, module) = BASELINES.iter().find(|(f, _)| *f == function)?;
        let bench = self.root.join("tests/bench/python");
        // The Lambda Python runtime has boto3 but not awscrt, which this venv has for the SAM
        // CLI: the `runtime` folder hides it, so botocore runs as it does in Lambda.
        env.push((
            "PYTHONPATH".into(),
            format!("{}:{}", bench.join("runtime").display(), bench.display()),
        ));
        env.push(("AWS_EXECUTION_ENV".into(), "AWS_Lambda_python3.11".into()));
        Some(Subject {
            function: function.to_owned(),
            implementation: "python",
            program: self.python.clone(),
            args: vec![
                "-m".into(),
                "awslambdaric".into(),
                format!("{module}.handler"),
            ],
            env,
        })
    }

    fn package(&self, subject: &Subject) -> Option<Package> {
        let zips = self.root.join("target/bench/zip");
        let (executable, zip) = match subject.implementation {
            "rust" => (
                self.root
                    .join("target/lambda")
                    .join(&subject.function)
                    .join("bootstrap"),
                zips.join(format!("{}.zip", subject.function)),
            ),
            _ => {
                let (_, module) = BASELINES.iter().find(|(f, _)| *f == subject.function)?;
                (
                    self.root.join(format!("tests/bench/python/{module}.py")),
                    zips.join(format!("python-{}.zip", subject.function)),
                )
            }
        };
        Some(Package {
            executable_bytes: std::fs::metadata(executable).ok()?.len(),
            zip_bytes: std::fs::metadata(zip).ok()?.len(),
        })
    }
}

/// What every subject is measured with, and the results so far.
struct Bench<'a> {
    settings: &'a Settings,
    paths: &'a Paths,
    aws_log: &'a AwsLog,
    results: Vec<SubjectResult>,
    profiles: Vec<callgrind::Profile>,
    natives: Vec<perf::NativeProfile>,
}

impl Bench<'_> {
    /// Cold starts, then a warm run of `workload`, for each of `subjects`.
    async fn measure<W: Workload>(&mut self, subjects: Vec<Subject>, workload: &mut W) {
        let (settings, paths, aws_log, results) =
            (self.settings, self.paths, self.aws_log, &mut self.results);
        if settings.callgrind {
            for subject in subjects.iter().filter(|s| s.implementation == "rust") {
                eprintln!(
                    "bench: {}: {} events under callgrind",
                    subject.label(),
                    settings.events
                );
                let out = paths.root.join("target/bench/callgrind");
                let profile =
                    callgrind::profile(subject, workload, settings.events, aws_log, &out).await;
                eprintln!(
                    "bench: {}: {:.0} k instructions per event, {:.1} AWS calls",
                    subject.label(),
                    profile.per_event / 1e3,
                    profile.calls_per_event
                );
                self.profiles.push(profile);
            }
            return;
        }
        if settings.perf {
            for subject in subjects.iter().filter(|s| s.implementation == "rust") {
                eprintln!(
                    "bench: {}: {} events under perf",
                    subject.label(),
                    settings.events
                );
                let out = paths.root.join("target/bench/perf");
                let profile =
                    perf::profile(subject, workload, settings.events, aws_log, &out).await;
                eprintln!(
                    "bench: {}: {:.0} µs CPU per event, {:.1} % of it in the kernel",
                    subject.label(),
                    profile.cpu_us_per_event,
                    profile.groups.get("kernel").copied().unwrap_or_default()
                );
                self.natives.push(profile);
            }
            return;
        }
        for subject in subjects {
            eprintln!(
                "bench: {}: {} cold starts",
                subject.label(),
                settings.cold_starts
            );
            let cold = cold_starts(&subject, settings.cold_starts).await;
            eprintln!("bench: {}: {} events", subject.label(), settings.events);
            let warm = warm_run(&subject, workload, settings.events, aws_log).await;
            eprintln!(
                "bench: {}: init {:.1} ms, {:.0} µs CPU/event, peak {:.1} MiB",
                subject.label(),
                cold.init_ms.median,
                warm.cpu_us.median,
                warm.peak_rss_kib as f64 / 1024.0
            );
            results.push(SubjectResult {
                function: subject.function.clone(),
                implementation: subject.implementation.to_owned(),
                package: paths.package(&subject),
                cold,
                warm,
            });
        }
    }
}

/// Writes one profiling mode's figures: `NAME.json` and the markdown section `NAME.md` in
/// `target/bench/`, and the section between the `--markdown` document's `NAME` markers.
fn write_section(settings: &Settings, name: &str, json: String, section: impl Fn(&str) -> String) {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), json + "\n").unwrap();
    let mut command = format!("tests/scripts/bench --{name} --events {}", settings.events);
    if settings.functions.len() < FUNCTIONS.len() {
        command.push_str(&format!(" --only {}", settings.functions.join(",")));
    }
    let section = section(&command);
    std::fs::write(dir.join(format!("{name}.md")), &section).unwrap();
    println!("{section}");
    eprintln!(
        "bench: {name} figures in {}",
        dir.join(format!("{name}.json")).display()
    );
    if let Some(markdown) = &settings.markdown {
        let document = std::fs::read_to_string(markdown).unwrap_or_default();
        match callgrind::splice_between(&document, name, &section) {
            Some(spliced) => {
                std::fs::write(markdown, spliced).unwrap();
                eprintln!("bench: {name} section of {} updated", markdown.display());
            }
            None => eprintln!(
                "bench: {} has no {name} markers; the section is in target/bench/{name}.md",
                markdown.display()
            ),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(settings) => settings,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("bench: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let root = workspace_root();
    let paths = Paths {
        bin_dir: std::env::var_os("FUNCTION_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::current_exe()
                    .unwrap()
                    .parent()
                    .unwrap()
                    .to_owned()
            }),
        python: root.join(".venv/bin/python"),
        root,
    };
    let mut machine = machine(&paths.python);
    let emulators = Emulators::load();
    let sdk = harness_sdk(&emulators).await;
    let aws_log = AwsLog {
        admin: emulators.admin.clone(),
    };
    let base_env = {
        let mut env = emulators.function_env();
        // Lambda's default application log level; the tests' DEBUG would time the logging.
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "INFO".into()));
        env
    };
    let with = |extra: Vec<(String, String)>| {
        let mut env = base_env.clone();
        env.extend(extra);
        env
    };
    let subjects_of = |function: &str, env: Vec<(String, String)>| {
        let mut subjects = vec![paths.rust(function, env.clone())];
        subjects.extend(paths.python(function, env));
        subjects
    };

    let mut bench = Bench {
        settings: &settings,
        paths: &paths,
        aws_log: &aws_log,
        results: Vec::new(),
        profiles: Vec::new(),
        natives: Vec::new(),
    };
    let wanted = |f: &str| settings.functions.iter().any(|w| w == f);
    if wanted("codecommit-push") {
        let mut workload = workloads::CodecommitPush::setup(&sdk).await;
        let env = with(vec![("PIPELINE_ROUTES".into(), workload.routes.clone())]);
        let list = subjects_of("codecommit-push", env);
        bench.measure(list, &mut workload).await;
    }
    if wanted("codebuild-status") {
        let mut workload = workloads::CodebuildStatus::setup(&emulators, &sdk).await;
        let list = subjects_of("codebuild-status", with(workload.env()));
        bench.measure(list, &mut workload).await;
    }
    if wanted("pr-validator") {
        let mut workload = workloads::PrValidator::setup(&emulators, &sdk, 4).await;
        let list = subjects_of("pr-validator", with(workload.env()));
        bench.measure(list, &mut workload).await;
    }
    if wanted("approval-notify") || wanted("approval-callback") {
        let approvals = workloads::Approvals::setup(&emulators, &sdk).await;
        if wanted("approval-notify") {
            let list = subjects_of("approval-notify", with(approvals.notify_env()));
            let mut workload = workloads::ApprovalNotify::new(approvals.clone());
            bench.measure(list, &mut workload).await;
        }
        if wanted("approval-callback") {
            let list = subjects_of("approval-callback", with(approvals.callback_env()));
            let mut workload = workloads::ApprovalCallback::new(approvals);
            bench.measure(list, &mut workload).await;
        }
    }
    if wanted("delivery-events") {
        let mut workload = workloads::DeliveryEvents::setup(&emulators, &sdk).await;
        let list = subjects_of("delivery-events", with(workload.env()));
        bench.measure(list, &mut workload).await;
    }
    let mut eks_requests = Vec::new();
    if settings.callgrind || settings.perf {
        if wanted("eks-deploy") {
            let mut workload =
                workloads::EksDeploy::setup(&emulators, &sdk, 1, 30, Some("0s")).await;
            let list = subjects_of("eks-deploy", base_env.clone());
            bench.measure(list, &mut workload).await;
        }
        if settings.callgrind {
            let json = serde_json::to_string_pretty(&bench.profiles).unwrap();
            write_section(&settings, "callgrind", json, |command| {
                callgrind::markdown(&bench.profiles, command)
            });
        } else {
            let json = serde_json::to_string_pretty(&bench.natives).unwrap();
            write_section(&settings, "perf", json, |command| {
                perf::markdown(&bench.natives, command)
            });
        }
        return ExitCode::SUCCESS;
    }
    if wanted("eks-deploy") {
        // Pods Ready at once: every other event is a whole rollout, followed to its end.
        let mut workload = workloads::EksDeploy::setup(&emulators, &sdk, 1, 30, Some("0s")).await;
        let list = subjects_of("eks-deploy", base_env.clone());
        bench.measure(list, &mut workload).await;
        eprintln!("bench: eks-deploy: requests per rollout");
        let subject = paths.rust("eks-deploy", base_env.clone());
        eks_requests = eks::run(&emulators, &sdk, &subject, &aws_log).await;
    }

    eprintln!("bench: micro-benchmarks of parsing and deciding");
    let micro = if settings.quick {
        micro::run(5, 200)
    } else {
        micro::run(30, 2000)
    };

    machine.load_after = load_average();
    let results = Results {
        machine,
        settings: settings.clone(),
        subjects: bench.results,
        micro,
        eks_requests,
        harness_seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(parent) = settings.results.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let json: Value = serde_json::to_value(&results).unwrap();
    std::fs::write(
        &settings.results,
        serde_json::to_string_pretty(&json).unwrap() + "\n",
    )
    .unwrap();
    eprintln!("bench: figures in {}", settings.results.display());
    println!("{}", report::summary(&results));
    if let Some(markdown) = &settings.markdown {
        let template = std::fs::read_to_string(&settings.template)
            .unwrap_or_else(|e| panic!("{}: {e}", settings.template.display()));
        std::fs::write(markdown, report::fill(&template, &results)).unwrap();
        eprintln!("bench: report in {}", markdown.display());
    }
    ExitCode::SUCCESS
}
