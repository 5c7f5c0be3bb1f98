//! Rules for untrusted text and numbers that arrive in requests: user names,
//! passwords, file names, file ids, extensions and page sizes.
//!
//! Each check either returns the value to store or an [`ApiError`] saying
//! what is wrong and what to send instead. Nothing here touches the store.

use std::str::FromStr;

use libp2p_identity::PeerId;
use peershare_core::FileId;

use crate::error::ApiError;

/// Longest user name, in characters.
pub const MAX_USER_NAME_CHARS: usize = 64;
/// Longest password, in bytes (argon2 work is bounded by it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest shared file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 1024;
/// Longest extension kept for filtering, in characters.
pub const MAX_EXT_CHARS: usize = 16;

/// Checks a user name and returns the form it is stored and compared in:
/// its NFKC normalisation, 1–64 characters, no control characters (NUL
/// included), no spaces at either end, every character outside ASCII one
/// that UTS #39 allows in identifiers (which leaves out invisible and
/// bidirectional-control characters such as zero-width spaces and
/// right-to-left overrides, and symbols), and all of it in one script
/// (`alice` with a Cyrillic `с` is refused). Look-alikes of other scripts
/// (a wholly Cyrillic `аlісе`) are caught by [`user_name_skeleton`].
pub fn user_name(name: &str) -> Result<String, ApiError> {
    use unicode_security::{GeneralSecurityProfile, MixedScript};

    let name = user_name_key(name);
    let count = name.chars().count();
    if count == 0 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "the user name is empty; choose a name of 1 to 64 characters",
        ));
    }
    if count > MAX_USER_NAME_CHARS {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "the user name has {count} characters; choose one of at most {MAX_USER_NAME_CHARS}"
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "the user name contains a control character (such as NUL or a newline); use printable characters only",
        ));
    }
    if name.trim() != name {
        return Err(ApiError::bad_request(
            "invalid_name",
            "the user name starts or ends with a space; remove it",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !c.is_ascii() && !c.identifier_allowed())
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "the user name contains U+{:04X}, an invisible, direction-changing or symbol character that is not allowed in names; use letters, digits, spaces and ASCII punctuation",
                u32::from(c)
            ),
        ));
    }
    if !name.as_str().is_single_script() {
        return Err(ApiError::bad_request(
            "invalid_name",
            "the user name mixes letters of several scripts (such as Latin and Cyrillic), which lets it look like another name; write it in one script",
        ));
    }
    Ok(name)
}

/// The form a user name is looked up in: its NFKC normalisation (no other
/// checks: a name that [`user_name`] refuses is simply never found).
pub fn user_name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;

    name.nfkc().collect()
}

/// The UTS #39 confusable skeleton of a (normalised) user name: two names
/// with the same skeleton look alike (`alice` and a Cyrillic `аlісе`), so
/// only one of them may exist.
pub fn user_name_skeleton(name: &str) -> String {
    unicode_security::skeleton(name).collect()
}

/// Checks a password: not empty, at most 1024 bytes.
pub fn password(password: &str) -> Result<&str, ApiError> {
    if password.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_password",
            "the password is empty; choose a password",
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(
            "invalid_password",
            format!("the password is longer than {MAX_PASSWORD_BYTES} bytes; choose a shorter one"),
        ));
    }
    Ok(password)
}

