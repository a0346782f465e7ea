use std::collections::BTreeMap;

use aws_config::Region;
use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::describe_image_scan_findings::{
    DescribeImageScanFindingsError, DescribeImageScanFindingsOutput,
};
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::types::{ImageIdentifier, ScanStatus};

use super::upstream;
use crate::error::UpstreamError;
use crate::ports::{
    Finding, ImageRegistry, MAX_TOP_FINDINGS, RegistryImage, ScanFindings, ScanState, severity_rank,
};

const SERVICE: &str = "ECR";

/// Findings read per page of DescribeImageScanFindings (ECR's largest).
const FINDINGS_PER_PAGE: i32 = 1000;
/// Pages read at most: the counts per severity come whole with the first page; later pages only
/// add candidates for the top findings, and an image with thousands of findings fails the gate
/// on its counts anyway.
const MAX_FINDING_PAGES: usize = 3;

/// [`ImageRegistry`] over Amazon ECR. An image in another region than the client's is asked of
/// that region's endpoint.
#[derive(Debug, Clone)]
pub struct EcrRegistry {
    client: Client,
}

impl EcrRegistry {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The client to ask about an image in `region`: this one, or for another region one with
    /// the same settings aimed at that region's endpoint.
    fn client_for(&self, region: &str) -> Client {
        let same = self
            .client
            .config()
            .region()
            .is_some_and(|r| r.as_ref() == region);
        if same {
            self.client.clone()
        } else {
            Client::from_conf(
                self.client
                    .config()
                    .to_builder()
                    .region(Region::new(region.to_owned()))
                    .build(),
            )
        }
    }
}

