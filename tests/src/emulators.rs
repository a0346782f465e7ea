//! The endpoints of the running emulators, as `tests/emulator/run.py` wrote them.

use serde::Deserialize;

/// Where the emulators listen, and the credentials they accept.
#[derive(Debug, Clone, Deserialize)]
pub struct Emulators {
    /// The region the emulators pretend to be.
    pub region: String,
    /// The account id the emulators pretend to be.
    pub account_id: String,
    /// The extended moto server.
    pub aws: AwsEndpoint,
    /// The local Kubernetes cluster.
    pub kubernetes: KubernetesEndpoint,
    /// The emulators' control and read-back API (`.../_emulator`).
    pub admin: String,
}

/// The extended moto server.
#[derive(Debug, Clone, Deserialize)]
pub struct AwsEndpoint {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The access key id it accepts.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

/// The local Kubernetes cluster (a real control plane behind a fault proxy).
#[derive(Debug, Clone, Deserialize)]
pub struct KubernetesEndpoint {
    /// `https://127.0.0.1:PORT`: the fault proxy, where DescribeCluster leads eks-deploy.
    pub server: String,
    /// `https://127.0.0.1:PORT`: kube-apiserver itself, for the tests' own requests.
    pub apiserver: String,
    /// Base64 of the CA certificate PEM, as EKS gives `certificateAuthority.data`.
    pub ca_data: String,
    /// The cluster admin's bearer token (`system:masters`), for test tooling only.
    pub static_token: String,
    /// The API server's version, as `/version` tells it (`v1.37.2`).
    pub version: String,
    /// The Kubernetes user eks-deploy's EKS token maps to (through its access entry).
    pub deploy_user: String,
    /// Its groups, from the access entry in `infra/pipeline.yaml`.
    pub deploy_groups: Vec<String>,
}

impl Emulators {
    /// Reads the endpoints file named by `EMULATORS_FILE`.
    ///
    /// Panics with instructions when the tests run without the emulators.
    pub fn load() -> Self {
        let Ok(path) = std::env::var("EMULATORS_FILE") else {
            panic!(
                "EMULATORS_FILE is not set: run the tests through the README's test command \
                 (tests/scripts/test), which starts the emulators around `cargo test`"
            );
        };
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read the emulators' endpoints from {path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The environment a function binary needs to reach the emulators.
    pub fn function_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.aws.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), self.aws.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.aws.secret_access_key.clone(),
            ),
            ("AWS_REGION".into(), self.region.clone()),
            // Lambda sets both; boto3 (the benchmark's baselines) reads only this one.
            ("AWS_DEFAULT_REGION".into(), self.region.clone()),
            // The emulator answers at once or not at all; retrying only slows a failing test.
            ("AWS_MAX_ATTEMPTS".into(), "1".into()),
        ]
    }
}
