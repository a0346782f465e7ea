//! A readable timeline of what each person would see, for the local flow.

use std::time::Instant;

/// Prints steps as they happen and remembers whether any expected step did not.
#[derive(Debug)]
pub struct Timeline {
    started: Instant,
    failures: Vec<String>,
    checks: usize,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// A timeline starting now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            failures: Vec::new(),
            checks: 0,
        }
    }

    /// A heading for the next part of the story.
    pub fn chapter(&self, title: &str) {
        println!(
            "\n── {title} {}",
            "─".repeat(70usize.saturating_sub(title.len()))
        );
    }

    /// `who` did or saw `what`.
    pub fn step(&self, who: &str, what: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut lines = what.lines();
        println!(
            "{elapsed:>7.2}s  {who:<14} {}",
            lines.next().unwrap_or_default()
        );
        for line in lines {
            println!("{:>7}   {:<14} {line}", "", "");
        }
    }

    /// Checks that something the story depends on happened; a failure is printed and counted.
    pub fn expect(&mut self, happened: bool, what: &str) -> bool {
        self.checks += 1;
        if happened {
            println!("{:>7}   {:<14} ✔ {what}", "", "");
        } else {
            println!("{:>7}   {:<14} ✘ {what}", "", "");
            self.failures.push(what.to_owned());
        }
        happened
    }

    /// The expected steps that did not happen.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// How many steps were checked.
    pub fn checks(&self) -> usize {
        self.checks
    }

    /// Ends the story: the process's exit code is 0 only when every expected step happened.
    pub fn finish(self) -> std::process::ExitCode {
        println!();
        if self.failures.is_empty() {
            println!(
                "Every step happened ({:.1}s).",
                self.started.elapsed().as_secs_f64()
            );
            std::process::ExitCode::SUCCESS
        } else {
            println!("{} step(s) did not happen:", self.failures.len());
            for failure in &self.failures {
                println!("  - {failure}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
