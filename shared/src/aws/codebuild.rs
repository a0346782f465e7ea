use aws_sdk_codebuild::Client;
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType, SortOrderType};

use super::upstream;
use crate::error::UpstreamError;
use crate::events::codebuild::{BuildLogs, BuildPhase, BuildStatus};
use crate::ports::{BuildApi, BuildRecord, StartBuild, StartedBuild, TestReports};
use crate::reports::{FailedCase, MAX_FAILURES_SHOWN, TestReport};

const SERVICE: &str = "CodeBuild";

/// BatchGetBuilds takes at most this many ids.
const BATCH: usize = 100;

/// The reports of one build read at most: a build writes one per report group of its buildspec.
const MAX_REPORTS: usize = 20;

/// DescribeTestCases calls per report at most: a page may hold fewer cases than asked for, but
/// a report of 100 000 cases still costs no more than this.
const MAX_CASE_PAGES: usize = 3;

/// [`BuildApi`] over AWS CodeBuild.
#[derive(Debug, Clone)]
pub struct CodeBuild {
    client: Client,
}

impl CodeBuild {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl BuildApi for CodeBuild {
    async fn recent_builds(
        &self,
        project: &str,
        limit: usize,
    ) -> Result<Vec<BuildRecord>, UpstreamError> {
        let mut ids = Vec::with_capacity(limit);
        let mut next_token = None;
        while ids.len() < limit {
            let mut request = self.client.list_builds_for_project().project_name(project);
            // CodeBuild refuses a sort order next to a page token: the token carries it.
            request = match next_token {
                None => request.sort_order(SortOrderType::Descending),
                Some(token) => request.next_token(token),
            };
            let page = request
                .send()
                .await
                .map_err(|error| upstream(SERVICE, "ListBuildsForProject", error))?;
            ids.extend(page.ids().iter().cloned());
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        ids.truncate(limit);

        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            records.extend(self.records(chunk).await?);
        }
        // BatchGetBuilds does not promise the order asked for.
        records.sort_by_key(|record| ids.iter().position(|id| *id == record.id));
        Ok(records)
    }

    async fn build(&self, build_id: &str) -> Result<Option<BuildRecord>, UpstreamError> {
        // An ARN answers under the build's id: the id is what is asked for.
        let id = build_id
            .split_once(":build/")
            .map_or(build_id, |(_, id)| id)
            .to_owned();
        let records = self.records(std::slice::from_ref(&id)).await?;
        Ok(records.into_iter().find(|record| record.id == id))
    }

    async fn start_build(&self, request: &StartBuild) -> Result<StartedBuild, UpstreamError> {
        const OPERATION: &str = "StartBuild";
        let mut call = self
            .client
            .start_build()
            .project_name(&request.project)
            .source_version(&request.source_version)
            .idempotency_token(&request.idempotency_token);
        for (name, value) in &request.variables {
            let variable = EnvironmentVariable::builder()
                .name(name)
                .value(value)
                .r#type(EnvironmentVariableType::Plaintext)
                .build()
                .map_err(|error| {
                    UpstreamError::new(SERVICE, OPERATION, None, format!("variable {name}"))
                        .with_source(error)
                })?;
            call = call.environment_variables_override(variable);
        }
        let output = call
            .send()
            .await
            .map_err(|error| upstream(SERVICE, OPERATION, error))?;
        let build = output.build_value().ok_or_else(|| {
            UpstreamError::new(SERVICE, OPERATION, None, "the answer carries no build")
        })?;
        let (Some(id), Some(arn)) = (build.id(), build.arn()) else {
            return Err(UpstreamError::new(
                SERVICE,
                OPERATION,
                None,
                "the answer's build has no id or ARN",
            ));
        };
        Ok(StartedBuild {
            id: id.to_owned(),
            arn: arn.to_owned(),
            number: build.build_number().and_then(|n| u64::try_from(n).ok()),
        })
    }

    async fn stop_build(&self, build_id: &str) -> Result<(), UpstreamError> {
        self.client
            .stop_build()
            .id(build_id)
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "StopBuild", error))?;
        Ok(())
    }
}

