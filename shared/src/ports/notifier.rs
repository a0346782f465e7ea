use std::future::Future;

use crate::error::UpstreamError;

/// Publishing a message people read (by email, or whatever subscribes to the topic).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Notifier: Send + Sync {
    /// Publishes `notification`; returns the message id.
    fn publish(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<String, UpstreamError>> + Send;
}

/// A message for people, with attributes subscribers filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The email subject: at most 100 characters, one line.
    pub subject: String,
    /// Plain text that reads well in an email client.
    pub body: String,
    /// String attributes for subscription filter policies, in a stable order.
    pub attributes: Vec<(String, String)>,
}

/// The longest subject SNS accepts.
pub const MAX_SUBJECT_CHARS: usize = 100;

impl Notification {
    /// A notification whose subject is made to fit SNS: control characters (newlines among
    /// them) become spaces, runs of spaces collapse, and a subject over 100 characters is cut
    /// with an ellipsis.
    pub fn new(subject: &str, body: String, attributes: Vec<(String, String)>) -> Self {
        Self {
            subject: fit_subject(subject),
            body,
            attributes,
        }
    }
}

fn fit_subject(subject: &str) -> String {
    let mut clean = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (clean.is_empty() || clean.ends_with(' ')) {
            continue;
        }
        clean.push(c);
    }
    let clean = clean.trim_end();
    if clean.chars().count() <= MAX_SUBJECT_CHARS {
        return clean.to_owned();
    }
    let mut cut: String = clean.chars().take(MAX_SUBJECT_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_lose_newlines_and_fit_in_100_characters() {
        let n = Notification::new("FAILED:\nshop\r\n  #4\t", String::new(), vec![]);
        assert_eq!(n.subject, "FAILED: shop #4");

        let long = format!("FAILED: {}", "x".repeat(200));
        let n = Notification::new(&long, String::new(), vec![]);
        assert_eq!(n.subject.chars().count(), 100);
        assert!(n.subject.ends_with('…'));

        let exactly = "y".repeat(100);
        assert_eq!(
            Notification::new(&exactly, String::new(), vec![]).subject,
            exactly
        );
    }

    #[test]
    fn multibyte_subjects_are_cut_on_character_boundaries() {
        let long = "é".repeat(150);
        let n = Notification::new(&long, String::new(), vec![]);
        assert_eq!(n.subject.chars().count(), 100);
    }
}
