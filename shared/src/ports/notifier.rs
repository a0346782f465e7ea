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

    /// Publishes every notification of `notifications`, in as few calls as the service allows,
    /// retrying (a bounded number of times) only those that failed for a reason of the
    /// service's; returns, in the order of `notifications`, each one's message id or why it was
    /// not published.
    fn publish_all(
        &self,
        notifications: &[Notification],
    ) -> impl Future<Output = Vec<Result<String, UpstreamError>>> + Send;
}

/// A message for people, with attributes subscribers filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The email subject: one line of printable ASCII, at most [`MAX_SUBJECT_CHARS`].
    pub subject: String,
    /// Plain text that reads well in an email client.
    pub body: String,
    /// String attributes for subscription filter policies, in a stable order.
    pub attributes: Vec<(String, String)>,
}

/// The longest subject SNS accepts: "Subjects must be ASCII text that begins with a letter,
/// number, or punctuation mark; must not include line breaks or control characters; and must be
/// less than 100 characters long" (SNS Publish API reference). A subject it refuses fails the
/// whole Publish (`InvalidParameter`), so the email is never sent.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// What a subject cut short ends with (ASCII: `…` is not).
const CUT_MARK: &str = "...";

impl Notification {
    /// A notification whose subject is made to fit SNS: letters with accents lose them
    /// (`é` → `e`, `ß` → `ss`), typographic punctuation becomes its ASCII look-alike (`’` → `'`,
    /// `–` → `-`, `…` → `...`), any other character outside printable ASCII becomes `?`,
    /// control characters and line breaks become spaces, runs of spaces collapse, and a subject
    /// over [`MAX_SUBJECT_CHARS`] is cut with `...`. The body and attributes stay as they are.
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
    let mut push = |ascii: char| {
        if ascii != ' ' || !(clean.is_empty() || clean.ends_with(' ')) {
            clean.push(ascii);
        }
    };
    for c in subject.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            push(c);
        } else if c.is_control() || c.is_whitespace() {
            push(' ');
        } else {
            transliterated(c).unwrap_or("?").chars().for_each(&mut push);
        }
    }
    let clean = clean.trim_end();
    // Every character is ASCII now: byte lengths are character counts.
    if clean.len() <= MAX_SUBJECT_CHARS {
        return clean.to_owned();
    }
    let mut cut = clean[..MAX_SUBJECT_CHARS - CUT_MARK.len()]
        .trim_end()
        .to_owned();
    cut.push_str(CUT_MARK);
    cut
}

/// Latin letters without their marks, and typographic punctuation as plain ASCII.
fn transliterated(c: char) -> Option<&'static str> {
    let ascii = match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'à'..='å' | 'ā' | 'ă' | 'ą' | 'ª' => "a",
        'Æ' => "AE",
        'æ' => "ae",
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ð' | 'Ď' | 'Đ' => "D",
        'ð' | 'ď' | 'đ' => "d",
        'È'..='Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'Ĥ' | 'Ħ' => "H",
        'ĥ' | 'ħ' => "h",
        'Ì'..='Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'Ĵ' => "J",
        'ĵ' => "j",
        'Ķ' => "K",
        'ķ' | 'ĸ' => "k",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' | 'Ŋ' => "N",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => "O",
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' | 'º' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' => "S",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' => "s",
        'ß' => "ss",
        'Ţ' | 'Ť' | 'Ŧ' => "T",
        'ţ' | 'ť' | 'ŧ' => "t",
        'Þ' => "TH",
        'þ' => "th",
        'Ù'..='Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ŵ' => "W",
        'ŵ' => "w",
        'Ý' | 'Ŷ' | 'Ÿ' => "Y",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        '‘' | '’' | '‚' | '‛' | '′' => "'",
        '“' | '”' | '„' | '‟' | '″' | '«' | '»' => "\"",
        '‹' => "<",
        '›' => ">",
        '‐'..='―' | '−' => "-",
        '…' => "...",
        '•' | '·' => "*",
        // Combining marks (a letter written as base + accent): the base letter stays.
        '\u{300}'..='\u{36f}' => "",
        '×' => "x",
        '÷' => "/",
        _ => return None,
    };
    Some(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(text: &str) -> String {
        Notification::new(text, String::new(), vec![]).subject
    }

    fn takes(subject: &str) -> bool {
        // The rules the AWS emulator holds a Publish to (tests/emulator/aws_ext/sns.py).
        !subject.is_empty()
            && subject.len() <= MAX_SUBJECT_CHARS
            && subject.bytes().all(|b| (b' '..=b'~').contains(&b))
            && !subject.starts_with(' ')
    }

    #[test]
    fn subjects_lose_newlines_and_control_characters() {
        assert_eq!(subject("FAILED:\nshop\r\n  #4\t"), "FAILED: shop #4");
        assert_eq!(subject("  leading\u{7}  "), "leading");
    }

    #[test]
    fn long_subjects_are_cut_to_99_characters_with_three_dots() {
        let long = subject(&format!("FAILED: {}", "x".repeat(200)));
        assert_eq!(long.len(), 99);
        assert!(long.ends_with("..."), "{long}");
        assert!(takes(&long));

        let exactly = "y".repeat(99);
        assert_eq!(subject(&exactly), exactly);
        let one_more = subject(&"y".repeat(100));
        assert_eq!(one_more.len(), 99);
        assert!(one_more.ends_with("y..."));
        // No space before the mark.
        let words = subject(&format!("{} tail", "a".repeat(95)));
        assert_eq!(words, format!("{}...", "a".repeat(95)));
    }

    #[test]
    fn non_ascii_text_is_transliterated_or_replaced() {
        assert_eq!(
            subject("FAILED: shop on feature/crème-brûlée (Straße, Œuvre, Łódź)"),
            "FAILED: shop on feature/creme-brulee (Strasse, OEuvre, Lodz)"
        );
        assert_eq!(
            subject("it’s “done” – almost…"),
            "it's \"done\" - almost..."
        );
        assert_eq!(subject("build ✅ 构建 🚀"), "build ? ?? ?");
        assert_eq!(subject("no\u{a0}break\u{2003}spaces"), "no break spaces");
        assert_eq!(subject("e\u{301}te\u{301}"), "ete", "decomposed accents");
    }

    #[test]
    fn every_subject_made_is_one_sns_takes() {
        for text in [
            "é".repeat(150),
            "🚀".repeat(120),
            format!("FAILED: {}", "ß".repeat(60)),
            "\n\n\n".into(),
            "x…".repeat(40),
            "e\u{301}te\u{301}".into(),
        ] {
            let made = subject(&text);
            assert!(made.is_empty() || takes(&made), "{text:?} gave {made:?}");
        }
        assert_eq!(subject(&"é".repeat(150)).len(), 99);
    }
}
