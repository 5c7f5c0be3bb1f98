//! Starts the person's desktop opener (a file manager for a folder, the
//! browser for a link) without waiting for it. It never blocks and leaves
//! no zombie behind: tokio reaps the child when it exits.

use std::ffi::OsStr;

/// Opens `target` with `program`, else the desktop's opener; false when none could start.
pub fn open(target: &OsStr, program: Option<&str>) -> bool {
    let default = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    tokio::process::Command::new(program.unwrap_or(default))
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
