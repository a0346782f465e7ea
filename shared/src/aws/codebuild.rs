use aws_sdk_codebuild::Client;
use aws_sdk_codebuild::types::{EnvironmentVariableType, SortOrderType};

use super::upstream;
use crate::error::UpstreamError;
use crate::events::codebuild::BuildStatus;
use crate::ports::{BuildApi, BuildRecord};

const SERVICE: &str = "CodeBuild";

/// BatchGetBuilds takes at most this many ids.
const BATCH: usize = 100;

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
            let output = self
                .client
                .batch_get_builds()
                .set_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|error| upstream(SERVICE, "BatchGetBuilds", error))?;
            records.extend(output.builds().iter().map(|build| {
                BuildRecord {
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
                }
            }));
        }
        // BatchGetBuilds does not promise the order asked for.
        records.sort_by_key(|record| ids.iter().position(|id| *id == record.id));
        Ok(records)
    }
}
