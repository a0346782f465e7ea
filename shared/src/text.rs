//! Small pieces of wording the functions share: commit ids, durations, clipped text.

/// Whether `id` is a full git commit id (40 hexadecimal characters).
pub fn is_commit_id(id: &str) -> bool {
    id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first seven characters of a commit id, as git shows it.
pub fn short_commit(commit_id: &str) -> &str {
    commit_id.get(..7).unwrap_or(commit_id)
}

/// `45 s`, `3 min 12 s`, `1 h 4 min`.
pub fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// `text` cut to at most `max_chars` characters, ending with an ellipsis when cut; always on a
/// character boundary.
pub fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_are_forty_hexadecimal_characters() {
        assert!(is_commit_id("0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e"));
        assert!(!is_commit_id("0ccf1ae"));
        assert!(!is_commit_id("HEAD; rm -rf /0ccf1ae1bf4c7d610115754eef7"));
        assert_eq!(
            short_commit("0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e"),
            "0ccf1ae"
        );
        assert_eq!(short_commit("abc"), "abc");
    }

    #[test]
    fn durations_read_like_a_person_says_them() {
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(192), "3 min 12 s");
        assert_eq!(human_duration(3840), "1 h 4 min");
    }

    #[test]
    fn clipping_keeps_whole_characters_and_marks_the_cut() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééééé", 3), "éé…");
        assert_eq!(clip("abcdef", 4).chars().count(), 4);
    }
}
