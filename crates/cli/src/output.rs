//! How results reach the person: JSON with `--json`, else text, and the
//! small formats every command shares (sizes, who a peer is).

use anyhow::Result;
use peershare_node::views::ConnectionPath;
use serde::Serialize;

use crate::args::Cli;

/// Prints `value` as JSON with `--json`, else the text for people.
pub fn print_json_or(
    cli: &Cli,
    value: &impl Serialize,
    text: impl FnOnce() -> String,
) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

/// A peer for people: "alice (12D3KooW…)" when the index names it, else the peer id.
pub fn who(user: Option<&str>, peer: &str) -> String {
    match user {
        Some(user) => format!("{user} ({peer})"),
        None => peer.to_string(),
    }
}

/// Bytes in binary units for people.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A number of seconds for people ("2 minutes", "1 hour").
pub fn human_duration(secs: u64) -> String {
    indicatif::HumanDuration(std::time::Duration::from_secs(secs)).to_string()
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
pub fn utc_time(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// How a connection reaches its peer, in a word.
pub fn connection_path(path: ConnectionPath) -> &'static str {
    match path {
        ConnectionPath::Direct => "direct",
        ConnectionPath::HolePunched => "hole-punched",
        ConnectionPath::Relayed => "relayed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(150), "3 minutes");
        assert_eq!(human_duration(7200), "2 hours");
    }
}
