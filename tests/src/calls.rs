//! Counting the AWS calls the functions make, through the emulator's fault injection: a "fault"
//! that only delays the answer by a millisecond serves the request as usual and counts it.

use serde_json::json;

use crate::{Emulators, http};

/// Counts the calls of one operation whose request mentions a given text (a unique pipeline
/// name keeps the tests sharing the emulator apart).
#[derive(Debug, Clone)]
pub struct CallCounter {
    admin: String,
    id: String,
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
        let body = json!({"service": service, "operation": operation, "match": pattern,
                          "delaySeconds": 0.001, "count": CAPACITY});
        let (code, answer) = http::json(
            "POST",
            &format!("{}/aws/faults", emulators.admin),
            Some(&body),
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        Self {
            admin: emulators.admin.clone(),
            id: answer["id"].as_str().unwrap().to_owned(),
        }
    }

    /// How many matching calls the emulator has served so far.
    pub async fn count(&self) -> u64 {
        let (code, answer) = http::json(
            "GET",
            &format!("{}/aws/faults?id={}", self.admin, self.id),
            None,
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        let faults = answer["faults"].as_array().unwrap();
        assert_eq!(faults.len(), 1, "the counter {} is gone: {answer}", self.id);
        faults[0]["served"].as_u64().unwrap()
    }
}
