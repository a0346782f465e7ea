//! eks-deploy's invocation path on arbitrary bytes: the raw payload, a CodePipeline job or a
//! direct invocation (`params::parse`), then the deployment parameters, from the job's
//! `UserParameters` or from the direct payload, as the handler reads them, and a job's
//! continuation token.
#![no_main]

use eks_deploy::params::{self, DeployParameters, Invocation};
use fuzz_support::{check_invalid, payload};
use libfuzzer_sys::fuzz_target;
use shared::events::MAX_EVENT_BYTES;

fuzz_target!(|data: &[u8]| {
    let Some(payload) = payload(data, MAX_EVENT_BYTES) else {
        return;
    };
    let parameters = match params::parse(payload) {
        Ok(Invocation::Job(job)) => {
            // A token that is not ours is an error the handler reports, never a panic.
            if let Some(token) = job.data.continuation_token.as_deref() {
                let _ = eks_deploy::continuation::Continuation::decode(token);
            }
            DeployParameters::from_user_parameters(job.user_parameters())
        }
        Ok(Invocation::Direct(value)) => DeployParameters::from_value(value),
        Err(error) => return check_invalid(&error),
    };
    fuzz_support::check_parameters(parameters);
});
