//! Settings of codecommit-push, read once per cold start.

use serde::Deserialize;
use shared::ConfigError;
use shared::config::{Settings, env_lookup};
use shared::glob::Glob;

/// The environment variable holding the routes, as JSON.
pub const ROUTES_VARIABLE: &str = "PIPELINE_ROUTES";

/// Everything codecommit-push needs to know besides the event.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which pushes start which pipelines.
    pub routes: Routes,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings::new(lookup);
        let raw: Vec<RawRoute> = settings.json(ROUTES_VARIABLE)?;
        Ok(Self {
            routes: Routes::new(raw)?,
        })
    }
}

/// A push to a branch of `repository` matching `branch` starts `pipeline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The CodeCommit repository's name.
    pub repository: String,
    /// The branches it applies to.
    pub branch: Glob,
    /// The pipeline to start.
    pub pipeline: String,
    /// The pipeline's source action to pin to the pushed commit; looked up in the pipeline's
    /// definition when not given.
    pub source_action: Option<String>,
}

/// The validated routing table, in the order it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes(Vec<Route>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRoute {
    repository: String,
    branch: String,
    pipeline: String,
    #[serde(default)]
    source_action: Option<String>,
}

impl Routes {
    fn new(raw: Vec<RawRoute>) -> Result<Self, ConfigError> {
        if raw.is_empty() {
            return Err(ConfigError::new(
                ROUTES_VARIABLE,
                "no routes: give at least one {\"repository\", \"branch\", \"pipeline\"}",
            ));
        }
        raw.into_iter()
            .enumerate()
            .map(|(index, route)| {
                let invalid = |reason: String| {
                    ConfigError::new(ROUTES_VARIABLE, format!("route [{index}]: {reason}"))
                };
                check_name("repository", &route.repository, 100, is_repository_char)
                    .map_err(&invalid)?;
                check_name("pipeline", &route.pipeline, 100, is_pipeline_char).map_err(&invalid)?;
                if let Some(action) = &route.source_action {
                    check_name("sourceAction", action, 100, is_pipeline_char).map_err(&invalid)?;
                }
                let branch = Glob::new(&route.branch)
                    .map_err(|error| invalid(format!("branch {:?}: {error}", route.branch)))?;
                Ok(Route {
                    repository: route.repository,
                    branch,
                    pipeline: route.pipeline,
                    source_action: route.source_action,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The routes a push to `branch` of `repository` takes, one per pipeline: when several
    /// routes name the same pipeline, the first one written wins.
    pub fn matching(&self, repository: &str, branch: &str) -> Vec<&Route> {
        let mut matched: Vec<&Route> = Vec::new();
        for route in &self.0 {
            if route.repository == repository
                && route.branch.matches(branch)
                && !matched.iter().any(|m| m.pipeline == route.pipeline)
            {
                matched.push(route);
            }
        }
        matched
    }

    /// All routes.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.0.iter()
    }
}

// Names are checked against the services' own rules now, at cold start, so a typo is a clear
// configuration error instead of a ValidationException on the first push.
fn check_name(
    field: &str,
    value: &str,
    max: usize,
    allowed: fn(char) -> bool,
) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.len() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "{field} {value:?} contains {bad:?}, which the service does not allow"
        ));
    }
    Ok(())
}

fn is_repository_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn is_pipeline_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use shared::config::map_lookup;

    use super::*;

    fn config(routes: &str) -> Result<Config, ConfigError> {
        Config::from_lookup(map_lookup(&[(ROUTES_VARIABLE, routes)]))
    }

    #[test]
    fn routes_are_read_in_order_with_optional_source_action() {
        let config = config(
            r#"[{"repository":"shop","branch":"main","pipeline":"shop-main"},
                {"repository":"shop","branch":"release/*","pipeline":"shop-release","sourceAction":"Checkout"}]"#,
        )
        .unwrap();
        let routes: Vec<_> = config.routes.iter().collect();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].pipeline, "shop-main");
        assert_eq!(routes[0].source_action, None);
        assert_eq!(routes[1].branch.as_str(), "release/*");
        assert_eq!(routes[1].source_action.as_deref(), Some("Checkout"));
    }

    #[test]
    fn a_missing_variable_is_a_config_error_naming_it() {
        let error = Config::from_lookup(map_lookup(&[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration PIPELINE_ROUTES: is not set"
        );
    }

    #[test]
    fn malformed_routes_are_refused_with_the_route_and_field() {
        let cases = [
            ("[]", "no routes"),
            ("{}", "invalid JSON: invalid type: map"),
            ("[{", "invalid JSON"),
            (
                r#"[{"repository":"shop","branch":"main"}]"#,
                "missing field `pipeline`",
            ),
            (
                r#"[{"repository":"shop","branch":"main","pipeline":"p","pipline":"x"}]"#,
                "invalid JSON at [0].pipline: unknown field `pipline`",
            ),
            (
                r#"[{"repository":"","branch":"main","pipeline":"p"}]"#,
                "route [0]: repository is empty",
            ),
            (
                r#"[{"repository":"shop","branch":"main","pipeline":"p"},{"repository":"shop","branch":"","pipeline":"p"}]"#,
                "route [1]: branch \"\": the pattern is empty",
            ),
            (
                r#"[{"repository":"shop","branch":"main","pipeline":"my pipeline"}]"#,
                "route [0]: pipeline \"my pipeline\" contains ' '",
            ),
            (
                r#"[{"repository":"shop","branch":"main","pipeline":"p","sourceAction":"a/b"}]"#,
                "route [0]: sourceAction \"a/b\" contains '/'",
            ),
        ];
        for (routes, expected) in cases {
            let error = config(routes).unwrap_err();
            assert_eq!(error.variable(), ROUTES_VARIABLE);
            assert!(error.reason().contains(expected), "{routes}: got {error}");
        }
    }

    #[test]
    fn a_push_takes_every_matching_route_once_per_pipeline() {
        let config = config(
            r#"[{"repository":"shop","branch":"main","pipeline":"shop-main"},
                {"repository":"shop","branch":"**","pipeline":"shop-scan"},
                {"repository":"shop","branch":"m*","pipeline":"shop-main","sourceAction":"Other"},
                {"repository":"other","branch":"main","pipeline":"other-main"}]"#,
        )
        .unwrap();
        let matched: Vec<_> = config
            .routes
            .matching("shop", "main")
            .into_iter()
            .map(|r| (r.pipeline.as_str(), r.source_action.as_deref()))
            .collect();
        assert_eq!(matched, vec![("shop-main", None), ("shop-scan", None)]);
        assert!(config.routes.matching("unknown", "main").is_empty());
    }
}
