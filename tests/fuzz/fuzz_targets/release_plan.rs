//! eks-deploy's release plan parser (strategy, alarms, bakeAfter, scanGate) on arbitrary text
//! read as a `UserParameters` object: every refusal names a field and says why on one line.
#![no_main]

use eks_deploy::plan::{MAX_ALARMS, MAX_TOTAL_BAKE, ReleasePlan, Strategy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(data) else {
        return;
    };
    match ReleasePlan::from_fields(&fields) {
        Ok(plan) => {
            assert!(plan.alarms.len() <= MAX_ALARMS);
            assert!(plan.total_bake() <= MAX_TOTAL_BAKE);
            if let Strategy::Canary { steps } = &plan.strategy {
                assert!(!steps.is_empty());
                assert!(steps.windows(2).all(|w| w[0].weight < w[1].weight));
                assert!(steps.iter().all(|s| (1..=100).contains(&s.weight)));
            }
        }
        Err(error) => {
            assert!(!error.field.is_empty());
            assert!(!error.problem.is_empty());
            assert!(error.to_string().len() <= 1_024, "{error}");
            assert!(!error.to_string().contains(['\n', '\r']), "{error}");
        }
    }
});
