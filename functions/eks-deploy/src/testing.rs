//! A scripted Kubernetes API server for unit tests: each expected request is checked (method,
//! path and query, body) and answered in order; anything missing or extra fails the test.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub type ResponseBody = BoxBody<Bytes, Infallible>;
type Handle = tower_test::mock::Handle<Request<Body>, Response<ResponseBody>>;

/// One expected request and its answer.
pub struct Exchange {
    pub method: Method,
    /// The path and query, exactly.
    pub uri: String,
    /// The JSON body the request must carry, when it carries one.
    pub body: Option<Value>,
    /// The content type the request must carry, when given.
    pub content_type: Option<&'static str>,
    pub answer: Answer,
}

/// How the scripted server answers.
pub enum Answer {
    Json(StatusCode, Value),
    /// Watch events, newline-delimited, then the stream ends.
    Events(Vec<Value>),
    /// A watch that stays open and silent.
    Silence,
}

impl Exchange {
    pub fn get(uri: &str, object: Value) -> Self {
        Self {
            method: Method::GET,
            uri: uri.into(),
            body: None,
            content_type: None,
            answer: Answer::Json(StatusCode::OK, object),
        }
    }

    pub fn patch(uri: &str, body: Value, object: Value) -> Self {
        Self {
            method: Method::PATCH,
            uri: uri.into(),
            body: Some(body),
            content_type: Some("application/strategic-merge-patch+json"),
            answer: Answer::Json(StatusCode::OK, object),
        }
    }

    pub fn post(uri: &str, body: Value, object: Value) -> Self {
        Self {
            method: Method::POST,
            uri: uri.into(),
            body: Some(body),
            content_type: Some("application/json"),
            answer: Answer::Json(StatusCode::CREATED, object),
        }
    }

    pub fn merge_patch(uri: &str, body: Value, object: Value) -> Self {
        Self {
            method: Method::PATCH,
            uri: uri.into(),
            body: Some(body),
            content_type: Some("application/merge-patch+json"),
            answer: Answer::Json(StatusCode::OK, object),
        }
    }

    pub fn delete(uri: &str) -> Self {
        Self {
            method: Method::DELETE,
            uri: uri.into(),
            body: Some(json!({"propagationPolicy": "Background"})),
            content_type: None,
            answer: Answer::Json(
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
        }
    }

    pub fn watch(uri: &str, events: Vec<Value>) -> Self {
        Self {
            method: Method::GET,
            uri: uri.into(),
            body: None,
            content_type: None,
            answer: Answer::Events(events),
        }
    }

    pub fn failing(mut self, code: u16, reason: &str) -> Self {
        self.answer = Answer::Json(
            StatusCode::from_u16(code).unwrap(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": format!("injected {code}"), "reason": reason, "code": code}),
        );
        self
    }
}

/// A kube client whose API server follows `script`; await the returned handle to check every
/// exchange happened and nothing else was asked.
pub fn scripted(script: Vec<Exchange>) -> (kube::Client, JoinHandle<()>) {
    let (service, mut handle): (_, Handle) = tower_test::mock::pair();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        for (index, exchange) in script.into_iter().enumerate() {
            let (request, respond) =
                tokio::time::timeout(Duration::from_secs(5), handle.next_request())
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "request {index} ({} {}) never came",
                            exchange.method, exchange.uri
                        )
                    })
                    .unwrap_or_else(|| {
                        panic!(
                            "the client went away before request {index} ({} {})",
                            exchange.method, exchange.uri
                        )
                    });
            assert_eq!(request.method(), exchange.method, "request {index}: method");
            assert_eq!(
                request.uri().to_string(),
                exchange.uri,
                "request {index}: path and query"
            );
            if let Some(content_type) = exchange.content_type {
                assert_eq!(
                    request.headers().get("content-type").unwrap(),
                    content_type,
                    "request {index}"
                );
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            match exchange.body {
                Some(expected) => {
                    let actual: Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(actual, expected, "request {index}: body");
                }
                None => assert!(bytes.is_empty(), "request {index}: unexpected body"),
            }
            let response = match exchange.answer {
                Answer::Json(status, value) => Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())).boxed())
                    .unwrap(),
                Answer::Events(events) => {
                    let lines: Vec<u8> = events
                        .iter()
                        .flat_map(|event| {
                            let mut line = serde_json::to_vec(event).unwrap();
                            line.push(b'\n');
                            line
                        })
                        .collect();
                    Response::builder()
                        .body(Full::new(Bytes::from(lines)).boxed())
                        .unwrap()
                }
                Answer::Silence => {
                    let never =
                        futures::stream::pending::<Result<http_body::Frame<Bytes>, Infallible>>();
                    Response::builder()
                        .body(StreamBody::new(never).boxed())
                        .unwrap()
                }
            };
            respond.send_response(response);
        }
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    });
    (client, server)
}

/// A Deployment `shop/web` with containers `web` (running `image`) and `proxy`.
pub fn deployment(resource_version: &str, generation: i64, image: &str, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": resource_version, "generation": generation,
                     "annotations": {"eks-deploy.cicd/previous-image": "web=shop:v0"}},
        "spec": {
            "replicas": 3,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": image}, {"name": "proxy", "image": "envoy:1.30"}
            ]}}
        },
        "status": status
    })
}

