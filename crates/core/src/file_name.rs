//! Turning a name from the network into a file name that is safe to create.
//!
//! A name offered by a peer is never a path. [`sanitize`] keeps only the last
//! real component of whatever was sent (either separator), removes what a
//! file system would misread (NUL, control characters, trailing dots and
//! spaces, Windows device names), normalises Unicode to NFC and limits the
//! length to 255 bytes, keeping the extension. [`unique_path`] then finds a
//! name in the target folder that does not exist yet, so nothing is ever
//! overwritten. The result always names a direct child of the folder.

use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

/// The longest file name most file systems accept, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The name used when nothing usable is left of the offered one.
pub const FALLBACK_NAME: &str = "download";

const WINDOWS_DEVICE_NAMES: &[&str] = &[
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CONIN$",
    "CONOUT$",
    "COM0",
    "COM1",
    "COM2",
    "COM3",
    "COM4",
    "COM5",
    "COM6",
    "COM7",
    "COM8",
    "COM9",
    "COM\u{b9}",
    "COM\u{b2}",
    "COM\u{b3}",
    "LPT0",
    "LPT1",
    "LPT2",
    "LPT3",
    "LPT4",
    "LPT5",
    "LPT6",
    "LPT7",
    "LPT8",
    "LPT9",
    "LPT\u{b9}",
    "LPT\u{b2}",
    "LPT\u{b3}",
];

/// A file name safe to create inside a download folder, made from an untrusted name.
pub fn sanitize(untrusted: &str) -> String {
    let last = untrusted
        .split(['/', '\\'])
        .rfind(|c| !c.is_empty() && *c != "." && *c != "..")
        .unwrap_or("");
    // Characters are dropped before normalising: dropping a NUL between a
    // letter and its accent after NFC would leave a decomposed name, which
    // differs from its NFC twin on disk (found by fuzzing, fuzz/regressions/file_name).
    let kept: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .collect();
    let cleaned: String = kept.nfc().collect();
    let trimmed = cleaned.trim_end_matches(['.', ' ']).trim_start();
    let mut name = if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
        FALLBACK_NAME.to_string()
    } else {
        trimmed.to_string()
    };
    if is_device_name(&name) {
        name.insert(0, '_');
    }
    truncate_keeping_extension(&name, MAX_NAME_BYTES)
}

/// True for names Windows treats as devices, with or without an extension.
fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    WINDOWS_DEVICE_NAMES
        .iter()
        .any(|d| d.eq_ignore_ascii_case(stem))
}

/// Cuts `name` to at most `max` bytes on a character boundary, keeping a short extension.
fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => &name[dot..],
        _ => "",
    };
    let mut stem_end = max - ext.len();
    while !name.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    // The cut may land after a dot or a space, which the rules above strip
    // (Windows drops them, so the name on disk would differ; found by fuzzing).
    let stem = name[..stem_end].trim_end_matches(['.', ' ']);
    if stem.is_empty() && ext.is_empty() {
        return FALLBACK_NAME.to_string();
    }
    format!("{stem}{ext}")
}

