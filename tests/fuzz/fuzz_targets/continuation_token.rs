//! eks-deploy's continuation token on arbitrary text, as a job event carries it back: a token
//! that is not one eks-deploy wrote is a typed error, and one that reads writes back the same.
#![no_main]

use eks_deploy::continuation::{Continuation, MAX_TOKEN_CHARS, TokenError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    match Continuation::decode(token) {
        Ok(continuation) => {
            assert!(token.chars().count() <= MAX_TOKEN_CHARS);
            // What reads back is what was read: a resumed release picks up exactly there. A
            // token written out may be longer than the one read (absent fields written as
            // defaults): then it is refused when written, never cut.
            match continuation.encode() {
                Ok(written) => {
                    assert!(written.chars().count() <= MAX_TOKEN_CHARS);
                    let again = Continuation::decode(&written);
                    assert_eq!(again.as_ref(), Ok(&continuation));
                }
                Err(TokenError::TooLong(chars)) => assert!(chars > MAX_TOKEN_CHARS),
                Err(error) => panic!("a token read could not be written: {error}"),
            }
        }
        Err(TokenError::TooLong(chars)) => assert!(chars > MAX_TOKEN_CHARS),
        Err(error @ TokenError::Malformed(_)) => {
            let message = error.to_string();
            assert!(message.len() <= 1_024, "{message}");
            assert!(!message.contains(['\n', '\r']), "{message}");
        }
    }
});