/// Status of a finished rollout of `generation`.
pub fn rolled_out(generation: i64) -> Value {
    json!({"observedGeneration": generation, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
           "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})
}

/// Status partway through a rollout of `generation`.
pub fn rolling(generation: i64, updated: i64) -> Value {
    json!({"observedGeneration": generation, "replicas": 4, "updatedReplicas": updated, "readyReplicas": 3, "availableReplicas": 3,
           "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]})
}

/// Status of a rollout of `generation` that ran out of its progress deadline.
pub fn stuck(generation: i64) -> Value {
    stuck_since(generation, "2026-12-02T10:00:00Z")
}

/// As [`stuck`], the verdict written at `updated`.
pub fn stuck_since(generation: i64, updated: &str) -> Value {
    json!({"observedGeneration": generation, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3,
           "unavailableReplicas": 1,
           "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                           "lastUpdateTime": updated, "lastTransitionTime": updated,
                           "message": "ReplicaSet \"web-7d4b9c\" has timed out progressing."}]})
}

/// The first status after a rollback of `generation` to a ReplicaSet that exists, as the real
/// Deployment controller writes it: the counts move, the earlier verdict (written at `updated`)
/// stays until it sees progress.
pub fn rolling_back(generation: i64, updated: &str, total: i64, available: i64) -> Value {
    json!({"observedGeneration": generation, "replicas": total, "updatedReplicas": 3, "readyReplicas": available,
           "availableReplicas": available,
           "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                           "lastUpdateTime": updated, "lastTransitionTime": updated,
                           "message": "ReplicaSet \"web-7d4b9c\" has timed out progressing."}]})
}

pub fn modified(object: Value) -> Value {
    json!({"type": "MODIFIED", "object": object})
}

pub const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/web";
/// kube sends its (empty) patch parameters as an empty query.
pub const DEPLOYMENT_PATCH: &str = "/apis/apps/v1/namespaces/shop/deployments/web?";

/// The watch request for `shop/web` from `resource_version`.
pub fn watch_uri(resource_version: &str, timeout: u32) -> String {
    watch_uri_of("web", resource_version, timeout)
}

/// The watch request for Deployment `shop/<name>` from `resource_version`.
pub fn watch_uri_of(name: &str, resource_version: &str, timeout: u32) -> String {
    format!(
        "/apis/apps/v1/namespaces/shop/deployments?&watch=true&timeoutSeconds={timeout}&fieldSelector=metadata.name%3D{name}&allowWatchBookmarks=true&resourceVersion={resource_version}"
    )
}

pub const CANARY: &str = "/apis/apps/v1/namespaces/shop/deployments/web-canary";
pub const CANARY_PATCH: &str = "/apis/apps/v1/namespaces/shop/deployments/web-canary?";
pub const CANARY_DELETE: &str = "/apis/apps/v1/namespaces/shop/deployments/web-canary?";
/// Where a Deployment is created.
pub const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/shop/deployments?";

/// The canary of [`deployment`] running `image` with `replicas`, owned by `owner`.
pub fn canary(
    resource_version: &str,
    image: &str,
    replicas: i64,
    owner: &str,
    status: Value,
) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-canary", "namespace": "shop", "resourceVersion": resource_version, "generation": 1,
                     "labels": {"track": "canary"},
                     "annotations": {"eks-deploy.cicd/canary-owner": owner, "eks-deploy.cicd/canary-of": "web"}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": {"app": "web", "track": "canary"}},
            "template": {"metadata": {"labels": {"app": "web", "track": "canary"}}, "spec": {"containers": [
                {"name": "web", "image": image}, {"name": "proxy", "image": "envoy:1.30"}
            ]}}
        },
        "status": status
    })
}

/// The canary of [`deployment`] as eks-deploy creates it (the body it POSTs): [`canary`]
/// without the server's resource version, generation and status.
pub fn canary_as_created(image: &str, replicas: i64, owner: &str) -> Value {
    let mut wanted = canary("", image, replicas, owner, json!({}));
    if let Some(metadata) = wanted["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
        metadata.remove("generation");
    }
    if let Some(object) = wanted.as_object_mut() {
        object.remove("status");
    }
    wanted
}

/// Milliseconds since the epoch, `ago` before now: when a bake began, in a token.
pub fn millis_ago(ago: Duration) -> u64 {
    let then = std::time::SystemTime::now() - ago;
    u64::try_from(
        then.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Status of a canary whose `replicas` pods are all available.
pub fn available(generation: i64, replicas: i64) -> Value {
    json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
           "availableReplicas": replicas})
}

/// The image patch eks-deploy sends.
pub fn expected_patch(resource_version: &str, image: &str, previous: &str, cause: &str) -> Value {
    json!({
        "metadata": {"resourceVersion": resource_version, "annotations": {
            "eks-deploy.cicd/previous-image": format!("web={previous}"),
            "kubernetes.io/change-cause": cause
        }},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}
    })
}
