//! The web UI served by the daemon beside its local API: the embedded page
//! files ([`assets`]), who is logged in ([`sessions`]) and the password
//! needed when it listens beyond loopback ([`password`]).
//!
//! The page itself is static: it reads and changes everything through the
//! local API and its events stream, like any other client, so the UI holds
//! no state of its own. The HTTP handlers for login, logout and the pages
//! live in `api::ui`; this module never decides what a request may do.

pub mod assets;
pub mod desktop;
pub mod password;
pub mod sessions;

use std::path::Path;

pub use password::{PasswordCheck, Refusal};
pub use sessions::{NewSession, UiSessions};

/// How a listener is reached, which decides how people log in to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// 127.0.0.1 or ::1: login links (and the password, if one is set).
    Loopback,
    /// Any other address (`up --ui-listen`): the password only.
    Remote {
        /// Whether the listener speaks HTTPS (cookies are then `Secure`).
        https: bool,
    },
}

impl Reach {
    /// The URL scheme browsers use for this listener.
    pub fn scheme(self) -> &'static str {
        match self {
            Reach::Remote { https: true } => "https",
            _ => "http",
        }
    }
}

/// Everything the listeners share about the web UI's logins.
#[derive(Clone)]
pub struct WebUi {
    /// Login codes and sessions.
    pub sessions: UiSessions,
    /// The password check.
    pub password: PasswordCheck,
}

impl WebUi {
    /// The web UI of the daemon whose data folder is `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            sessions: UiSessions::default(),
            password: PasswordCheck::new(data_dir),
        }
    }
}
