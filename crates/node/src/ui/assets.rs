//! The web UI's files, embedded in the binary at build time from
//! `src/ui/assets` (see the crate's build.rs), so `cargo run` serves them
//! with no build step and no network. Never reads them from disk at run time.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its path under `/assets/` (`index.html` is the page itself).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

const TABLE: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The embedded file at `path`, if there is one.
pub fn asset(path: &str) -> Option<Asset> {
    TABLE
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|&(path, content_type, bytes)| Asset {
            path,
            content_type,
            bytes,
        })
}

/// A short fingerprint of every embedded file, for cache validation.
pub fn fingerprint() -> String {
    let mut hasher = blake3::Hasher::new();
    for (path, _, bytes) in TABLE {
        hasher.update(path.as_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_script_are_embedded() {
        let page = asset("index.html").expect("index.html embedded");
        assert!(page.content_type.starts_with("text/html"));
        assert!(asset("app.js").is_some_and(|a| a.content_type.starts_with("text/javascript")));
        assert!(asset("../Cargo.toml").is_none());
    }
}
