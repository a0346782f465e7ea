//! The events of EventBridge schedule rules, and the sweep they start: a look at the builds whose
//! `Build State Change` event never came.
//!
//! EventBridge delivers CodeBuild's events on a best-effort basis ("Delivery type: Best effort",
//! EventBridge events reference): an event lost on the way would lose a failure email or a pull
//! request's result. Every few minutes a schedule rule (`template.yaml`) invokes codebuild-status
//! and pr-validator with a `Scheduled Event`; each looks at its projects' builds that ended within
//! the window before the scheduled time and reports, through the same path as the event would
//! have, those it has not reported yet.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::error::{ConfigError, InvalidEvent};
use crate::ports::BuildRecord;

/// The EventBridge `source` of scheduled events.
pub const SOURCE: &str = "aws.events";

/// `detail-type` of the events a schedule rule sends.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// A scheduled event's detail: always empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduled {}

/// The environment variable setting how far back a sweep looks, in minutes (default 60).
pub const WINDOW_VARIABLE: &str = "SWEEP_WINDOW_MINUTES";

/// Builds that ended this recently are left to their own event: the sweep is the fallback, not a
/// race with the normal path.
pub const GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// Which finished builds a sweep looks at: those that ended between `length` and [`GRACE`]
/// before the scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepWindow {
    length: chrono::Duration,
}

impl Default for SweepWindow {
    fn default() -> Self {
        Self {
            length: chrono::Duration::minutes(60),
        }
    }
}

impl SweepWindow {
    /// The window [`WINDOW_VARIABLE`] sets: 10 to 1440 minutes, longer than the schedule's
    /// 5-minute rate so that a sweep that failed is made up by the next.
    pub fn from_settings<F>(settings: &Settings<F>) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let minutes: i64 = settings.parsed_or(WINDOW_VARIABLE, 60)?;
        if !(10..=1440).contains(&minutes) {
            return Err(ConfigError::new(
                WINDOW_VARIABLE,
                "must be between 10 and 1440 minutes",
            ));
        }
        Ok(Self {
            length: chrono::Duration::minutes(minutes),
        })
    }

    /// The builds of `records` a sweep at `at` reports: finished, with an end time in the window.
    pub fn due<'a>(&self, records: &'a [BuildRecord], at: DateTime<Utc>) -> Vec<&'a BuildRecord> {
        records
            .iter()
            .filter(|record| record.complete && record.status.is_final())
            .filter(|record| {
                record
                    .end_time
                    .is_some_and(|end| end <= at - GRACE && end >= at - self.length)
            })
            .collect()
    }
}

/// When the schedule fired: the sweep's clock, so a sweep late or retried still looks at the
/// window it was meant for.
pub fn scheduled_at(event: &EventBridgeEvent<Scheduled>) -> Result<DateTime<Utc>, InvalidEvent> {
    event.time.ok_or_else(|| InvalidEvent::missing("time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::map_lookup;
    use crate::events::codebuild::BuildStatus;

    fn ended(id: &str, status: BuildStatus, end: Option<DateTime<Utc>>) -> BuildRecord {
        BuildRecord {
            id: id.into(),
            status,
            complete: status.is_final(),
            end_time: end,
            ..BuildRecord::default()
        }
    }

    #[test]
    fn a_sweep_takes_the_builds_that_ended_in_its_window_but_not_just_now() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let minutes = |m: i64| Some(at - chrono::Duration::minutes(m));
        let records = [
            ended("p:just-now", BuildStatus::Failed, minutes(1)),
            ended("p:recent", BuildStatus::Failed, minutes(3)),
            ended("p:timed-out", BuildStatus::TimedOut, minutes(59)),
            ended("p:long-ago", BuildStatus::Succeeded, minutes(61)),
            ended("p:running", BuildStatus::InProgress, None),
            ended("p:no-end", BuildStatus::Stopped, None),
        ];
        let due: Vec<&str> = SweepWindow::default()
            .due(&records, at)
            .into_iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(due, ["p:recent", "p:timed-out"]);
    }

    #[test]
    fn the_window_is_a_setting_within_bounds() {
        let window =
            SweepWindow::from_settings(&Settings::new(map_lookup(&[(WINDOW_VARIABLE, "120")])))
                .unwrap();
        assert_eq!(window.length, chrono::Duration::minutes(120));
        for bad in ["5", "2000", "an hour"] {
            let error =
                SweepWindow::from_settings(&Settings::new(map_lookup(&[(WINDOW_VARIABLE, bad)])))
                    .unwrap_err();
            assert_eq!(error.variable(), WINDOW_VARIABLE, "{bad}");
        }
        assert_eq!(
            SweepWindow::from_settings(&Settings::new(map_lookup(&[]))).unwrap(),
            SweepWindow::default()
        );
    }
}
