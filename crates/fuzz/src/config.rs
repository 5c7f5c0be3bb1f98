//! The config-file target: the index's TOML config and the daemon's
//! `config.toml`, parsed exactly as the binary parses them.
//!
//! The daemon's settings type (`UpArgs`) lives in the binary crate, which a
//! library cannot depend on, so the binary's own `args.rs` is compiled in
//! here unchanged: the fuzzer tests the real type, its serde attributes and
//! its `deny_unknown_fields`, never a copy that could drift. Nothing here
//! reads a file or the environment.

use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, Source};
use peershare_index::IndexConfig;

/// The binary's command-line and config-file types, compiled from its source.
#[allow(dead_code, clippy::all)]
#[path = "../../cli/src/args.rs"]
mod cli_args;

use cli_args::UpArgs;

/// Config files: `data` as the index's config (`peershare index --config`,
/// `toml::from_str`) and as the daemon's `config.toml` (figment's TOML
/// provider layered under default flags, as `peershare up` does). An index
/// config that parses must survive TOML encode → decode unchanged.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(index) = toml::from_str::<IndexConfig>(text) {
        let written = toml::to_string(&index).expect("a parsed index config writes as TOML");
        let again: IndexConfig = toml::from_str(&written)
            .unwrap_or_else(|e| panic!("{written:?} does not parse back: {e}"));
        assert_eq!(again, index, "index config changed through {written:?}");
    }
    let figment = Figment::from(Toml::string(text)).merge(Serialized::defaults(UpArgs::default()));
    if let Ok(settings) = figment.extract::<UpArgs>() {
        // The binary asks where each path came from, to resolve it against the file's folder.
        for key in ["share", "downloads", "index_ca"] {
            let _ = figment
                .find_metadata(key)
                .is_some_and(|m| matches!(m.source, Some(Source::File(_))));
        }
        assert!(
            settings.config.is_none(),
            "`config` is not a config-file key"
        );
    }
}
