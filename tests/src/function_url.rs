//! A real function binary behind a Lambda Function URL served by `cargo lambda watch`.
//!
//! `cargo lambda watch --only-lambda-apis` serves the Runtime API and the Function URLs
//! (`/lambda-url/<function>/…`) without building anything, so it never fights `cargo test` over
//! the build lock; the already-built binary then polls it under the function's name.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::function::spawn_function;
use crate::workspace_root;

/// How long `cargo lambda watch` may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `cargo lambda watch` and the function polling it.
pub struct FunctionUrl {
    name: String,
    port: u16,
    _watch: Child,
    function: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for FunctionUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionUrl")
            .field("name", &self.name)
            .field("port", &self.port)
            .finish()
    }
}

/// The pinned cargo-lambda the scripts install in `.venv`, else one on `PATH`.
fn cargo_lambda() -> PathBuf {
    let pinned = workspace_root().join(".venv/bin/cargo-lambda");
    if pinned.exists() {
        pinned
    } else {
        PathBuf::from("cargo-lambda")
    }
}

fn free_port() -> u16 {
    // Bound and released at once: a small race with other processes, never with our own tests,
    // which each get a distinct port from the kernel.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl FunctionUrl {
    /// Serves function `name` at [`FunctionUrl::url`], with exactly `env` (plus what Lambda sets).
    pub async fn start(name: &str, env: &[(String, String)]) -> Self {
        let port = free_port();
        let mut watch = Command::new(cargo_lambda());
        watch
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .current_dir(workspace_root())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let watch = watch.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start cargo lambda watch ({}): {e}",
                cargo_lambda().display()
            )
        });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "cargo lambda watch did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The function polls the runtime API under its own name, so the Function URL
        // `/lambda-url/<name>/` reaches it.
        let (function, logs) =
            spawn_function(name, &format!("http://127.0.0.1:{port}/.rt/{name}"), env);
        Self {
            name: name.to_owned(),
            port,
            _watch: watch,
            function,
            logs,
        }
    }

    /// The Function URL: `http://127.0.0.1:PORT/lambda-url/<name>/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{}/", self.port, self.name)
    }

    /// `scheme://host:port` of the Function URL, as a browser's `Origin` header gives it.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the function logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Whether the function process is still running (it exits after an init error).
    pub fn is_running(&mut self) -> bool {
        matches!(self.function.try_wait(), Ok(None))
    }
}
