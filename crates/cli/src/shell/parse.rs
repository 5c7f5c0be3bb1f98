//! What a typed line means: one of the shell's own words (`menu`, a menu
//! number, `quit`), or a peershare command parsed by clap exactly as the
//! binary parses its arguments, with the shell's own `--api`, `--data-dir`
//! and `--json` filled in where the line gives none.
//!
//! It only parses: it must never run anything, print, or reach the daemon.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};

/// The shell's global options, inherited by every command it runs.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `--api`.
    pub api: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Globals {
    /// The global options `peershare shell` was started with.
    pub fn of(cli: &Cli) -> Self {
        Self {
            api: cli.api.clone(),
            data_dir: cli.data_dir.clone(),
            json: cli.json,
        }
    }

    /// A command line for `command` with these options.
    pub fn cli(&self, command: Command) -> Cli {
        Cli {
            api: self.api.clone(),
            data_dir: self.data_dir.clone(),
            json: self.json,
            command,
        }
    }
}

/// What to do with a typed line.
#[derive(Debug)]
pub enum Action {
    /// An empty line.
    Nothing,
    /// `quit`, `exit`.
    Quit,
    /// `menu`, `?`.
    Menu,
    /// A menu number.
    Pick(usize),
    /// Help, a version, or a parse error, for clap to print; `top` is help for the whole program.
    Clap {
        /// What clap has to say.
        error: clap::Error,
        /// The line asked for the help of the whole program (`help`, `--help`).
        top: bool,
    },
    /// A line the shell will not run, and why.
    Refused(String),
    /// A command to run.
    Run(Box<Cli>),
}

/// Reads one typed line; the shell's `globals` fill what the line leaves out.
pub fn parse(line: &str, globals: &Globals) -> Action {
    let Some(mut words) = shlex::split(line) else {
        return Action::Refused(
            "a quote is not closed: close it, or put a \\ before a quote meant as text".into(),
        );
    };
    if words.first().is_some_and(|w| w == "peershare") {
        words.remove(0);
    }
    match words.as_slice() {
        [] => return Action::Nothing,
        [w] if w == "quit" || w == "exit" => return Action::Quit,
        [w] if w == "menu" || w == "?" => return Action::Menu,
        [w] if w.chars().all(|c| c.is_ascii_digit()) => {
            return Action::Pick(w.parse().unwrap_or(usize::MAX))
        }
        _ => {}
    }
    let top = matches!(words.as_slice(), [w] if w == "help" || w == "--help" || w == "-h");
    let argv = std::iter::once("peershare".to_string()).chain(words);
    let matches = match Cli::command().try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(error) => return Action::Clap { error, top },
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return Action::Clap { error, top },
    };
    // Given on the line wins; otherwise the shell's (an environment variable counts as not given).
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    if !given("api") {
        cli.api = globals.api.clone();
    }
    if !given("data_dir") {
        cli.data_dir = globals.data_dir.clone();
    }
    cli.json |= globals.json;
    match cli.command {
        Command::Up(_) => Action::Refused(
            "`up` runs the daemon, which cannot run inside the shell: start it in another \
             terminal with `peershare up`"
                .into(),
        ),
        Command::Index(_) => Action::Refused(
            "`index` runs an index server, which cannot run inside the shell: start it in \
             another terminal with `peershare index`"
                .into(),
        ),
        Command::Shell => Action::Refused("this is the shell already".into()),
        _ => Action::Run(Box::new(cli)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals() -> Globals {
        Globals {
            api: Some("127.0.0.1:9".into()),
            data_dir: Some(PathBuf::from("/shell/data")),
            json: false,
        }
    }

    fn run(line: &str) -> Cli {
        match parse(line, &globals()) {
            Action::Run(cli) => *cli,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn commands_inherit_the_shells_globals_unless_the_line_gives_its_own() {
        let cli = run("status");
        assert_eq!(cli.api.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(cli.data_dir, Some(PathBuf::from("/shell/data")));
        assert!(!cli.json);
        let cli = run("status --json --api 10.0.0.1:1101");
        assert_eq!(cli.api.as_deref(), Some("10.0.0.1:1101"));
        assert_eq!(cli.data_dir, Some(PathBuf::from("/shell/data")));
        assert!(cli.json);
        let cli = run("--data-dir /other status");
        assert_eq!(cli.data_dir, Some(PathBuf::from("/other")));
    }

    #[test]
    fn quoting_works_like_a_shell() {
        match run("search 'two words' --mode substring").command {
            Command::Search(args) => {
                assert_eq!(args.query, "two words");
                assert_eq!(args.mode, "substring");
            }
            other => panic!("{other:?}"),
        }
        match run(r#"msg bob "hi there" again"#).command {
            Command::Msg { to, text } => {
                assert_eq!(to, "bob");
                assert_eq!(text, ["hi there", "again"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(run("peershare status").command, Command::Status));
        assert!(matches!(
            parse("search 'open", &globals()),
            Action::Refused(_)
        ));
    }

    #[test]
    fn shell_words_help_errors_and_refusals() {
        assert!(matches!(parse("  ", &globals()), Action::Nothing));
        assert!(matches!(parse("quit", &globals()), Action::Quit));
        assert!(matches!(parse("exit", &globals()), Action::Quit));
        assert!(matches!(parse("?", &globals()), Action::Menu));
        assert!(matches!(parse("2", &globals()), Action::Pick(2)));
        match parse("help", &globals()) {
            Action::Clap { error, top } => {
                assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp);
                assert!(top);
            }
            other => panic!("{other:?}"),
        }
        match parse("search --help", &globals()) {
            Action::Clap { error, top } => {
                assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp);
                assert!(!top);
            }
            other => panic!("{other:?}"),
        }
        match parse("serch foo", &globals()) {
            Action::Clap { error, .. } => {
                assert_eq!(error.kind(), clap::error::ErrorKind::InvalidSubcommand)
            }
            other => panic!("{other:?}"),
        }
        for refused in ["up", "up --share /x", "index", "shell"] {
            assert!(
                matches!(parse(refused, &globals()), Action::Refused(_)),
                "{refused}"
            );
        }
    }
}
