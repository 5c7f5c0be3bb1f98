//! `peershare shell`: the interactive console over the daemon's local API.
//!
//! This file owns the loop (greet, read a line, turn it into an action, run
//! it, again) and the shell's lifetime: the line editor (`reader`) and the
//! notices task (`notices`) live exactly as long as [`run`]. The parts:
//! `parse` reads a typed line, `exec` runs a command under Ctrl-C, `menu` is
//! the numbered menu, `completion` the editor's Tab completion.
//!
//! It must never hold daemon state of its own (each command asks the daemon
//! afresh, so a restarted daemon is simply found again), and never end the
//! process because a command failed.

mod completion;
mod exec;
mod menu;
mod notices;
mod parse;
mod reader;

use anyhow::{Context, Result};

use self::completion::Mode;
use self::notices::{FollowedChat, Printer};
use self::parse::{Action, Globals};
use self::reader::{Input, LineReader};
use crate::args::Cli;
use crate::client;

/// The prompt.
const PROMPT: &str = "peershare> ";
/// The history file, in the data folder.
const HISTORY_FILE: &str = "shell-history";
/// Printed after clap's help for the whole program.
const SHELL_HELP: &str = "\
In the shell, type a command without `peershare` in front; also:
  menu, ?       the numbered menu (then a number picks an item)
  quit, exit    leave (Ctrl-D too)
Ctrl-C stops a running command and leaves you at the prompt.";

/// What the loop does after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// Leave the shell.
    Quit,
}

/// What every part of the shell shares while it runs.
pub struct Shell {
    globals: Globals,
    reader: LineReader,
    followed: FollowedChat,
}

/// Runs the shell until the person leaves.
pub async fn run(cli: &Cli) -> Result<()> {
    // Ctrl-C belongs to the shell from now on: without a handler, one pressed
    // between two commands would end the process.
    #[cfg(unix)]
    let _interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot take over Ctrl-C for the shell")?;
    let history = client::data_dir(cli).join(HISTORY_FILE);
    let (reader, line_printer) = LineReader::open(history)?;
    let globals = Globals::of(cli);
    let followed = FollowedChat::default();
    let _notices = notices::start(
        globals.clone(),
        Printer::new(line_printer),
        followed.clone(),
    );
    let shell = Shell {
        globals,
        reader,
        followed,
    };
    println!("peershare shell: share folders and download files directly from peers.");
    shell.print_menu();
    loop {
        let flow = match shell.reader.read(PROMPT, Mode::Command).await? {
            Input::Line(line) => shell.run_line(&line).await,
            // Ctrl-C at the prompt drops the line being typed.
            Input::Interrupted => Flow::Continue,
            Input::Eof => Flow::Quit,
        };
        if flow == Flow::Quit {
            break;
        }
    }
    println!("bye");
    Ok(())
}

impl Shell {
    /// Does what one typed line says.
    async fn run_line(&self, line: &str) -> Flow {
        match parse::parse(line, &self.globals) {
            Action::Nothing => {}
            Action::Quit => return Flow::Quit,
            Action::Menu => self.print_menu(),
            Action::Pick(n) => return self.pick(n).await,
            Action::Clap { error, top } => {
                let _ = error.print();
                if top {
                    println!("\n{SHELL_HELP}");
                }
            }
            Action::Refused(why) => exec::report_error(
                &self.globals.cli(crate::args::Command::Status),
                &anyhow::anyhow!(why),
            ),
            Action::Run(cli) => self.run_command(&cli).await,
        }
        Flow::Continue
    }
}
