//! Settings of pr-validator, read once per cold start.

use shared::ConfigError;
use shared::config::{Settings, comma_list, env_lookup, is_project_name};
use shared::events::schedule::SweepWindow;
use shared::glob::Glob;

/// The environment variable naming the CodeBuild project that validates pull requests.
pub const PROJECT_VARIABLE: &str = "PR_VALIDATION_PROJECT";
/// The environment variable listing the repositories whose pull requests are validated.
pub const REPOSITORIES_VARIABLE: &str = "PR_REPOSITORIES";
/// The environment variable listing the destination branch patterns validated.
pub const DESTINATIONS_VARIABLE: &str = "PR_DESTINATIONS";
/// The environment variable giving the badge images' base URL.
pub const BADGE_VARIABLE: &str = "BADGE_BASE_URL";
/// The environment variable bounding the search for a pull request's running builds.
pub const HISTORY_VARIABLE: &str = "HISTORY_DEPTH";

/// shields.io's static badges: `<base>/<label>-<message>-<color>`.
pub const DEFAULT_BADGE_BASE_URL: &str = "https://img.shields.io/badge";

/// Everything pr-validator needs besides the event.
#[derive(Debug, Clone)]
pub struct Config {
    /// The CodeBuild project that builds pull requests.
    pub project: String,
    /// The repositories whose pull requests are validated.
    pub repositories: Vec<String>,
    /// The destination branches whose pull requests are validated.
    pub destinations: Vec<Glob>,
    /// Where badge images live, without a trailing `/`.
    pub badge_base_url: String,
    /// How many of the project's latest builds to search for the pull request's running ones
    /// (and for a sweep's finished ones).
    pub history_depth: usize,
    /// Which finished builds a sweep looks at.
    pub sweep_window: SweepWindow,
    /// The report groups whose test reports the result comment shows (none: every report a
    /// build files).
    pub report_groups: Vec<String>,
    /// The ledger table merged pull requests are recorded in, for delivery-events (unset: they
    /// are not recorded, and deploys are not told on pull requests).
    pub merge_ledger: Option<String>,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings::new(lookup);

        let project = settings.required(PROJECT_VARIABLE)?;
        if !is_project_name(&project) {
            return Err(ConfigError::new(
                PROJECT_VARIABLE,
                format!("{project:?} is not a CodeBuild project name"),
            ));
        }

        let repositories = comma_list(&settings.required(REPOSITORIES_VARIABLE)?);
        if repositories.is_empty() {
            return Err(ConfigError::new(
                REPOSITORIES_VARIABLE,
                "names no repository",
            ));
        }
        if let Some(bad) = repositories.iter().find(|r| !is_repository_name(r)) {
            return Err(ConfigError::new(
                REPOSITORIES_VARIABLE,
                format!("{bad:?} is not a CodeCommit repository name"),
            ));
        }

