//! eks-deploy's `UserParameters` parser on arbitrary text: what a pipeline's action
//! configuration holds, read as the job's parameters are.
#![no_main]

use eks_deploy::params::DeployParameters;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // CodePipeline hands the parameters over as a JSON string: always valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    fuzz_support::check_parameters(DeployParameters::from_user_parameters(Some(text)));
});