impl ImageRegistry for EcrRegistry {
    async fn digest(&self, image: &RegistryImage) -> Result<Option<String>, UpstreamError> {
        const OPERATION: &str = "DescribeImages";
        let Some(tag) = image.tag.as_deref() else {
            return Err(UpstreamError::new(
                SERVICE,
                OPERATION,
                None,
                "the image has no tag to resolve",
            ));
        };
        let sent = self
            .client_for(&image.region)
            .describe_images()
            .registry_id(&image.account)
            .repository_name(&image.repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match sent {
            Ok(output) => Ok(output
                .image_details()
                .iter()
                .find_map(|detail| detail.image_digest())
                .map(str::to_owned)),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(DescribeImagesError::ImageNotFoundException(_))
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(upstream(SERVICE, OPERATION, error)),
        }
    }

    async fn scan_findings(
        &self,
        image: &RegistryImage,
        digest: &str,
    ) -> Result<ScanFindings, UpstreamError> {
        const OPERATION: &str = "DescribeImageScanFindings";
        let mut findings = ScanFindings {
            state: ScanState::InProgress,
            counts: BTreeMap::new(),
            top: Vec::new(),
        };
        let mut candidates: Vec<Finding> = Vec::new();
        let mut next_token: Option<String> = None;
        let client = self.client_for(&image.region);
        for page in 0..MAX_FINDING_PAGES {
            let sent = client
                .describe_image_scan_findings()
                .registry_id(&image.account)
                .repository_name(&image.repository)
                .image_id(ImageIdentifier::builder().image_digest(digest).build())
                .max_results(FINDINGS_PER_PAGE)
                .set_next_token(next_token.take())
                .send()
                .await;
            let output = match sent {
                Ok(output) => output,
                Err(error)
                    if matches!(
                        error.as_service_error(),
                        Some(DescribeImageScanFindingsError::ScanNotFoundException(_))
                    ) =>
                {
                    findings.state = ScanState::NotScanned;
                    return Ok(findings);
                }
                Err(error) => return Err(upstream(SERVICE, OPERATION, error)),
            };
            if page == 0 {
                findings.state = scan_state(&output);
                if findings.state != ScanState::Complete {
                    return Ok(findings);
                }
                findings.counts = output
                    .image_scan_findings()
                    .and_then(|f| f.finding_severity_counts())
                    .map(|counts| {
                        counts
                            .iter()
                            .map(|(severity, n)| {
                                (
                                    severity.as_str().to_owned(),
                                    u32::try_from(*n).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
            candidates.extend(page_findings(&output));
            candidates.sort_by_key(|f| severity_rank(&f.severity));
            candidates.truncate(MAX_TOP_FINDINGS);
            match output.next_token() {
                Some(token) => next_token = Some(token.to_owned()),
                None => break,
            }
        }
        findings.top = candidates;
        Ok(findings)
    }
}

fn scan_state(output: &DescribeImageScanFindingsOutput) -> ScanState {
    let status = output.image_scan_status();
    let description = status.and_then(|s| s.description()).unwrap_or_default();
    match status.and_then(|s| s.status()) {
        Some(ScanStatus::Complete) | Some(ScanStatus::Active) => ScanState::Complete,
        Some(ScanStatus::InProgress) | Some(ScanStatus::Pending) => ScanState::InProgress,
        None => ScanState::NotScanned,
        Some(other) => ScanState::Unavailable(if description.is_empty() {
            other.as_str().to_owned()
        } else {
            format!("{}: {description}", other.as_str())
        }),
    }
}

/// Basic scanning's findings name the package in an attribute; enhanced scanning's in the
/// vulnerable packages.
fn page_findings(output: &DescribeImageScanFindingsOutput) -> Vec<Finding> {
    let Some(findings) = output.image_scan_findings() else {
        return Vec::new();
    };
    let basic = findings.findings().iter().map(|finding| Finding {
        id: finding.name().unwrap_or_default().to_owned(),
        package: finding
            .attributes()
            .iter()
            .find(|a| a.key() == "package_name")
            .and_then(|a| a.value())
            .map(str::to_owned),
        severity: finding
            .severity()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|| "UNDEFINED".into()),
    });
    let enhanced = findings.enhanced_findings().iter().map(|finding| {
        let details = finding.package_vulnerability_details();
        Finding {
            id: details
                .and_then(|d| d.vulnerability_id())
                .filter(|id| !id.is_empty())
                .or_else(|| finding.title())
                .unwrap_or_default()
                .to_owned(),
            package: details
                .and_then(|d| d.vulnerable_packages().first())
                .and_then(|p| p.name())
                .map(str::to_owned),
            severity: finding.severity().unwrap_or("UNDEFINED").to_owned(),
        }
    });
    basic.chain(enhanced).collect()
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput;
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::types::error::{ImageNotFoundException, ScanNotFoundException};
    use aws_sdk_ecr::types::{
        Attribute, FindingSeverity, ImageDetail, ImageScanFinding, ImageScanFindings,
        ImageScanStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    const DIGEST: &str = "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

    fn image() -> RegistryImage {
        RegistryImage {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            repository: "shop".into(),
            tag: Some("v2".into()),
        }
    }

    fn finding(id: &str, severity: FindingSeverity, package: &str) -> ImageScanFinding {
        ImageScanFinding::builder()
            .name(id)
            .severity(severity)
            .attributes(
                Attribute::builder()
                    .key("package_name")
                    .value(package)
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_tag_resolves_to_the_digest_describe_images_gives() {
        let describe = mock!(Client::describe_images)
            .match_requests(|request| {
                request.registry_id() == Some("123456789012")
                    && request.repository_name() == Some("shop")
                    && request.image_ids().len() == 1
                    && request.image_ids()[0].image_tag() == Some("v2")
            })
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .image_details(ImageDetail::builder().image_digest(DIGEST).build())
                    .build()
            });
        let missing = mock!(Client::describe_images).then_error(|| {
            DescribeImagesError::ImageNotFoundException(
                ImageNotFoundException::builder().message("no").build(),
            )
        });
        let registry = EcrRegistry::new(mock_client!(
            aws_sdk_ecr,
            RuleMode::Sequential,
            [&describe, &missing]
        ));
        assert_eq!(
            registry.digest(&image()).await.unwrap().as_deref(),
            Some(DIGEST)
        );
        assert_eq!(registry.digest(&image()).await.unwrap(), None);
        assert_eq!((describe.num_calls(), missing.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn findings_are_counted_and_the_worst_kept_over_the_pages() {
        let first = mock!(Client::describe_image_scan_findings)
            .match_requests(|request| {
                request.image_id().and_then(|i| i.image_digest()) == Some(DIGEST)
                    && request.max_results() == Some(1000)
                    && request.next_token().is_none()
            })
            .then_output(|| {
                DescribeImageScanFindingsOutput::builder()
                    .image_scan_status(
                        ImageScanStatus::builder()
                            .status(ScanStatus::Complete)
                            .build(),
                    )
                    .image_scan_findings(
                        ImageScanFindings::builder()
                            .finding_severity_counts(FindingSeverity::High, 1)
                            .finding_severity_counts(FindingSeverity::Critical, 1)
                            .finding_severity_counts(FindingSeverity::Low, 1)
                            .findings(finding("CVE-1", FindingSeverity::Low, "zlib"))
                            .findings(finding("CVE-2", FindingSeverity::High, "openssl"))
                            .build(),
                    )
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::describe_image_scan_findings)
            .match_requests(|request| request.next_token() == Some("page-2"))
            .then_output(|| {
                DescribeImageScanFindingsOutput::builder()
                    .image_scan_status(
                        ImageScanStatus::builder()
                            .status(ScanStatus::Complete)
                            .build(),
                    )
                    .image_scan_findings(
                        ImageScanFindings::builder()
                            .findings(finding("CVE-3", FindingSeverity::Critical, "glibc"))
                            .build(),
                    )
                    .build()
            });
        let registry = EcrRegistry::new(mock_client!(
            aws_sdk_ecr,
            RuleMode::Sequential,
            [&first, &second]
        ));
        let findings = registry.scan_findings(&image(), DIGEST).await.unwrap();
        assert_eq!(findings.state, ScanState::Complete);
        assert_eq!(findings.counts["CRITICAL"], 1);
        assert_eq!(findings.counts["HIGH"], 1);
        let ids: Vec<&str> = findings.top.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["CVE-3", "CVE-2", "CVE-1"]);
        assert_eq!(findings.top[0].package.as_deref(), Some("glibc"));
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_scan_in_progress_or_missing_is_told_as_such() {
        let running = mock!(Client::describe_image_scan_findings).then_output(|| {
            DescribeImageScanFindingsOutput::builder()
                .image_scan_status(
                    ImageScanStatus::builder()
                        .status(ScanStatus::InProgress)
                        .build(),
                )
                .build()
        });
        let none = mock!(Client::describe_image_scan_findings).then_error(|| {
            DescribeImageScanFindingsError::ScanNotFoundException(
                ScanNotFoundException::builder().message("no scan").build(),
            )
        });
        let failed = mock!(Client::describe_image_scan_findings).then_output(|| {
            DescribeImageScanFindingsOutput::builder()
                .image_scan_status(
                    ImageScanStatus::builder()
                        .status(ScanStatus::UnsupportedImage)
                        .description("the image's OS is not supported")
                        .build(),
                )
                .build()
        });
        let registry = EcrRegistry::new(mock_client!(
            aws_sdk_ecr,
            RuleMode::Sequential,
            [&running, &none, &failed]
        ));
        let image = image();
        let read = |_: ()| registry.scan_findings(&image, DIGEST);
        assert_eq!(read(()).await.unwrap().state, ScanState::InProgress);
        assert_eq!(read(()).await.unwrap().state, ScanState::NotScanned);
        assert_eq!(
            read(()).await.unwrap().state,
            ScanState::Unavailable("UNSUPPORTED_IMAGE: the image's OS is not supported".into())
        );
        assert_eq!(
            (running.num_calls(), none.num_calls(), failed.num_calls()),
            (1, 1, 1)
        );
    }
}