        let destinations = comma_list(&settings.required(DESTINATIONS_VARIABLE)?)
            .into_iter()
            .map(|pattern| {
                let branch = pattern.strip_prefix("refs/heads/").unwrap_or(&pattern);
                Glob::new(branch).map_err(|error| {
                    ConfigError::new(DESTINATIONS_VARIABLE, format!("{pattern:?}: {error}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if destinations.is_empty() {
            return Err(ConfigError::new(DESTINATIONS_VARIABLE, "names no branch"));
        }

        let badge_base_url = settings
            .optional(BADGE_VARIABLE)
            .unwrap_or_else(|| DEFAULT_BADGE_BASE_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(badge_base_url.starts_with("https://") || badge_base_url.starts_with("http://"))
            || badge_base_url.contains(char::is_whitespace)
            || badge_base_url.contains([')', '(', '"'])
        {
            return Err(ConfigError::new(
                BADGE_VARIABLE,
                format!("{badge_base_url:?} is not an http(s) URL fit for a Markdown image"),
            ));
        }

        let history_depth = settings.parsed_or(HISTORY_VARIABLE, 25_usize)?;
        if !(1..=500).contains(&history_depth) {
            return Err(ConfigError::new(
                HISTORY_VARIABLE,
                "must be between 1 and 500",
            ));
        }

        Ok(Self {
            project,
            repositories,
            destinations,
            badge_base_url,
            history_depth,
            sweep_window: SweepWindow::from_settings(&settings)?,
            report_groups: shared::reports::groups_from_settings(&settings)?,
            merge_ledger: settings.optional(shared::config::LEDGER_TABLE_VARIABLE),
        })
    }

    /// Whether pull requests of `repository` are validated.
    pub fn validates_repository(&self, repository: &str) -> bool {
        self.repositories.iter().any(|r| r == repository)
    }

    /// Whether pull requests into `branch` are validated.
    pub fn validates_destination(&self, branch: &str) -> bool {
        self.destinations.iter().any(|glob| glob.matches(branch))
    }
}

fn is_repository_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use shared::config::map_lookup;

    use super::*;

    const BASE: [(&str, &str); 3] = [
        (PROJECT_VARIABLE, "shop-pr"),
        (REPOSITORIES_VARIABLE, "shop, payments"),
        (DESTINATIONS_VARIABLE, "main,refs/heads/release/*"),
    ];

    fn with<'a>(extra: &[(&'a str, &'a str)]) -> Result<Config, ConfigError> {
        let mut pairs: Vec<(&str, &str)> = BASE
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        pairs.extend(extra.iter().copied());
        Config::from_lookup(map_lookup(&pairs))
    }

    #[test]
    fn lists_are_comma_separated_and_destinations_are_branch_patterns() {
        let config = with(&[]).unwrap();
        assert_eq!(config.project, "shop-pr");
        assert_eq!(config.repositories, ["shop", "payments"]);
        assert!(config.validates_repository("payments"));
        assert!(!config.validates_repository("shop2"));
        assert!(config.validates_destination("main"));
        assert!(config.validates_destination("release/2.4"));
        assert!(!config.validates_destination("release/2.4/hotfix"));
        assert!(!config.validates_destination("develop"));
        assert_eq!(config.badge_base_url, DEFAULT_BADGE_BASE_URL);
        assert_eq!(config.history_depth, 25);
        assert!(config.report_groups.is_empty(), "every report");
        let config = with(&[(shared::reports::GROUPS_VARIABLE, "shop-pr-tests")]).unwrap();
        assert_eq!(config.report_groups, ["shop-pr-tests"]);
    }

    #[test]
    fn the_badge_base_loses_its_trailing_slash() {
        let config = with(&[(BADGE_VARIABLE, "https://badges.example.com/static/")]).unwrap();
        assert_eq!(config.badge_base_url, "https://badges.example.com/static");
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 11] = [
            (
                &[(shared::reports::GROUPS_VARIABLE, "shop-pr-tests,a b")],
                shared::reports::GROUPS_VARIABLE,
            ),
            (&[(PROJECT_VARIABLE, "")], PROJECT_VARIABLE),
            (&[(PROJECT_VARIABLE, "shop pr")], PROJECT_VARIABLE),
            (&[(REPOSITORIES_VARIABLE, " , ")], REPOSITORIES_VARIABLE),
            (
                &[(REPOSITORIES_VARIABLE, "shop,my repo")],
                REPOSITORIES_VARIABLE,
            ),
            (
                &[(DESTINATIONS_VARIABLE, "main,a b")],
                DESTINATIONS_VARIABLE,
            ),
            (&[(DESTINATIONS_VARIABLE, ",")], DESTINATIONS_VARIABLE),
            (&[(BADGE_VARIABLE, "ftp://x")], BADGE_VARIABLE),
            (&[(BADGE_VARIABLE, "https://x/a)b")], BADGE_VARIABLE),
            (&[(HISTORY_VARIABLE, "0")], HISTORY_VARIABLE),
            (&[(HISTORY_VARIABLE, "many")], HISTORY_VARIABLE),
        ];
        for (pairs, variable) in cases {
            let error = with(pairs).unwrap_err();
            assert_eq!(error.variable(), variable, "{error}");
        }
        let missing = Config::from_lookup(map_lookup(&[])).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "configuration PR_VALIDATION_PROJECT: is not set"
        );
    }
}
