//! Faults injected into the AWS emulator (`POST /_emulator/aws/faults`), and counting the AWS
//! calls the functions make through them: a "fault" that only delays the answer by a
//! millisecond serves the request as usual and counts it.

use serde_json::{Value, json};

use crate::{Emulators, http};

/// A fault injected into the AWS emulator.
#[derive(Debug, Clone)]
pub struct AwsFault {
    admin: String,
    id: String,
}

impl AwsFault {
    /// Adds the fault (the JSON `aws_ext/faults.py` takes: `service`, `operation`, `match`, and
    /// a `status`, `code` or `delaySeconds` for `count` requests, or for SNS PublishBatch the
    /// `entries` to fail).
    pub async fn add(emulators: &Emulators, fault: Value) -> Self {
        let (code, answer) = http::json(
            "POST",
            &format!("{}/aws/faults", emulators.admin),
            Some(&fault),
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        Self {
            admin: emulators.admin.clone(),
            id: answer["id"].as_str().unwrap().to_owned(),
        }
    }

    /// The fault as the emulator shows it (`served`, and for an `entries` fault `batches`: how
    /// many entries each request it served held and how many it failed).
    pub async fn view(&self) -> Value {
        let (code, answer) = http::json(
            "GET",
            &format!("{}/aws/faults?id={}", self.admin, self.id),
            None,
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        let faults = answer["faults"].as_array().unwrap();
        assert_eq!(faults.len(), 1, "the fault {} is gone: {answer}", self.id);
        faults[0].clone()
    }

    /// How many requests the fault has hit so far.
    pub async fn served(&self) -> u64 {
        let (code, answer) = http::json(
            "GET",
            &format!("{}/aws/faults?id={}", self.admin, self.id),
            None,
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        let faults = answer["faults"].as_array().unwrap();
        assert_eq!(faults.len(), 1, "the fault {} is gone: {answer}", self.id);
        faults[0]["served"].as_u64().unwrap()
    }
}

/// Counts the calls of one operation whose request mentions a given text (a unique pipeline
/// name keeps the tests sharing the emulator apart).
#[derive(Debug, Clone)]
pub struct CallCounter {
    fault: AwsFault,
}

/// As many calls as a test can make: the counter never runs out.
const CAPACITY: u32 = 100_000;

impl CallCounter {
    /// Starts counting calls of `service` (the SigV4 signing name, `codepipeline`) operation
    /// `operation` (`PutApprovalResult`) whose path, query or body contains `mentioning`.
    pub async fn start(
        emulators: &Emulators,
        service: &str,
        operation: &str,
        mentioning: &str,
    ) -> Self {
        let pattern: String = mentioning
            .chars()
            .flat_map(|c| {
                let escape = !c.is_ascii_alphanumeric() && c != '-' && c != '_';
                escape.then_some('\\').into_iter().chain([c])
            })
            .collect();
        let fault = json!({"service": service, "operation": operation, "match": pattern,
                           "delaySeconds": 0.001, "count": CAPACITY});
        Self {
            fault: AwsFault::add(emulators, fault).await,
        }
    }

    /// How many matching calls the emulator has served so far.
    pub async fn count(&self) -> u64 {
        self.fault.served().await
    }
}
