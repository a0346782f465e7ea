//! A Lambda Runtime API emulator: the same HTTP protocol Lambda speaks to a custom runtime
//! (`/2018-06-01/runtime/invocation/next`, `.../response`, `.../error`, `/runtime/init/error`),
//! so the real function binaries run here exactly as they run in Lambda.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, Notify, mpsc, oneshot};

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationResult {
    /// The handler returned this response.
    Response(Value),
    /// The handler failed; Lambda would report this `errorType` and `errorMessage`.
    Error {
        /// The stable error type.
        error_type: String,
        /// The message.
        error_message: String,
    },
}

impl InvocationResult {
    /// The response, or a panic naming the error.
    pub fn response(self) -> Value {
        match self {
            Self::Response(value) => value,
            Self::Error {
                error_type,
                error_message,
            } => {
                panic!("the invocation failed with {error_type}: {error_message}")
            }
        }
    }

    /// The error type, or a panic showing the response.
    pub fn error_type(&self) -> &str {
        match self {
            Self::Error { error_type, .. } => error_type,
            Self::Response(value) => panic!("expected an error, got the response {value}"),
        }
    }
}

/// An error the function reported from `/init/error` before taking any event.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError {
    /// The stable error type.
    pub error_type: String,
    /// The message.
    pub error_message: String,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    /// How long the function is given, as Lambda's deadline header tells it.
    budget: Duration,
}

#[derive(Default)]
struct Shared {
    results: HashMap<String, oneshot::Sender<InvocationResult>>,
    init_error: Option<InitError>,
    first_poll: Option<Instant>,
    polls: u64,
    /// Woken on every poll, for [`RuntimeApi::wait_for_polls`].
    polled: Arc<Notify>,
}

/// A running Runtime API emulator on 127.0.0.1.
pub struct RuntimeApi {
    address: SocketAddr,
    queue: mpsc::UnboundedSender<Pending>,
    shared: Arc<Mutex<Shared>>,
    counter: std::sync::atomic::AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("address", &self.address)
            .finish()
    }
}