/// Checks a shared file's name: 1–1024 bytes, no control characters.
pub fn file_name(name: &str) -> Result<&str, ApiError> {
    if name.is_empty() || name.len() > MAX_FILE_NAME_BYTES {
        return Err(ApiError::bad_request(
            "invalid_file",
            format!(
                "a file name must have 1 to {MAX_FILE_NAME_BYTES} bytes; got {} bytes",
                name.len()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_file",
            format!("the file name {:?} contains a control character (such as NUL); leave such files out or rename them", truncated(name)),
        ));
    }
    Ok(name)
}

/// Parses a file id (64 hex digits) into its canonical lowercase form.
pub fn file_id(id: &str) -> Result<String, ApiError> {
    id.parse::<FileId>()
        .map(|id| id.to_hex())
        .map_err(|e| ApiError::bad_request("invalid_file_id", e.to_string()))
}

/// Checks a file size fits the store (at most 2^63 - 1 bytes).
pub fn file_size(size: u64) -> Result<i64, ApiError> {
    i64::try_from(size).map_err(|_| {
        ApiError::bad_request(
            "invalid_file",
            format!("a file size of {size} bytes is too large to be real"),
        )
    })
}

/// The lowercase extension of a file name without the dot ("" if none).
pub fn extension_of(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && !ext.is_empty()
                && ext.chars().count() <= MAX_EXT_CHARS
                && ext.chars().all(char::is_alphanumeric) =>
        {
            ext.to_lowercase()
        }
        _ => String::new(),
    }
}

/// Normalises an extension filter: strips one leading dot and lowercases.
pub fn extension_filter(ext: &str) -> Result<String, ApiError> {
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    if ext.is_empty()
        || ext.chars().count() > MAX_EXT_CHARS
        || !ext.chars().all(char::is_alphanumeric)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("ext must be 1 to {MAX_EXT_CHARS} letters or digits, like mp4 or .mp4"),
        ));
    }
    Ok(ext.to_lowercase())
}

/// Applies a default and an upper bound to a page size.
pub fn limit(limit: Option<u32>, default: u32, max: u32) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default.into()),
        Some(0) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {max}"),
        )),
        Some(n) if n > max => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {max}; page with offset for more"),
        )),
        Some(n) => Ok(n.into()),
    }
}

/// At most 80 characters of `s`, for error messages.
pub fn truncated(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Parses a peer id from the API.
pub fn peer_id(text: &str) -> Result<PeerId, ApiError> {
    PeerId::from_str(text).map_err(|_| {
        ApiError::bad_request(
            "invalid_peer_id",
            format!(
                "{:?} is not a libp2p peer id (like 12D3KooW…)",
                truncated(text)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert_eq!(user_name("alice").unwrap(), "alice");
        assert!(user_name("bob smith-jones_2.0").is_ok());
        assert!(user_name("Ελένη").is_ok());
        assert!(user_name("山田たろう").is_ok());
        // Two Unicode forms of alicé are one name.
        assert_eq!(user_name("alic\u{65}\u{301}").unwrap(), "alic\u{e9}");
        assert_eq!(user_name("ａｌｉｃｅ").unwrap(), "alice");
        assert!(user_name("alice\u{200b}").is_err());
        assert!(user_name("\u{202e}ecila").is_err());
        assert!(
            user_name("ali\u{441}e").is_err(),
            "Cyrillic es among Latin letters"
        );
        assert_eq!(
            user_name_skeleton(&user_name("\u{430}\u{4cf}\u{456}\u{441}\u{435}").unwrap()),
            user_name_skeleton("alice")
        );
        assert!(user_name(&"é".repeat(64)).is_ok());
        assert!(user_name("").is_err());
        assert!(user_name(&"a".repeat(65)).is_err());
        assert!(user_name("a\0b").is_err());
        assert!(user_name("a\nb").is_err());
        assert!(user_name("a\u{7f}").is_err());
        assert!(user_name(" alice").is_err());
    }

    #[test]
    fn extensions() {
        assert_eq!(extension_of("aula 1.MP4"), "mp4");
        assert_eq!(extension_of(".bashrc"), "");
        assert_eq!(extension_of("noext"), "");
        assert_eq!(extension_of("a.tar.gz"), "gz");
        assert_eq!(extension_of("a.b c"), "");
        assert_eq!(extension_filter(".Mp4").unwrap(), "mp4");
        assert!(extension_filter("").is_err());
        assert!(extension_filter("m%").is_err());
    }
}
