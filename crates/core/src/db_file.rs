//! Checks on a SQLite database file before it is opened, so a database that
//! was truncated or overwritten is never silently replaced by an empty one
//! (SQLite happily treats a zero-byte file as a new, empty database).

use std::io::Read;
use std::path::Path;

/// The first 16 bytes of every SQLite 3 database.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// `Ok` when `path` does not exist yet (a new database will be created) or
/// starts like a SQLite database; otherwise what is wrong and what to do,
/// e.g. "it exists but is empty (0 bytes) …". `start_over` ends the advice
/// ("delete it to start …"): "a new empty index".
pub fn check(path: &Path, start_over: &str) -> Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("it cannot be read ({e})")),
    };
    if !meta.is_file() {
        return Err("it is not a file".into());
    }
    let advice = format!("restore it from a backup, or delete it to start {start_over}");
    if meta.len() == 0 {
        return Err(format!("it exists but is empty (0 bytes): {advice}"));
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("it cannot be read ({e})"))?;
    let mut head = [0u8; 16];
    if file.read_exact(&mut head).is_err() || &head != SQLITE_MAGIC {
        return Err(format!(
            "it is not a SQLite database (damaged or overwritten, {} bytes): {advice}",
            meta.len()
        ));
    }
    Ok(())
}

/// Whether a SQLite error message means the file is damaged.
pub fn is_corruption(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("malformed")
        || m.contains("not a database")
        || m.contains("(code: 11)")
        || m.contains("(code: 26)")
}

/// The advice for a damaged database.
pub fn damaged(start_over: &str, detail: &str) -> String {
    format!(
        "it is damaged ({detail}): restore it from a backup, or move it away to start {start_over}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_fine_and_empty_or_garbage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        assert!(check(&db, "over").is_ok());
        std::fs::write(&db, b"").unwrap();
        assert!(check(&db, "over").unwrap_err().contains("empty (0 bytes)"));
        std::fs::write(&db, b"garbage").unwrap();
        assert!(check(&db, "over").unwrap_err().contains("not a SQLite"));
        std::fs::write(&db, [b"SQLite format 3\0".as_slice(), &[0; 100]].concat()).unwrap();
        assert!(check(&db, "over").is_ok());
    }
}