impl RuntimeApi {
    /// Starts the emulator on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (queue, receiver) = mpsc::unbounded_channel::<Pending>();
        let receiver = Arc::new(AsyncMutex::new(receiver));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let server = tokio::spawn({
            let shared = shared.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        break;
                    };
                    let receiver = receiver.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            route(request, receiver.clone(), shared.clone())
                        });
                        // A function killed mid-request just drops its connection.
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self {
            address,
            queue,
            shared,
            counter: std::sync::atomic::AtomicU64::new(0),
            server,
        }
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` takes it.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues `payload` for the function and waits up to `timeout` for its result.
    pub async fn invoke(&self, payload: &Value, timeout: Duration) -> InvocationResult {
        self.invoke_with_budget(payload, timeout, Duration::from_secs(60))
            .await
    }

    /// Like [`Self::invoke`], telling the function it has `budget` to run (the
    /// `Lambda-Runtime-Deadline-Ms` header), as a function timeout would.
    pub async fn invoke_with_budget(
        &self,
        payload: &Value,
        timeout: Duration,
        budget: Duration,
    ) -> InvocationResult {
        let payload = Bytes::from(serde_json::to_vec(payload).unwrap());
        self.invoke_bytes(payload, timeout, budget).await.1
    }

    /// Queues `payload` as it is (JSON or not: a Runtime API hands over whatever bytes it was
    /// given) and waits up to `timeout` for its result; returns the request id with it, which
    /// the function's log lines of this invocation carry.
    pub async fn invoke_bytes(
        &self,
        payload: Bytes,
        timeout: Duration,
        budget: Duration,
    ) -> (String, InvocationResult) {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request_id = format!("0000{n:04}-aaaa-4bbb-8ccc-{:012x}", std::process::id());
        let (sender, receiver) = oneshot::channel();
        self.shared
            .lock()
            .unwrap()
            .results
            .insert(request_id.clone(), sender);
        self.queue
            .send(Pending {
                request_id: request_id.clone(),
                payload,
                budget,
            })
            .unwrap();
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(result)) => (request_id, result),
            Ok(Err(_)) => panic!("invocation {request_id}: the emulator dropped it"),
            Err(_) => panic!(
                "invocation {request_id}: no result within {timeout:?}{}",
                self.init_error()
                    .map(|e| format!(" (the function reported an init error: {e:?})"))
                    .unwrap_or_default()
            ),
        }
    }

    /// The init error the function reported, if any.
    pub fn init_error(&self) -> Option<InitError> {
        self.shared.lock().unwrap().init_error.clone()
    }

    /// When the function first asked for work: the end of its init phase.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.lock().unwrap().first_poll
    }

    /// How many times the function asked for work.
    pub fn polls(&self) -> u64 {
        self.shared.lock().unwrap().polls
    }

    /// Waits until the function has asked for work `polls` times in all (after an invocation:
    /// it is idle again, its work for that event done); false if it did not within `timeout`.
    pub async fn wait_for_polls(&self, polls: u64, timeout: Duration) -> bool {
        let polled = self.shared.lock().unwrap().polled.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = polled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.polls() >= polls {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.polls() >= polls;
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Receiver = Arc<AsyncMutex<mpsc::UnboundedReceiver<Pending>>>;

async fn route(
    request: Request<Incoming>,
    receiver: Receiver,
    shared: Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let response = match (method.as_str(), segments.as_slice()) {
        ("GET", ["2018-06-01", "runtime", "invocation", "next"]) => {
            {
                let mut shared = shared.lock().unwrap();
                shared.polls += 1;
                shared.first_poll.get_or_insert_with(Instant::now);
                shared.polled.notify_waiters();
            }
            let next = receiver.lock().await.recv().await;
            match next {
                Some(pending) => Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .header("lambda-runtime-aws-request-id", &pending.request_id)
                    .header("lambda-runtime-deadline-ms", deadline_ms(pending.budget))
                    .header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:under-test",
                    )
                    .header(
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000",
                    )
                    .body(Full::new(pending.payload))
                    .unwrap(),
                None => empty(StatusCode::GONE),
            }
        }
        (
            "POST",
            [
                "2018-06-01",
                "runtime",
                "invocation",
                request_id,
                "response",
            ],
        ) => {
            let request_id = (*request_id).to_owned();
            let body = read_json(request).await;
            finish(&shared, &request_id, InvocationResult::Response(body));
            empty(StatusCode::ACCEPTED)
        }
        ("POST", ["2018-06-01", "runtime", "invocation", request_id, "error"]) => {
            let request_id = (*request_id).to_owned();
            let body = read_json(request).await;
            finish(
                &shared,
                &request_id,
                InvocationResult::Error {
                    error_type: text(&body, "errorType"),
                    error_message: text(&body, "errorMessage"),
                },
            );
            empty(StatusCode::ACCEPTED)
        }
        ("POST", ["2018-06-01", "runtime", "init", "error"]) => {
            let body = read_json(request).await;
            shared.lock().unwrap().init_error = Some(InitError {
                error_type: text(&body, "errorType"),
                error_message: text(&body, "errorMessage"),
            });
            empty(StatusCode::ACCEPTED)
        }
        _ => empty(StatusCode::NOT_FOUND),
    };
    Ok(response)
}

fn finish(shared: &Mutex<Shared>, request_id: &str, result: InvocationResult) {
    if let Some(sender) = shared.lock().unwrap().results.remove(request_id) {
        let _ = sender.send(result);
    }
}

async fn read_json(request: Request<Incoming>) -> Value {
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    }
}

fn text(body: &Value, field: &str) -> String {
    body.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn deadline_ms(budget: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now + budget).as_millis().to_string()
}
