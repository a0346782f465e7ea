use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{AlarmReader, AlarmState, AlarmStates, AlarmValue};

const SERVICE: &str = "CloudWatch";
const OPERATION: &str = "DescribeAlarms";

/// DescribeAlarms takes at most this many names per call.
const NAMES_PER_CALL: usize = 100;
/// Pages read at most per call: named alarms fit in one page; a next token is followed a few
/// times, never without end.
const MAX_PAGES: usize = 5;

/// [`AlarmReader`] over Amazon CloudWatch.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl AlarmReader for CloudWatchAlarms {
    async fn alarm_states(&self, names: &[String]) -> Result<AlarmStates, UpstreamError> {
        let mut read: Vec<AlarmState> = Vec::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut next_token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                // Without AlarmTypes, DescribeAlarms returns metric alarms only: a composite
                // alarm named here would look missing.
                let output = self
                    .client
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .set_next_token(next_token.take())
                    .send()
                    .await
                    .map_err(|error| upstream(SERVICE, OPERATION, error))?;
                read.extend(output.metric_alarms().iter().map(|alarm| {
                    state(
                        alarm.alarm_name(),
                        alarm.state_value(),
                        alarm.state_reason(),
                    )
                }));
                read.extend(output.composite_alarms().iter().map(|alarm| {
                    state(
                        alarm.alarm_name(),
                        alarm.state_value(),
                        alarm.state_reason(),
                    )
                }));
                match output.next_token() {
                    Some(token) => next_token = Some(token.to_owned()),
                    None => break,
                }
            }
        }
        let mut states = AlarmStates::default();
        for name in names {
            match read.iter().find(|alarm| alarm.name == *name) {
                Some(alarm) => states.found.push(alarm.clone()),
                None => states.missing.push(name.clone()),
            }
        }
        Ok(states)
    }
}

fn state(name: Option<&str>, value: Option<&StateValue>, reason: Option<&str>) -> AlarmState {
    AlarmState {
        name: name.unwrap_or_default().to_owned(),
        value: match value {
            Some(StateValue::Alarm) => AlarmValue::Alarm,
            Some(StateValue::Ok) => AlarmValue::Ok,
            _ => AlarmValue::InsufficientData,
        },
        reason: reason.unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{CompositeAlarm, MetricAlarm};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    #[tokio::test]
    async fn named_alarms_are_read_with_both_types_and_missing_ones_reported() {
        let describe = mock!(Client::describe_alarms)
            .match_requests(|request| {
                request.alarm_names() == ["shop-5xx", "shop-latency", "shop-gone"]
                    && request.alarm_types() == [AlarmType::MetricAlarm, AlarmType::CompositeAlarm]
                    && request.next_token().is_none()
            })
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(
                        MetricAlarm::builder()
                            .alarm_name("shop-5xx")
                            .state_value(StateValue::Alarm)
                            .state_reason("Threshold Crossed: 3 datapoints were greater than 5")
                            .build(),
                    )
                    .composite_alarms(
                        CompositeAlarm::builder()
                            .alarm_name("shop-latency")
                            .state_value(StateValue::Ok)
                            .build(),
                    )
                    .build()
            });
        let alarms = CloudWatchAlarms::new(mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::Sequential,
            [&describe]
        ));
        let names = ["shop-5xx", "shop-latency", "shop-gone"].map(String::from);
        let states = alarms.alarm_states(&names).await.unwrap();
        assert_eq!(states.missing, ["shop-gone"]);
        assert_eq!(states.found.len(), 2);
        let firing = states.firing().unwrap();
        assert_eq!(firing.name, "shop-5xx");
        assert_eq!(
            firing.reason,
            "Threshold Crossed: 3 datapoints were greater than 5"
        );
        assert_eq!(states.found[1].value, AlarmValue::Ok);
        assert_eq!(describe.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_next_token_is_followed() {
        let first = mock!(Client::describe_alarms)
            .match_requests(|request| request.next_token().is_none())
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(
                        MetricAlarm::builder()
                            .alarm_name("a")
                            .state_value(StateValue::InsufficientData)
                            .build(),
                    )
                    .next_token("t")
                    .build()
            });
        let second = mock!(Client::describe_alarms)
            .match_requests(|request| request.next_token() == Some("t"))
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(
                        MetricAlarm::builder()
                            .alarm_name("b")
                            .state_value(StateValue::Ok)
                            .build(),
                    )
                    .build()
            });
        let alarms = CloudWatchAlarms::new(mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::Sequential,
            [&first, &second]
        ));
        let states = alarms
            .alarm_states(&["a".to_owned(), "b".to_owned()])
            .await
            .unwrap();
        assert!(states.missing.is_empty());
        assert_eq!(states.found[0].value, AlarmValue::InsufficientData);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }
}
