//! How names become search terms. Indexing and querying both go through
//! here, so the two sides always agree: folded words (lowercase, accents
//! removed, split at anything that is not a letter or a digit, and split
//! again where letters meet digits), the prefixes of those words, and the
//! lowercase three-character sequences that substring search reads.
//!
//! It never interprets its input: every character is data, so no query can
//! turn into syntax. The work is linear in the text, which is at most a
//! file name (255 bytes) or a query (256 characters).

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Shortest word prefix that is indexed: one-character words match only
/// whole words, or every name would match every letter.
pub const MIN_PREFIX_CHARS: usize = 2;
/// Longest word prefix that is indexed; a longer query word matches the
/// name words that begin with its first this many characters.
pub const MAX_PREFIX_CHARS: usize = 24;
/// Characters in one substring gram.
pub const GRAM_CHARS: usize = 3;

/// Lowercase with accents removed (compatibility decomposition, combining
/// marks dropped): `Ünïcodé` → `unicode`.
pub fn fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The folded runs of letters and digits in `text`, in order.
pub fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The words a name is found by: its [`words`], and where a word mixes
/// letters and digits, also its letter and digit parts (`aula1` is found by
/// `aula1`, `aula` and `1`).
pub fn name_words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in words(name) {
        let parts = letter_digit_parts(&word);
        out.push(word);
        if parts.len() > 1 {
            out.extend(parts);
        }
    }
    out
}

/// How many [`name_words`] `name` has, without building them.
pub fn name_word_count(name: &str) -> usize {
    words(name)
        .iter()
        .map(|word| match letter_digit_edges(word) {
            0 => 1,
            edges => edges + 2,
        })
        .sum()
}

/// Places in `word` where a letter meets a digit or a digit a letter.
fn letter_digit_edges(word: &str) -> usize {
    let mut kinds = word.chars().map(char::is_numeric);
    let Some(mut last) = kinds.next() else {
        return 0;
    };
    kinds
        .filter(|&digit| std::mem::replace(&mut last, digit) != digit)
        .count()
}

/// Splits a word where letters meet digits.
fn letter_digit_parts(word: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut last_digit = None;
    for c in word.chars() {
        let digit = c.is_numeric();
        match parts.last_mut() {
            Some(part) if last_digit == Some(digit) => part.push(c),
            _ => parts.push(c.to_string()),
        }
        last_digit = Some(digit);
    }
    parts
}

/// The indexed prefixes of one folded word: from [`MIN_PREFIX_CHARS`] up to
/// [`MAX_PREFIX_CHARS`] characters (the whole word when it is no longer).
pub fn prefixes(word: &str) -> impl Iterator<Item = &str> {
    word.char_indices()
        .map(|(at, c)| at + c.len_utf8())
        .enumerate()
        .filter(|(i, _)| (MIN_PREFIX_CHARS - 1..MAX_PREFIX_CHARS).contains(i))
        .map(move |(_, end)| &word[..end])
}

/// The prefix term a query word is looked up by: the word itself, cut to
/// [`MAX_PREFIX_CHARS`] characters. `None` for words too short to have one.
pub fn prefix_term(word: &str) -> Option<&str> {
    (word.chars().count() >= MIN_PREFIX_CHARS).then(|| {
        match word.char_indices().nth(MAX_PREFIX_CHARS) {
            Some((end, _)) => &word[..end],
            None => word,
        }
    })
}

/// The lowercase [`GRAM_CHARS`]-character sequences of `text`, in order
/// (position = character offset); a shorter non-empty text is one gram.
pub fn grams(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    if chars.len() < GRAM_CHARS {
        return (!chars.is_empty())
            .then(|| chars.iter().collect())
            .into_iter()
            .collect();
    }
    chars
        .windows(GRAM_CHARS)
        .map(|w| w.iter().collect())
        .collect()
}

/// The lowercase characters of a substring query, for gram lookup.
pub fn substring_chars(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_and_split_at_letter_digit_edges() {
        assert_eq!(words("Aula 1 – Intro.MP4"), ["aula", "1", "intro", "mp4"]);
        assert_eq!(words("Ünïcodé_ﬁle"), ["unicode", "file"]);
        assert_eq!(
            name_words("aula1.mp4"),
            ["aula1", "aula", "1", "mp4", "mp", "4"]
        );
        assert!(words(" -- ** ").is_empty());
        for name in [
            "aula1.mp4",
            "a1b2 c3",
            "Ünïcodé_ﬁle 2024x",
            "",
            "--",
            "12ab34",
        ] {
            assert_eq!(name_word_count(name), name_words(name).len(), "{name}");
        }
    }

    #[test]
    fn prefixes_run_from_two_characters_to_the_cap() {
        assert_eq!(prefixes("aula").collect::<Vec<_>>(), ["au", "aul", "aula"]);
        assert_eq!(prefixes("a").count(), 0);
        let long = "x".repeat(40);
        assert_eq!(prefixes(&long).count(), MAX_PREFIX_CHARS - 1);
        assert_eq!(prefixes("日本語").collect::<Vec<_>>(), ["日本", "日本語"]);
        assert_eq!(prefix_term("a"), None);
        assert_eq!(prefix_term(&long).unwrap().len(), MAX_PREFIX_CHARS);
    }

    #[test]
    fn grams_cover_every_position_and_short_names_whole() {
        assert_eq!(grams("AbcD"), ["abc", "bcd"]);
        assert_eq!(grams("Ab"), ["ab"]);
        assert!(grams("").is_empty());
    }
}
