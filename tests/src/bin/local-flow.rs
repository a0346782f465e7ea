//! The whole flow against the local emulators, with the real function binaries, told as a
//! timeline of what each person sees. Run it with `tests/scripts/flow`.

use std::process::ExitCode;

use integration_tests::story::{self, Names};
use integration_tests::timeline::Timeline;

#[tokio::main]
async fn main() -> ExitCode {
    let mut timeline = Timeline::new();
    story::tell(Names::as_deployed(), &mut timeline).await;
    timeline.finish()
}
