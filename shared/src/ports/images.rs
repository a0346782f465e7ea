use std::collections::BTreeMap;
use std::future::Future;

use crate::error::UpstreamError;

/// Reading a container registry (ECR): which digest a tag names, and what the image's
/// vulnerability scan found.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ImageRegistry: Send + Sync {
    /// The digest (`sha256:…`) `image`'s tag names now, or `None` when the repository has no
    /// image with that tag.
    fn digest(
        &self,
        image: &RegistryImage,
    ) -> impl Future<Output = Result<Option<String>, UpstreamError>> + Send;

    /// What the scan of the image with `digest` found so far.
    fn scan_findings(
        &self,
        image: &RegistryImage,
        digest: &str,
    ) -> impl Future<Output = Result<ScanFindings, UpstreamError>> + Send;
}

/// An image in a registry, as the registry's API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryImage {
    /// The registry's account (ECR's `registryId`).
    pub account: String,
    /// The registry's region: the API endpoint asked.
    pub region: String,
    /// The repository.
    pub repository: String,
    /// The tag, when the image was given by one.
    pub tag: Option<String>,
}

/// The state of an image's vulnerability scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    /// The scan finished: the findings are final.
    Complete,
    /// The scan is running (or queued): ask again later.
    InProgress,
    /// The image has no scan (scan on push off, and none started).
    NotScanned,
    /// The scan could not be done (`FAILED`, `UNSUPPORTED_IMAGE`, `FINDINGS_UNAVAILABLE`…), with
    /// the registry's status and description.
    Unavailable(String),
}

/// One finding of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The vulnerability's id (`CVE-2024-1234`).
    pub id: String,
    /// The affected package, when the scanner names it.
    pub package: Option<String>,
    /// The registry's severity name (`CRITICAL`, `HIGH`…).
    pub severity: String,
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFindings {
    /// Where the scan stands.
    pub state: ScanState,
    /// How many findings of each severity (the registry's names), all pages counted.
    pub counts: BTreeMap<String, u32>,
    /// The most severe findings, most severe first, at most [`MAX_TOP_FINDINGS`].
    pub top: Vec<Finding>,
}

/// How many findings [`ScanFindings::top`] keeps: what a failure message can show.
pub const MAX_TOP_FINDINGS: usize = 5;

/// ECR's severities, most severe first: how [`ScanFindings::top`] is ordered.
pub const SEVERITY_ORDER: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

/// The rank of a severity name in [`SEVERITY_ORDER`] (unknown names last).
pub fn severity_rank(name: &str) -> usize {
    SEVERITY_ORDER
        .iter()
        .position(|s| s.eq_ignore_ascii_case(name))
        .unwrap_or(SEVERITY_ORDER.len())
}

/// Reading CloudWatch alarms.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AlarmReader: Send + Sync {
    /// The state of each alarm named (metric and composite alarms); names with no alarm are
    /// reported in [`AlarmStates::missing`].
    fn alarm_states(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<AlarmStates, UpstreamError>> + Send;
}

/// An alarm's state value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmValue {
    /// `OK`.
    Ok,
    /// `ALARM`.
    Alarm,
    /// `INSUFFICIENT_DATA`.
    InsufficientData,
}

impl AlarmValue {
    /// CloudWatch's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One alarm as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    /// The alarm's name.
    pub name: String,
    /// Its state.
    pub value: AlarmValue,
    /// CloudWatch's `StateReason` (`Threshold Crossed: 3 datapoints …`).
    pub reason: String,
}

/// The alarms read, and the names that have none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlarmStates {
    /// The alarms found, in the order asked.
    pub found: Vec<AlarmState>,
    /// The names asked for that no alarm has.
    pub missing: Vec<String>,
}

impl AlarmStates {
    /// The first alarm in `ALARM`, if any.
    pub fn firing(&self) -> Option<&AlarmState> {
        self.found.iter().find(|a| a.value == AlarmValue::Alarm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_rank_most_severe_first_and_unknown_last() {
        assert!(severity_rank("CRITICAL") < severity_rank("high"));
        assert_eq!(severity_rank("UNDEFINED"), 5);
        assert_eq!(severity_rank("SEVERE"), 6);
    }

    #[test]
    fn the_first_alarm_in_alarm_is_the_one_firing() {
        let state = |name: &str, value| AlarmState {
            name: name.into(),
            value,
            reason: String::new(),
        };
        let states = AlarmStates {
            found: vec![
                state("a", AlarmValue::Ok),
                state("b", AlarmValue::Alarm),
                state("c", AlarmValue::Alarm),
            ],
            missing: vec![],
        };
        assert_eq!(states.firing().map(|a| a.name.as_str()), Some("b"));
        assert_eq!(AlarmStates::default().firing(), None);
    }
}
