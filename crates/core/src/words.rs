//! Name words: how a file name is split into the words that serverless
//! search looks up, and the DHT keys for a word, a file id and a user name.
//!
//! A word is a run of letters and digits, NFKC-normalised and lowercased,
//! so "Aula_1.MP4" and "aula 1.mp4" have the same words. This module only
//! computes; it never decides who provides a key.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;

use crate::FileId;

/// Words longer than this are cut (a key is a hash, but a query must be short).
pub const MAX_WORD_CHARS: usize = 64;
/// Most words taken from one name (the rest are not announced).
pub const MAX_WORDS_PER_NAME: usize = 32;

/// The distinct words of `name` (letters and digits, lowercased), at most [`MAX_WORDS_PER_NAME`].
pub fn name_words(name: &str) -> BTreeSet<String> {
    let normalised: String = name.nfkc().collect::<String>().to_lowercase();
    normalised
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(MAX_WORD_CHARS).collect::<String>())
        .take(MAX_WORDS_PER_NAME)
        .collect()
}

/// True when every word of `query_words` is a word of `name`.
pub fn name_has_words(name: &str, query_words: &BTreeSet<String>) -> bool {
    let words = name_words(name);
    query_words.iter().all(|w| words.contains(w))
}

/// The DHT key under which holders of a file with `word` in its name are announced.
pub fn word_key(word: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("peershare 2026 name word key");
    hasher.update(word.as_bytes());
    *hasher.finalize().as_bytes()
}

/// The DHT key under which a peer logged in to an index as `user` announces
/// itself, so people can still browse it by name while the index is down.
/// Nothing proves the claim: any peer can announce any name.
pub fn user_key(user: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("peershare 2026 user name key");
    hasher.update(user.as_bytes());
    *hasher.finalize().as_bytes()
}

/// The DHT key under which holders of the file `id` are announced.
pub fn file_key(id: &FileId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("peershare 2026 file id key");
    hasher.update(id.as_bytes());
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn names_split_into_lowercase_words() {
        assert_eq!(name_words("Aula_1.MP4"), set(&["aula", "1", "mp4"]));
        assert_eq!(
            name_words("videos/aula 1.mp4"),
            set(&["videos", "aula", "1", "mp4"])
        );
        assert_eq!(
            name_words("Ｆｕｌｌ—width ÉTÉ"),
            set(&["full", "width", "été"])
        );
        assert!(name_words("...---   ").is_empty());
        assert!(name_words(&"a ".repeat(1000)).len() <= MAX_WORDS_PER_NAME);
    }

    #[test]
    fn word_and_file_keys_differ_and_are_stable() {
        assert_eq!(word_key("aula"), word_key("aula"));
        assert_ne!(word_key("aula"), word_key("aulas"));
        let id = FileId::from(blake3::hash(b"x"));
        assert_ne!(file_key(&id), word_key(&id.to_hex()));
        assert_ne!(user_key("aula"), word_key("aula"), "a user is not a word");
        assert_ne!(
            user_key("Alice"),
            user_key("alice"),
            "index names are case-sensitive"
        );
        assert!(name_has_words("Aula 1.mp4", &set(&["aula", "mp4"])));
        assert!(!name_has_words("Aula 1.mp4", &set(&["aula", "2"])));
    }
}
