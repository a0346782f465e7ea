//! The set-ups the tests of each function share: the resources a function works on in the
//! emulators, and the function itself (the real binary) running against them.

pub mod build_status;
pub mod deliveries;
pub mod deployments;
pub mod promotions;
pub mod pull_requests;
pub mod pushes;

/// `base` with each of `extra`'s settings put in place of the one of the same name.
pub fn with_settings(
    mut base: Vec<(String, String)>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    base.retain(|(name, _)| !extra.iter().any(|(setting, _)| setting == name));
    base.extend(extra.iter().cloned());
    base
}
