//! Branch patterns for routing pushes: `main`, `release/*`, `feature/**`, `hotfix-?`.
//!
//! `*` matches within one path segment (not `/`), `**` matches across segments, `?` matches one
//! character other than `/`; everything else is literal. This is the subset of git's own
//! pattern language that people write for branch filters, and it cannot be surprised by a
//! branch name holding regex metacharacters.

use std::fmt;

/// A validated branch pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyInSegment,
    AnyAcrossSegments,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// The pattern is empty or only whitespace.
    #[error("the pattern is empty")]
    Empty,
    /// Three or more `*` in a row: probably a typo, and meaningless.
    #[error("`***` is not a pattern; use `*` within a segment or `**` across segments")]
    TooManyStars,
    /// A character git does not allow in a ref name, so the pattern could never match.
    #[error("{0:?} cannot appear in a branch name")]
    ForbiddenCharacter(char),
}

impl Glob {
    /// Parses `pattern`.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.trim().is_empty() {
            return Err(GlobError::Empty);
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if chars.peek() == Some(&'*') {
                        chars.next();
                        if chars.peek() == Some(&'*') {
                            return Err(GlobError::TooManyStars);
                        }
                        tokens.push(Token::AnyAcrossSegments);
                    } else {
                        tokens.push(Token::AnyInSegment);
                    }
                }
                '?' => tokens.push(Token::AnyChar),
                ' ' | '~' | '^' | ':' | '\\' | '[' => return Err(GlobError::ForbiddenCharacter(c)),
                c if c.is_control() => return Err(GlobError::ForbiddenCharacter(c)),
                c => tokens.push(Token::Literal(c)),
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// Whether `name` matches the whole pattern.
    ///
    /// Dynamic programming over (token, character) pairs: linear in the product of the lengths,
    /// so no pattern can make matching blow up the way naive backtracking can.
    pub fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        // reachable[j]: the tokens consumed so far can match exactly chars[..j].
        let mut reachable = vec![false; chars.len() + 1];
        reachable[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; chars.len() + 1];
            match token {
                Token::Literal(expected) => {
                    for j in 0..chars.len() {
                        next[j + 1] = reachable[j] && chars[j] == *expected;
                    }
                }
                Token::AnyChar => {
                    for j in 0..chars.len() {
                        next[j + 1] = reachable[j] && chars[j] != '/';
                    }
                }
                Token::AnyInSegment => {
                    next[0] = reachable[0];
                    for j in 0..chars.len() {
                        next[j + 1] = reachable[j + 1] || (next[j] && chars[j] != '/');
                    }
                }
                Token::AnyAcrossSegments => {
                    next[0] = reachable[0];
                    for j in 0..chars.len() {
                        next[j + 1] = reachable[j + 1] || next[j];
                    }
                }
            }
            reachable = next;
        }
        reachable[chars.len()]
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn a_plain_name_matches_only_itself() {
        assert!(matches("main", "main"));
        assert!(!matches("main", "main2"));
        assert!(!matches("main", "mai"));
        assert!(!matches("main", "feature/main"));
    }

    #[test]
    fn a_star_stays_within_one_segment() {
        assert!(matches("release/*", "release/1.2"));
        assert!(matches("release/*", "release/"));
        assert!(!matches("release/*", "release/1.2/hotfix"));
        assert!(!matches("release/*", "release"));
        assert!(matches("*", "main"));
        assert!(!matches("*", "feature/x"));
        assert!(matches("v*-rc", "v1.0-rc"));
    }

    #[test]
    fn a_double_star_crosses_segments() {
        assert!(matches("feature/**", "feature/a/b/c"));
        assert!(matches("**", "anything/at/all"));
        assert!(matches("**/hotfix", "team/x/hotfix"));
        assert!(!matches("feature/**", "bugfix/a"));
    }

    #[test]
    fn a_question_mark_is_one_character_but_not_a_slash() {
        assert!(matches("hotfix-?", "hotfix-1"));
        assert!(!matches("hotfix-?", "hotfix-12"));
        assert!(!matches("a?b", "a/b"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        assert!(matches("fix.(1)+", "fix.(1)+"));
        assert!(!matches("fix.1", "fixx1"));
    }

    #[test]
    fn patterns_that_could_never_match_are_refused() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("  "), Err(GlobError::Empty));
        assert_eq!(Glob::new("a***"), Err(GlobError::TooManyStars));
        assert_eq!(Glob::new("a b"), Err(GlobError::ForbiddenCharacter(' ')));
        assert_eq!(Glob::new("a[0-9]"), Err(GlobError::ForbiddenCharacter('[')));
    }

    #[test]
    fn pathological_patterns_are_answered() {
        let pattern = "*a*a*a*a*a*a*a*a*a*a*a*b";
        // Naive backtracking would take exponential time here; the table is 24 x 2000 cells.
        let name = "a".repeat(2000);
        assert!(!matches(pattern, &name));
    }
}
