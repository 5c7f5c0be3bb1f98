//! The line editor: one thread owns rustyline's editor (the terminal in raw
//! mode, the history file, the completion helper) and reads one line at a
//! time when the shell asks, since rustyline blocks and the shell's commands
//! run on the async runtime meanwhile.
//!
//! It must never run a command or print anything but the prompt and the line
//! being edited; it keeps only command lines in the history (never answers,
//! never passwords). Notices reach the screen through the external printer it
//! hands out.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context as _, Result};
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{ColorMode, CompletionType, Config, Editor, ExternalPrinter};
use tokio::sync::oneshot;

use super::completion::{Mode, ShellHelper};

/// Lines kept in the history file.
const HISTORY_LINES: usize = 1000;

/// What the person did at a prompt.
#[derive(Debug)]
pub enum Input {
    /// Typed a line and pressed Enter.
    Line(String),
    /// Pressed Ctrl-C: the line is dropped.
    Interrupted,
    /// Pressed Ctrl-D on an empty line, or the input ended.
    Eof,
}

/// A printer that writes above the line being edited without garbling it.
pub type LinePrinter = Box<dyn ExternalPrinter + Send>;

struct Request {
    prompt: String,
    mode: Mode,
    reply: oneshot::Sender<Result<Input>>,
}

type ShellEditor = Editor<ShellHelper, FileHistory>;

/// The shell's handle on the editor thread; dropping it ends the thread.
pub struct LineReader {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl LineReader {
    /// Opens the editor on the terminal with its history in `history`; also
    /// returns a printer for notices when the terminal has one.
    pub fn open(history: PathBuf) -> Result<(Self, Option<LinePrinter>)> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (ready, opened) = mpsc::channel::<Result<Option<LinePrinter>>>();
        let thread = std::thread::Builder::new()
            .name("shell-editor".into())
            .spawn(move || {
                let mut editor = match new_editor(&history) {
                    Ok(editor) => editor,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                // No printer when the input is not a terminal (lines piped in).
                let printer = editor
                    .create_external_printer()
                    .ok()
                    .map(|p| Box::new(p) as LinePrinter);
                if ready.send(Ok(printer)).is_err() {
                    return;
                }
                let mut history_saved = true;
                for request in incoming {
                    let input = read_line(&mut editor, &request, &history, &mut history_saved);
                    let _ = request.reply.send(input);
                }
            })
            .context("cannot start the line editor's thread")?;
        let printer = opened
            .recv()
            .map_err(|_| anyhow!("the line editor stopped while opening"))??;
        let reader = Self {
            requests: Some(requests),
            thread: Some(thread),
        };
        Ok((reader, printer))
    }

    /// Shows `prompt` and reads one line for `mode`.
    pub async fn read(&self, prompt: &str, mode: Mode) -> Result<Input> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            prompt: prompt.to_string(),
            mode,
            reply,
        };
        let stopped = || anyhow!("the line editor stopped; start `peershare shell` again");
        self.requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(request)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for LineReader {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; it is between two reads by now.
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn new_editor(history: &Path) -> Result<ShellEditor> {
    let config = Config::builder()
        .max_history_size(HISTORY_LINES)
        .and_then(|c| c.history_ignore_dups(true))
        .context("cannot set up the shell's history")?
        .history_ignore_space(true)
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .build();
    let mut editor = ShellEditor::with_config(config).context(
        "cannot open the terminal for the shell (run it in a terminal, or pipe commands into it)",
    )?;
    editor.set_helper(Some(ShellHelper::new()));
    match editor.load_history(history) {
        Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "note: cannot read the shell history at {}: {e}; starting with none",
            history.display()
        ),
        Ok(()) => {}
    }
    Ok(editor)
}

fn read_line(
    editor: &mut ShellEditor,
    request: &Request,
    history: &Path,
    history_saved: &mut bool,
) -> Result<Input> {
    if let Some(helper) = editor.helper_mut() {
        helper.mode = request.mode;
    }
    // Masking draws through the highlighter, which runs only with colours on.
    editor.set_color_mode(match request.mode {
        Mode::Secret => ColorMode::Forced,
        _ => ColorMode::Enabled,
    });
    let result = loop {
        match editor.readline(&request.prompt) {
            // A resized window: read on.
            Err(ReadlineError::Signal(_)) => continue,
            other => break other,
        }
    };
    editor.set_color_mode(ColorMode::Enabled);
    match result {
        Ok(line) => {
            if request.mode == Mode::Command && !line.trim().is_empty() {
                let _ = editor.add_history_entry(line.as_str());
                save_history(editor, history, history_saved);
            }
            Ok(Input::Line(line))
        }
        Err(ReadlineError::Interrupted) => Ok(Input::Interrupted),
        Err(ReadlineError::Eof) => Ok(Input::Eof),
        Err(e) => Err(anyhow!(e).context("cannot read from the terminal")),
    }
}

/// Appends the new line to the history file (creating the data folder if
/// needed); says once when it cannot.
fn save_history(editor: &mut ShellEditor, history: &Path, saved: &mut bool) {
    let result = match history.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(ReadlineError::Io),
        None => Ok(()),
    }
    .and_then(|()| editor.append_history(history));
    if let Err(e) = result {
        if std::mem::replace(saved, false) {
            eprintln!(
                "note: cannot save the shell history to {}: {e}; this session's lines are kept \
                 in memory only",
                history.display()
            );
        }
    }
}