impl TestReports for CodeBuild {
    async fn reports(&self, report_arns: &[String]) -> Result<Vec<TestReport>, UpstreamError> {
        let arns: Vec<String> = report_arns.iter().take(MAX_REPORTS).cloned().collect();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .batch_get_reports()
            .set_report_arns(Some(arns.clone()))
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "BatchGetReports", error))?;
        let mut reports = Vec::with_capacity(output.reports().len());
        for report in output.reports() {
            let Some(arn) = report.arn() else { continue };
            let summary = report.test_summary();
            let count = |status: &str| {
                summary
                    .and_then(|s| s.status_counts().get(status))
                    .and_then(|n| u64::try_from(*n).ok())
                    .unwrap_or(0)
            };
            let mut read = TestReport {
                arn: arn.to_owned(),
                status: report
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                total: summary
                    .and_then(|s| u64::try_from(s.total()).ok())
                    .unwrap_or(0),
                passed: count("SUCCEEDED"),
                failed: count("FAILED") + count("ERROR"),
                skipped: count("SKIPPED"),
                duration_nanos: summary
                    .and_then(|s| u64::try_from(s.duration_in_nano_seconds()).ok()),
                failures: Vec::new(),
            };
            if count("FAILED") > 0 {
                read.failures = self.failed_cases(arn).await?;
            }
            reports.push(read);
        }
        // BatchGetReports does not promise the order asked for.
        reports.sort_by_key(|report| arns.iter().position(|arn| *arn == report.arn));
        Ok(reports)
    }
}

impl CodeBuild {
    /// BatchGetBuilds of at most [`BATCH`] ids; the ones CodeBuild no longer has are left out.
    async fn records(&self, ids: &[String]) -> Result<Vec<BuildRecord>, UpstreamError> {
        let output = self
            .client
            .batch_get_builds()
            .set_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|error| upstream(SERVICE, "BatchGetBuilds", error))?;
        Ok(output.builds().iter().map(record).collect())
    }

    /// The first failing cases of report `arn`, at most [`MAX_FAILURES_SHOWN`], in at most
    /// [`MAX_CASE_PAGES`] calls.
    async fn failed_cases(&self, arn: &str) -> Result<Vec<FailedCase>, UpstreamError> {
        let filter = aws_sdk_codebuild::types::TestCaseFilter::builder()
            .status("FAILED")
            .build();
        let mut cases = Vec::with_capacity(MAX_FAILURES_SHOWN);
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_CASE_PAGES {
            let wanted = MAX_FAILURES_SHOWN - cases.len();
            let page = self
                .client
                .describe_test_cases()
                .report_arn(arn)
                .filter(filter.clone())
                // At most 10 asked for: far below the API's limit of 100.
                .max_results(i32::try_from(wanted).unwrap_or(100))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|error| upstream(SERVICE, "DescribeTestCases", error))?;
            cases.extend(
                page.test_cases()
                    .iter()
                    .take(wanted)
                    .map(|case| FailedCase {
                        prefix: case.prefix().map(str::to_owned),
                        name: case.name().unwrap_or_default().to_owned(),
                        message: case.message().map(str::to_owned),
                    }),
            );
            next_token = page.next_token().map(str::to_owned);
            if cases.len() >= MAX_FAILURES_SHOWN || next_token.is_none() {
                break;
            }
        }
        Ok(cases)
    }
}

