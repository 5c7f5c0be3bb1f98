//! The line editor's helper: Tab completion of subcommand names, nested
//! subcommands, long flags and their listed values, all derived from clap's
//! command tree (`args::Cli::command()`), so a new command or flag completes
//! with no change here; and masking of a password being typed.
//!
//! It only looks at the line being edited: it must never run a command,
//! reach the daemon, block, or let a password reach the screen or the history.

use std::borrow::Cow;

use clap::CommandFactory;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::args::Cli;

/// Subcommands the shell refuses to run, so it does not offer them either.
pub const REFUSED: [&str; 3] = ["up", "index", "shell"];

/// Words the shell itself understands at the start of a line.
const BUILTINS: [&str; 3] = ["menu", "quit", "exit"];

/// What the line being edited is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A command at the shell's prompt: completed, and kept in the history.
    Command,
    /// An answer to a menu's question: plain text.
    Answer,
    /// A password: shown as stars, never kept.
    Secret,
}

/// One long flag of a command.
#[derive(Debug)]
struct Flag {
    /// `--name`.
    long: String,
    /// It takes a value (the next word, or after `=`).
    takes_value: bool,
    /// The values it accepts, when clap lists them.
    values: Vec<String>,
}

/// One command of the tree, with what may follow it.
#[derive(Debug)]
struct Node {
    name: String,
    children: Vec<Node>,
    flags: Vec<Flag>,
    /// Values its positional arguments accept, when clap lists them.
    values: Vec<String>,
}

impl Node {
    fn from_clap(command: &clap::Command) -> Self {
        let listed = |arg: &clap::Arg| -> Vec<String> {
            arg.get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect()
        };
        let arguments = || command.get_arguments().filter(|a| !a.is_hide_set());
        Self {
            name: command.get_name().to_string(),
            children: command
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(Node::from_clap)
                .collect(),
            flags: arguments()
                .filter_map(|arg| {
                    Some(Flag {
                        long: format!("--{}", arg.get_long()?),
                        takes_value: arg.get_action().takes_values(),
                        values: listed(arg),
                    })
                })
                .collect(),
            values: arguments()
                .filter(|a| a.is_positional())
                .flat_map(listed)
                .collect(),
        }
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn flag(&self, long: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.long == long)
    }
}

/// The shell's rustyline helper: completion from clap's tree, masking in [`Mode::Secret`].
pub struct ShellHelper {
    root: Node,
    /// What the line being edited is for; the line editor sets it before each read.
    pub mode: Mode,
}

impl ShellHelper {
    /// A helper completing the commands of `peershare`.
    pub fn new() -> Self {
        let mut command = Cli::command();
        // Built, so global flags (--api, --data-dir, --json) and --help appear on every subcommand.
        command.build();
        Self {
            root: Node::from_clap(&command),
            mode: Mode::Command,
        }
    }

    /// What may replace `word`, the word under the cursor, after the words `done`.
    pub fn candidates(&self, done: &[String], word: &str) -> Vec<String> {
        let mut node = &self.root;
        let mut value_of: Option<&Flag> = None;
        for (i, w) in done.iter().enumerate() {
            if value_of.take().is_some() {
                continue;
            }
            if i == 0 && w == "peershare" {
                continue;
            }
            if w.starts_with("--") {
                // `--flag VALUE` takes the next word; `--flag=VALUE` does not.
                let (long, inline) = w
                    .split_once('=')
                    .map_or((w.as_str(), false), |(l, _)| (l, true));
                value_of = node.flag(long).filter(|f| f.takes_value && !inline);
            } else if !w.starts_with('-') {
                if let Some(child) = node.child(w) {
                    node = child;
                }
            }
        }
        let mut out: Vec<String> = match value_of {
            Some(flag) => flag.values.clone(),
            None if word.starts_with('-') => node.flags.iter().map(|f| f.long.clone()).collect(),
            None => {
                let top = std::ptr::eq(node, &self.root);
                let mut names: Vec<String> = node
                    .children
                    .iter()
                    .map(|c| c.name.clone())
                    .filter(|n| !(top && REFUSED.contains(&n.as_str())))
                    .chain(node.values.iter().cloned())
                    .collect();
                if top {
                    names.extend(BUILTINS.iter().map(|b| b.to_string()));
                }
                names
            }
        };
        out.retain(|c| c.starts_with(word));
        out.sort();
        out.dedup();
        out
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if self.mode != Mode::Command {
            return Ok((pos, Vec::new()));
        }
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let head = &before[..start];
        let done = shlex::split(head)
            .unwrap_or_else(|| head.split_whitespace().map(str::to_string).collect());
        let pairs = self
            .candidates(&done, &before[start..])
            .into_iter()
            .map(|c| Pair {
                replacement: format!("{c} "),
                display: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        match self.mode {
            Mode::Secret => Cow::Owned("*".repeat(line.chars().count())),
            _ => Cow::Borrowed(line),
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.mode == Mode::Secret && kind != CmdKind::MoveCursor
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &str) -> Vec<String> {
        let helper = ShellHelper::new();
        let history = rustyline::history::DefaultHistory::new();
        let (start, pairs) = helper
            .complete(line, line.len(), &Context::new(&history))
            .unwrap();
        assert!(start <= line.len());
        pairs.into_iter().map(|p| p.display).collect()
    }

    #[test]
    fn subcommand_names_complete_and_refused_ones_are_not_offered() {
        assert_eq!(complete("sea"), ["search"]);
        let all = complete("");
        for name in ["status", "get", "downloads", "menu", "quit", "help"] {
            assert!(all.iter().any(|c| c == name), "{name} in {all:?}");
        }
        for name in REFUSED {
            assert!(!all.iter().any(|c| c == name), "{name} offered: {all:?}");
        }
    }

    #[test]
    fn nested_subcommands_flags_and_values_complete() {
        assert_eq!(complete("downloads ca"), ["cancel"]);
        assert_eq!(complete("contacts tr"), ["trust"]);
        assert_eq!(complete("search foo --mo"), ["--mode"]);
        assert_eq!(complete("search foo --mode s"), ["substring"]);
        assert_eq!(complete("search --limit 5 --mode e"), ["exact"]);
        // Global flags reach every subcommand.
        assert!(complete("status --").contains(&"--data-dir".to_string()));
        assert_eq!(complete("get x --seq"), ["--sequential"]);
        assert_eq!(complete("completions fi"), ["fish"]);
        assert_eq!(complete("peershare sta"), ["status"]);
        // A file name is not a command: nothing to offer.
        assert!(complete("get so").is_empty());
    }

    #[test]
    fn answers_and_passwords_complete_nothing_and_passwords_are_masked() {
        let mut helper = ShellHelper::new();
        helper.mode = Mode::Answer;
        let history = rustyline::history::DefaultHistory::new();
        let ctx = Context::new(&history);
        assert!(helper.complete("sea", 3, &ctx).unwrap().1.is_empty());
        helper.mode = Mode::Secret;
        assert_eq!(helper.highlight("hunter2", 7), "*******");
        assert!(helper.highlight_char("hunter2", 7, CmdKind::Other));
    }
}