/// A path in `dir` for `name` that does not exist yet: `name`, `name (1).ext`, `name (2).ext`, …
pub fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    (1u32..)
        .map(|n| {
            let suffix = format!(" ({n}){ext}");
            let mut stem_end = stem.len().min(MAX_NAME_BYTES.saturating_sub(suffix.len()));
            while !stem.is_char_boundary(stem_end) {
                stem_end -= 1;
            }
            dir.join(format!("{}{suffix}", &stem[..stem_end]))
        })
        .find(|p| !p.exists())
        .expect("some number is free")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn climbing_names_stay_inside() {
        assert_eq!(sanitize("../../evil"), "evil");
        assert_eq!(sanitize("..\\..\\evil.exe"), "evil.exe");
        assert_eq!(sanitize("/etc/passwd"), "passwd");
        assert_eq!(sanitize("C:\\Windows\\system32"), "system32");
        assert_eq!(sanitize(".."), FALLBACK_NAME);
        assert_eq!(sanitize("a/.."), "a");
        assert_eq!(sanitize(""), FALLBACK_NAME);
        assert_eq!(sanitize("a..b"), "a..b");
    }

    #[test]
    fn control_characters_and_reserved_names_are_defused() {
        assert_eq!(sanitize("a\0b\n\tc"), "abc");
        assert_eq!(sanitize("CON"), "_CON");
        assert_eq!(sanitize("nul.txt"), "_nul.txt");
        assert_eq!(sanitize("com1 .log"), "_com1 .log");
        assert_eq!(sanitize("LPT0.txt"), "_LPT0.txt");
        assert_eq!(sanitize("conout$"), "_conout$");
        assert_eq!(sanitize("COM\u{b2}.dat"), "_COM\u{b2}.dat");
        assert_eq!(sanitize("notes. . "), "notes");
        assert_eq!(sanitize("what?.txt"), "what.txt");
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.mp4", "é".repeat(300));
        let s = sanitize(&long);
        assert!(s.len() <= MAX_NAME_BYTES);
        assert!(s.ends_with(".mp4"));
    }

    #[test]
    fn unicode_is_normalised() {
        assert_eq!(sanitize("e\u{301}.txt"), "\u{e9}.txt");
    }

    #[test]
    fn unique_path_never_reuses_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = unique_path(dir.path(), "a.txt");
        assert_eq!(first, dir.path().join("a.txt"));
        std::fs::write(&first, b"x").unwrap();
        let second = unique_path(dir.path(), "a.txt");
        assert_eq!(second, dir.path().join("a (1).txt"));
        std::fs::write(&second, b"x").unwrap();
        assert_eq!(
            unique_path(dir.path(), "a.txt"),
            dir.path().join("a (2).txt")
        );
        assert_eq!(unique_path(dir.path(), "noext"), dir.path().join("noext"));
    }

    #[test]
    fn a_dropped_character_does_not_leave_a_decomposed_name() {
        assert_eq!(sanitize("a\0\u{301}.txt"), "\u{e1}.txt");
        assert_eq!(sanitize("e\u{7}\u{301}"), "\u{e9}");
        let name = sanitize("a\0\0\u{301}?x");
        assert_eq!(sanitize(&name), name);
    }

    #[test]
    fn a_cut_at_the_length_limit_leaves_no_trailing_dot_or_space() {
        let long = format!("{}. . .{}", "a".repeat(250), "b".repeat(20));
        assert_eq!(sanitize(&long), "a".repeat(250));
        // Only dots before the extension: the stem goes, the extension stays.
        let dots = format!("{}x", ".".repeat(300));
        assert_eq!(sanitize(&dots), ".x");
        let spaces = format!("a{}b", " ".repeat(300));
        assert_eq!(sanitize(&spaces), "a");
        let with_ext = format!("{} .mp4", "a".repeat(250) + " ");
        assert_eq!(sanitize(&with_ext), format!("{}.mp4", "a".repeat(250)));
    }

    #[test]
    fn unique_path_numbers_names_at_the_length_limit() {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{}.txt", "a".repeat(251));
        std::fs::write(dir.path().join(&name), b"x").unwrap();
        let next = unique_path(dir.path(), &name);
        let next_name = next.file_name().unwrap().to_str().unwrap();
        assert!(next_name.len() <= MAX_NAME_BYTES);
        assert!(next_name.ends_with(" (1).txt"), "{next_name}");
    }

    proptest! {
        #[test]
        fn any_name_is_one_safe_component(name in any::<String>()) {
            let s = sanitize(&name);
            prop_assert!(!s.is_empty());
            prop_assert!(s.len() <= MAX_NAME_BYTES);
            prop_assert!(!s.contains(['/', '\\', '\0']));
            prop_assert!(s != "." && s != "..");
            prop_assert!(!s.chars().any(char::is_control));
            let joined = Path::new("/downloads").join(&s);
            prop_assert_eq!(joined.parent(), Some(Path::new("/downloads")));
        }
    }
}
