//! `peershare ui`: opens the web UI in a browser with a fresh one-time
//! login link, or sets and clears the UI password (kept in the data folder,
//! so it works whether or not the daemon runs). It never prints a password.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use peershare_node::api::ui::UiLinkView;
use peershare_node::ui::password;
use serde_json::json;

use crate::args::{Cli, UiArgs};
use crate::client::{data_dir, DaemonClient};
use crate::output::print_json_or;

/// Runs `peershare ui`.
pub async fn run(cli: &Cli, args: &UiArgs) -> Result<()> {
    let dir = data_dir(cli);
    if args.set_password {
        let secret = read_new_password()?;
        password::set_password(&dir, &secret)?;
        let v = json!({ "password_set": true });
        return print_json_or(cli, &v, || {
            "UI password set; the web UI asks for it from now on (and `up --ui-listen` may start)"
                .into()
        });
    }
    if args.clear_password {
        password::clear_password(&dir)
            .with_context(|| format!("cannot remove the UI password in {}", dir.display()))?;
        let v = json!({ "password_set": false });
        return print_json_or(cli, &v, || "UI password removed".into());
    }
    let client = DaemonClient::from_cli(cli)?;
    let link: UiLinkView = client.post("/ui/link", &json!({})).await?;
    let opened = !args.print && !cli.json && open_browser(&link.url);
    print_json_or(cli, &link, || {
        let expires = link.expires_in_secs / 3600;
        match opened {
            true => format!(
                "opened the web UI in your browser; if nothing opened, visit this link \
                 (it works once, for {expires} h):\n  {}",
                link.url
            ),
            false => format!(
                "open this link in a browser on this machine (it works once, for {expires} h):\n  {}",
                link.url
            ),
        }
    })
}

fn read_new_password() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("new UI password: ")
        .context("cannot read a password from the terminal; pipe it on standard input")?;
    if rpassword::prompt_password("again: ")? != first {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Starts the person's browser (`$BROWSER`, else the desktop's opener) on `url`.
fn open_browser(url: &str) -> bool {
    let browser = std::env::var("BROWSER").ok().filter(|b| !b.is_empty());
    peershare_node::ui::desktop::open(url.as_ref(), browser.as_deref())
}
