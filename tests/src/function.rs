//! A real function binary running under the Runtime API emulator.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::runtime_api::{InitError, InvocationResult, RuntimeApi};

/// How long an invocation may take in tests before it counts as hung.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A function process and the Runtime API it polls.
pub struct Function {
    name: String,
    runtime: RuntimeApi,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .finish()
    }
}

/// The built binary of function `name` (`target/debug/<name>`, next to the test executable).
pub fn binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("FUNCTION_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap();
    // A test runs from target/<profile>/deps/, a binary (the local flow) from target/<profile>/.
    let mut profile_dir = exe.parent().unwrap();
    if profile_dir.ends_with("deps") {
        profile_dir = profile_dir.parent().unwrap();
    }
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (the README's test command does)",
        path.display()
    );
    path
}

/// Starts the binary of function `name` polling the Runtime API at `runtime_api`, with exactly
/// `env` plus what Lambda itself sets, logging JSON; returns the process and its log lines as
/// they come.
pub fn spawn_function(
    name: &str,
    runtime_api: &str,
    env: &[(String, String)],
) -> (Child, Arc<Mutex<Vec<String>>>) {
    spawn_program(name, &binary(name), &[], runtime_api, env)
}

/// Like [`spawn_function`], running `program` with `args` as function `name` (another runtime's
/// bootstrap, such as `python -m awslambdaric module.handler`).
pub fn spawn_program(
    name: &str,
    program: &std::path::Path,
    args: &[&str],
    runtime_api: &str,
    env: &[(String, String)],
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]test")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let logs = Arc::new(Mutex::new(Vec::new()));
    if let Some(stdout) = child.stdout.take() {
        collect_lines(stdout, logs.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        collect_lines(stderr, logs.clone());
    }
    (child, logs)
}

fn collect_lines(
    stream: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    logs: Arc<Mutex<Vec<String>>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs.lock().unwrap().push(line);
        }
    });
}

impl Function {
    /// Starts function `name` with exactly `env` (plus what Lambda itself sets), logging JSON.
    pub async fn start(name: &str, env: &[(String, String)]) -> Self {
        Self::start_program(name, &binary(name), &[], env).await
    }

    /// Like [`Self::start`], running `program` with `args` as the function (another runtime's
    /// bootstrap, such as `python -m awslambdaric module.handler`).
    pub async fn start_program(
        name: &str,
        program: &std::path::Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> Self {
        let runtime = RuntimeApi::start().await;
        let (child, logs) = spawn_program(name, program, args, &runtime.address(), env);
        Self {
            name: name.to_owned(),
            runtime,
            child,
            logs,
        }
    }

    /// Invokes the function with `payload` and waits for its result.
    pub async fn invoke(&self, payload: &Value) -> InvocationResult {
        let result = self.runtime.invoke(payload, INVOKE_TIMEOUT).await;
        self.settle_logs().await;
        result
    }

    /// Waits until the log lines the function wrote before answering have been read from its
    /// output (they are in the pipe before the answer arrives, but the reader may lag behind
    /// on a loaded machine): until no line came for 30 ms, at most a second.
    async fn settle_logs(&self) {
        let mut seen = self.logs.lock().unwrap().len();
        for _ in 0..33 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let now = self.logs.lock().unwrap().len();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    /// Invokes the function with `payload` as raw bytes (which need not be JSON); returns the
    /// request id its log lines carry, and the result.
    pub async fn invoke_raw(&self, payload: &[u8]) -> (String, InvocationResult) {
        self.runtime
            .invoke_bytes(
                bytes::Bytes::copy_from_slice(payload),
                INVOKE_TIMEOUT,
                Duration::from_secs(60),
            )
            .await
    }

    /// The JSON log records of the invocation `request_id` (the runtime's span carries it),
    /// waiting up to a second for them to be read from the process's output.
    pub async fn logs_of(&self, request_id: &str) -> Vec<Value> {
        let of_request = |record: &Value| {
            record["span"]["requestId"] == request_id
                || record["spans"]
                    .as_array()
                    .is_some_and(|spans| spans.iter().any(|s| s["requestId"] == request_id))
        };
        for _ in 0..20 {
            let records: Vec<Value> = self
                .log_records()
                .into_iter()
                .filter(|r| of_request(r))
                .collect();
            if !records.is_empty() {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Vec::new()
    }

    /// Whether the process is still running (a crash, an abort or an init error ends it).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Invokes the function with `payload`, telling it it has `budget` to run.
    pub async fn invoke_within(&self, payload: &Value, budget: Duration) -> InvocationResult {
        let result = self
            .runtime
            .invoke_with_budget(payload, INVOKE_TIMEOUT, budget)
            .await;
        self.settle_logs().await;
        result
    }

    /// Waits for the process to exit (it should, after an init error) and returns the error it
    /// reported to `/init/error`.
    pub async fn init_failure(mut self) -> (InitError, std::process::ExitStatus) {
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit after its init error", self.name))
            .unwrap();
        let error = self.runtime.init_error().unwrap_or_else(|| {
            panic!(
                "{} exited ({status}) without reporting an init error",
                self.name
            )
        });
        (error, status)
    }

    /// Everything the function logged so far, one line per entry.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The JSON log records (lines that are not JSON are skipped).
    pub fn log_records(&self) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The Runtime API emulator the function polls.
    pub fn runtime(&self) -> &RuntimeApi {
        &self.runtime
    }

    /// The function's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Ends the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Asks the process to end (SIGTERM, which a process under valgrind answers by writing its
    /// profile) and waits up to `limit` for it, then kills it; whether it ended by itself.
    pub async fn terminate(mut self, limit: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(_) => true,
            Err(_) => {
                let _ = self.child.kill().await;
                false
            }
        }
    }
}