/// A build as the functions need to know it.
fn record(build: &aws_sdk_codebuild::types::Build) -> BuildRecord {
    BuildRecord {
        arn: build.arn().map(str::to_owned),
        start_time: build.start_time().and_then(utc),
        end_time: build.end_time().and_then(utc),
        initiator: build.initiator().map(str::to_owned),
        phases: build.phases().iter().map(phase).collect(),
        logs: build.logs().map(|logs| BuildLogs {
            group_name: logs.group_name().map(str::to_owned),
            stream_name: logs.stream_name().map(str::to_owned),
            deep_link: logs.deep_link().map(str::to_owned),
        }),
        id: build.id().unwrap_or_default().to_owned(),
        number: build.build_number().and_then(|n| u64::try_from(n).ok()),
        status: build
            .build_status()
            .map_or(BuildStatus::Other, |s| BuildStatus::parse(s.as_str())),
        complete: build.build_complete(),
        source_version: build.source_version().map(str::to_owned),
        variables: build
            .environment()
            .map(|environment| {
                environment
                    .environment_variables()
                    .iter()
                    .filter(|v| {
                        v.r#type()
                            .is_none_or(|t| t == &EnvironmentVariableType::Plaintext)
                    })
                    .map(|v| (v.name().to_owned(), v.value().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        report_arns: build.report_arns().to_vec(),
    }
}

fn utc(time: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// A phase as the build's events spell it: each context `STATUS_CODE: message`.
fn phase(phase: &aws_sdk_codebuild::types::BuildPhase) -> BuildPhase {
    BuildPhase {
        phase_type: phase
            .phase_type()
            .map(|kind| kind.as_str().to_owned())
            .unwrap_or_default(),
        phase_status: phase
            .phase_status()
            .map(|status| status.as_str().to_owned()),
        phase_context: Some(
            phase
                .contexts()
                .iter()
                .map(|context| {
                    format!(
                        "{}: {}",
                        context.status_code().unwrap_or_default(),
                        context.message().unwrap_or_default()
                    )
                })
                .collect(),
        ),
        // Seconds of a build: far below 2^53, exact as a float.
        duration_in_seconds: phase.duration_in_seconds().map(|seconds| seconds as f64),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_codebuild::Client;
    use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
    use aws_sdk_codebuild::operation::list_builds_for_project::ListBuildsForProjectOutput;
    use aws_sdk_codebuild::primitives::DateTime;
    use aws_sdk_codebuild::types::{
        Build, BuildPhaseType, ComputeType, EnvironmentType, EnvironmentVariable, PhaseContext,
        ProjectEnvironment, StatusType,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn build(id: &str, number: i64, status: StatusType) -> Build {
        Build::builder()
            .id(id)
            .arn(format!(
                "arn:aws:codebuild:us-east-1:123456789012:build/{id}"
            ))
            .start_time(DateTime::from_secs(1_795_000_000))
            .end_time(DateTime::from_secs(1_795_000_192))
            .phases(
                aws_sdk_codebuild::types::BuildPhase::builder()
                    .phase_type(BuildPhaseType::Build)
                    .phase_status(status.clone())
                    .contexts(
                        PhaseContext::builder()
                            .status_code("BUILD_TIMED_OUT")
                            .message("Build has timed out. ")
                            .build(),
                    )
                    .build(),
            )
            .build_number(number)
            .build_status(status)
            .build_complete(true)
            .environment(
                ProjectEnvironment::builder()
                    .r#type(EnvironmentType::ArmContainer)
                    .image("img")
                    .compute_type(ComputeType::BuildGeneral1Small)
                    .environment_variables(
                        EnvironmentVariable::builder()
                            .name("SOURCE_BRANCH")
                            .value("main")
                            .build()
                            .unwrap(),
                    )
                    .environment_variables(
                        EnvironmentVariable::builder()
                            .name("TOKEN")
                            .value("shop/token")
                            .r#type(EnvironmentVariableType::SecretsManager)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[tokio::test]
    async fn recent_builds_page_newest_first_and_keep_the_listed_order() {
        // The sort order goes on the first page only: CodeBuild refuses it next to a token.
        let first = mock!(Client::list_builds_for_project)
            .match_requests(|r| {
                r.sort_order() == Some(&SortOrderType::Descending) && r.next_token().is_none()
            })
            .then_output(|| {
                ListBuildsForProjectOutput::builder()
                    .ids("p:3")
                    .ids("p:2")
                    .next_token("t")
                    .build()
            });
        let second = mock!(Client::list_builds_for_project)
            .match_requests(|r| r.sort_order().is_none() && r.next_token() == Some("t"))
            .then_output(|| ListBuildsForProjectOutput::builder().ids("p:1").build());
        let details = mock!(Client::batch_get_builds)
            .match_requests(|r| r.ids() == ["p:3", "p:2", "p:1"])
            .then_output(|| {
                BatchGetBuildsOutput::builder()
                    .builds(build("p:1", 1, StatusType::Succeeded))
                    .builds(build("p:3", 3, StatusType::Failed))
                    .builds(build("p:2", 2, StatusType::TimedOut))
                    .build()
            });
        let client = mock_client!(
            aws_sdk_codebuild,
            RuleMode::Sequential,
            [&first, &second, &details]
        );

        let records = CodeBuild::new(client).recent_builds("p", 10).await.unwrap();

        let summary: Vec<_> = records
            .iter()
            .map(|r| (r.id.as_str(), r.number, r.status))
            .collect();
        assert_eq!(
            summary,
            [
                ("p:3", Some(3), BuildStatus::Failed),
                ("p:2", Some(2), BuildStatus::TimedOut),
                ("p:1", Some(1), BuildStatus::Succeeded)
            ]
        );
        assert_eq!(
            records[0].variables,
            [("SOURCE_BRANCH".to_owned(), "main".to_owned())],
            "secrets are not read"
        );
        let timed_out = &records[1];
        assert_eq!(
            timed_out.end_time.map(|t| t.timestamp()),
            Some(1_795_000_192)
        );
        assert_eq!(timed_out.phases.len(), 1);
        assert_eq!(
            timed_out.phases[0].phase_context.as_deref(),
            Some(&["BUILD_TIMED_OUT: Build has timed out. ".to_owned()][..])
        );
        assert_eq!(
            timed_out.arn.as_deref(),
            Some("arn:aws:codebuild:us-east-1:123456789012:build/p:2")
        );
        assert_eq!(
            (first.num_calls(), second.num_calls(), details.num_calls()),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn one_build_is_read_by_its_id_with_the_reports_it_filed() {
        let report = "arn:aws:codebuild:us-east-1:123456789012:report/p-tests:9";
        let found = mock!(Client::batch_get_builds)
            .match_requests(|r| r.ids() == ["p:2"])
            .then_output(move || {
                let mut build = build("p:2", 2, StatusType::Failed);
                build.report_arns = Some(vec![report.to_owned()]);
                BatchGetBuildsOutput::builder().builds(build).build()
            });
        let gone = mock!(Client::batch_get_builds)
            .match_requests(|r| r.ids() == ["p:3"])
            .then_output(|| {
                BatchGetBuildsOutput::builder()
                    .builds_not_found("p:3")
                    .build()
            });
        let client = mock_client!(aws_sdk_codebuild, RuleMode::Sequential, [&found, &gone]);
        let codebuild = CodeBuild::new(client);

        let record = codebuild
            .build("arn:aws:codebuild:us-east-1:123456789012:build/p:2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.id, "p:2");
        assert_eq!(record.report_arns, [report]);
        assert_eq!(codebuild.build("p:3").await.unwrap(), None);
        assert_eq!((found.num_calls(), gone.num_calls()), (1, 1));
    }

    fn case(i: usize) -> aws_sdk_codebuild::types::TestCase {
        aws_sdk_codebuild::types::TestCase::builder()
            .prefix("shop::cart")
            .name(format!("case_{i}"))
            .status("FAILED")
            .message("assertion failed")
            .build()
    }

    #[tokio::test]
    async fn reports_read_counts_and_page_failing_cases_up_to_the_cap() {
        use aws_sdk_codebuild::operation::batch_get_reports::BatchGetReportsOutput;
        use aws_sdk_codebuild::operation::describe_test_cases::DescribeTestCasesOutput;
        use aws_sdk_codebuild::types::{Report, ReportStatusType, TestReportSummary};

        let tests = "arn:aws:codebuild:us-east-1:123456789012:report/shop-tests:1";
        let lint = "arn:aws:codebuild:us-east-1:123456789012:report/shop-lint:2";
        let summary = |passed: i32, failed: i32| {
            TestReportSummary::builder()
                .total(passed + failed)
                .status_counts("SUCCEEDED", passed)
                .status_counts("FAILED", failed)
                .duration_in_nano_seconds(3_000_000_000)
                .build()
                .unwrap()
        };
        let batch = mock!(Client::batch_get_reports)
            .match_requests(move |r| r.report_arns() == [tests, lint])
            .then_output(move || {
                BatchGetReportsOutput::builder()
                    .reports(
                        Report::builder()
                            .arn(lint)
                            .status(ReportStatusType::Generating)
                            .build(),
                    )
                    .reports(
                        Report::builder()
                            .arn(tests)
                            .status(ReportStatusType::Failed)
                            .test_summary(summary(99_000, 1_000))
                            .build(),
                    )
                    .build()
            });
        // A page may hold fewer cases than asked: the next one asks for what is missing.
        let first = mock!(Client::describe_test_cases)
            .match_requests(move |r| {
                r.report_arn() == Some(tests)
                    && r.filter().and_then(|f| f.status()) == Some("FAILED")
                    && r.max_results() == Some(10)
                    && r.next_token().is_none()
            })
            .then_output(|| {
                DescribeTestCasesOutput::builder()
                    .test_cases(case(0))
                    .test_cases(case(1))
                    .test_cases(case(2))
                    .next_token("t1")
                    .build()
            });
        let second = mock!(Client::describe_test_cases)
            .match_requests(|r| r.max_results() == Some(7) && r.next_token() == Some("t1"))
            .then_output(|| {
                let mut page = DescribeTestCasesOutput::builder().next_token("t2");
                for i in 3..10 {
                    page = page.test_cases(case(i));
                }
                page.build()
            });
        let client = mock_client!(
            aws_sdk_codebuild,
            RuleMode::Sequential,
            [&batch, &first, &second]
        );

        let reports = CodeBuild::new(client)
            .reports(&[tests.to_owned(), lint.to_owned()])
            .await
            .unwrap();

        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].arn, tests, "in the build's order");
        assert_eq!(
            (reports[0].passed, reports[0].failed, reports[0].total),
            (99_000, 1_000, 100_000)
        );
        assert_eq!(reports[0].failures.len(), MAX_FAILURES_SHOWN);
        assert_eq!(reports[0].failures[9].name, "case_9");
        assert_eq!(reports[1].status, "GENERATING");
        assert!(
            reports[1].failures.is_empty(),
            "no cases read of a report in the making"
        );
        assert_eq!(
            (batch.num_calls(), first.num_calls(), second.num_calls()),
            (1, 1, 1),
            "no third page once ten cases are in"
        );
    }

    #[tokio::test]
    async fn a_build_without_reports_costs_no_call() {
        let client = mock_client!(aws_sdk_codebuild, RuleMode::Sequential, []);
        assert_eq!(CodeBuild::new(client).reports(&[]).await.unwrap(), []);
    }
}
