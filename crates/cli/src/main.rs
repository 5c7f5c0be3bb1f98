//! `peershare`: the one binary. `up` runs the peer daemon in the
//! foreground; every other command is a client of that daemon's local API.
//!
//! This crate parses arguments, prints results and draws progress; the
//! work itself lives in `peershare-node`. It must never hold daemon state
//! of its own: two commands in a row only share what the daemon keeps.

mod args;
mod client;
mod commands;
mod index;
mod messages;
mod output;
mod process;
mod shell;
mod transfers;
mod up;
mod web_ui;

use clap::Parser;

/// mimalloc rather than the C library's malloc: the index holds millions of
/// small allocations, among which glibc's malloc searched its free lists
/// for most of a broad search's time (bench/README.md: searches at 1M
/// listings ran 1.6–3.8× faster on the raw structure).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // Few malloc arenas for what still uses the C allocator (SQLite): many
    // threads otherwise keep hundreds of MiB.
    peershare_index::memory::limit_malloc_arenas();
    let cli = args::Cli::parse();
    peershare_node::install_tls_provider();
    let result = match cli.command {
        args::Command::Up(ref up_args) => up::run(&cli, up_args).await,
        args::Command::Index(ref index_args) => index::run(&cli, index_args).await,
        args::Command::Ui(ref ui_args) => web_ui::run(&cli, ui_args).await,
        args::Command::Shell => shell::run(&cli).await,
        args::Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = args::Cli::command();
            clap_complete::generate(shell, &mut command, "peershare", &mut std::io::stdout());
            Ok(())
        }
        ref command => commands::run(&cli, command).await,
    };
    if let Err(e) = result {
        if cli.json {
            let out = serde_json::json!({ "error": format!("{e:#}") });
            println!("{out}");
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}
