use std::future::Future;

use tracing::{info, warn};

use crate::error::{ErrorChain, UpstreamError};
use crate::ports::BuildApi;
use crate::reports::{BuildTests, TestReport, report_group};

/// Reading the test reports CodeBuild made of a build's JUnit files.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TestReports: Send + Sync {
    /// The reports `report_arns` (a build's `reportArns`), in that order, each with its first
    /// failing cases (at most [`crate::reports::MAX_FAILURES_SHOWN`]). A report that no longer
    /// exists is left out. Bounded: whatever a report holds, it costs a fixed number of calls.
    fn reports(
        &self,
        report_arns: &[String],
    ) -> impl Future<Output = Result<Vec<TestReport>, UpstreamError>> + Send;
}

/// What a notification about build `build_id` (`project:uuid` or its ARN) says of its tests.
///
/// `known_reports` are the build's `reportArns` when the caller has read the build already (a
/// sweep); otherwise the build is read for them, since its state change event does not carry
/// them. Only reports of `groups` are read (none listed: every report), the report groups the
/// function may read. A failed read is logged and told as [`BuildTests::Unreadable`]: the
/// comment or email goes out without the tests rather than not at all.
pub async fn build_tests<B: BuildApi, R: TestReports>(
    builds: &B,
    reports: &R,
    build_id: &str,
    known_reports: Option<&[String]>,
    groups: &[String],
) -> BuildTests {
    let read;
    let all = match known_reports {
        Some(arns) => arns,
        None => match builds.build(build_id).await {
            Ok(record) => {
                read = record.map(|record| record.report_arns).unwrap_or_default();
                &read
            }
            Err(error) => return unreadable(build_id, &error),
        },
    };
    let (wanted, skipped): (Vec<String>, Vec<String>) = all.iter().cloned().partition(|arn| {
        groups.is_empty()
            || report_group(arn).is_some_and(|group| groups.iter().any(|g| g == group))
    });
    for arn in &skipped {
        info!(build_id, report = %arn, "test report not read: its group is not one the function reads");
    }
    if wanted.is_empty() {
        return BuildTests::None;
    }
    match reports.reports(&wanted).await {
        Ok(found) if found.is_empty() => BuildTests::None,
        Ok(found) => BuildTests::Read(found),
        Err(error) => unreadable(build_id, &error),
    }
}

fn unreadable(build_id: &str, error: &UpstreamError) -> BuildTests {
    warn!(
        build_id,
        error = %ErrorChain(error),
        "test reports not read: the notification goes out without them"
    );
    BuildTests::Unreadable {
        code: error.code().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use mockall::predicate::eq;

    use super::*;
    use crate::ports::{BuildRecord, MockBuildApi, reply};

    const BUILD: &str = "shop-pr:7f3c";
    const TESTS: &str = "arn:aws:codebuild:us-east-1:123456789012:report/shop-pr-tests:1";
    const LINT: &str = "arn:aws:codebuild:us-east-1:123456789012:report/shop-pr-lint:2";

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn report(arn: &str) -> TestReport {
        TestReport {
            arn: arn.into(),
            status: "SUCCEEDED".into(),
            total: 3,
            passed: 3,
            ..TestReport::default()
        }
    }

    fn build_with(arns: &[&str]) -> MockBuildApi {
        let record = BuildRecord {
            id: BUILD.into(),
            report_arns: arns.iter().map(|a| (*a).to_owned()).collect(),
            ..BuildRecord::default()
        };
        let mut builds = MockBuildApi::new();
        builds
            .expect_build()
            .with(eq(BUILD))
            .times(1)
            .returning(move |_| reply(Ok(Some(record.clone()))));
        builds
    }

    #[tokio::test]
    async fn the_build_is_read_for_its_reports_and_only_the_groups_read_are_asked_for() {
        let builds = build_with(&[TESTS, LINT]);
        let mut reports = MockTestReports::new();
        reports
            .expect_reports()
            .withf(|arns| arns == [TESTS])
            .times(1)
            .returning(|_| reply(Ok(vec![report(TESTS)])));

        let tests = build_tests(&builds, &reports, BUILD, None, &groups(&["shop-pr-tests"])).await;

        assert_eq!(tests, BuildTests::Read(vec![report(TESTS)]));
    }

    #[tokio::test]
    async fn reports_a_sweep_knows_already_cost_no_build_read_and_no_group_list_reads_all() {
        let mut reports = MockTestReports::new();
        reports
            .expect_reports()
            .withf(|arns| arns == [TESTS, LINT])
            .times(1)
            .returning(|_| reply(Ok(vec![report(TESTS), report(LINT)])));
        let known = [TESTS.to_owned(), LINT.to_owned()];

        let tests = build_tests(&MockBuildApi::new(), &reports, BUILD, Some(&known), &[]).await;

        assert_eq!(tests, BuildTests::Read(vec![report(TESTS), report(LINT)]));
    }

    #[tokio::test]
    async fn a_build_without_reports_or_gone_says_nothing_and_reads_no_report() {
        let builds = build_with(&[]);
        let tests = build_tests(&builds, &MockTestReports::new(), BUILD, None, &[]).await;
        assert_eq!(tests, BuildTests::None);

        let mut gone = MockBuildApi::new();
        gone.expect_build().times(1).returning(|_| reply(Ok(None)));
        let tests = build_tests(&gone, &MockTestReports::new(), BUILD, None, &[]).await;
        assert_eq!(tests, BuildTests::None);

        let only_lint = build_with(&[LINT]);
        let tests = build_tests(
            &only_lint,
            &MockTestReports::new(),
            BUILD,
            None,
            &groups(&["shop-pr-tests"]),
        )
        .await;
        assert_eq!(tests, BuildTests::None, "a group not read is not asked for");
    }

    #[tokio::test]
    async fn a_failed_read_is_told_as_unreadable_with_the_services_code() {
        let mut builds = MockBuildApi::new();
        builds.expect_build().times(1).returning(|_| {
            reply(Err(UpstreamError::new(
                "CodeBuild",
                "BatchGetBuilds",
                Some("ThrottlingException".into()),
                "Rate exceeded",
            )))
        });
        let tests = build_tests(&builds, &MockTestReports::new(), BUILD, None, &[]).await;
        assert_eq!(
            tests,
            BuildTests::Unreadable {
                code: Some("ThrottlingException".into())
            }
        );

        let mut reports = MockTestReports::new();
        reports.expect_reports().times(1).returning(|_| {
            reply(Err(UpstreamError::new(
                "CodeBuild",
                "BatchGetReports",
                Some("AccessDeniedException".into()),
                "not authorized",
            )))
        });
        let tests = build_tests(&build_with(&[TESTS]), &reports, BUILD, None, &[]).await;
        assert_eq!(
            tests,
            BuildTests::Unreadable {
                code: Some("AccessDeniedException".into())
            }
        );
    }
}
