//! Test harness: the local emulators, a Lambda Runtime API emulator that runs the real function
//! binaries, and AWS clients pointed at the emulators.
//!
//! The emulators are started by `tests/emulator/run.py`, which writes their endpoints to the file
//! named by `EMULATORS_FILE`; the README's test command does that around `cargo test`.

// A test harness reports trouble by panicking with a message; that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod approvals;
pub mod aws;
pub mod calls;
pub mod codebuild;
pub mod emf;
pub mod emulators;
pub mod fixtures;
pub mod function;
pub mod function_url;
pub mod http;
pub mod kubernetes;
pub mod pipeline_events;
pub mod releases;
pub mod runtime_api;
pub mod scenarios;
pub mod story;
pub mod templates;
pub mod timeline;

pub use emulators::Emulators;
pub use function::Function;
pub use function_url::FunctionUrl;

/// A name unique to this test run, so tests sharing one emulator never see each other's
/// repositories, pipelines or deployments.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos % 0xfffff)
}

/// The workspace's root folder.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// A sample event from `events/<function>/<name>`.
pub fn sample_event(function: &str, name: &str) -> serde_json::Value {
    let path = workspace_root().join("events").join(function).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh id shaped like an EventBridge event id (a UUID), unique to this run.
pub fn event_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        std::process::id(),
        n & 0xffff,
        (nanos >> 12) & 0xfff,
        nanos & 0xfff,
        nanos & 0xffff_ffff_ffff
    )
}
