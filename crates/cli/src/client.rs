//! The CLI's side of the local API: finding the daemon (address and token
//! from the data folder), sending requests and turning API errors into
//! messages that say what to do next.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use peershare_node::api::{ADDR_FILE, TOKEN_FILE};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::args::Cli;

/// The default data folder for this user.
pub fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("org", "peershare", "peershare")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".peershare"))
}

/// The data folder named on the command line, or the default one.
pub fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir.clone().unwrap_or_else(default_data_dir)
}

/// A connection to the local daemon.
pub struct DaemonClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl DaemonClient {
    /// Finds the daemon from `--api`/`--data-dir`.
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let dir = data_dir(cli);
        let addr = match &cli.api {
            Some(a) => a.clone(),
            None => std::fs::read_to_string(dir.join(ADDR_FILE))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "127.0.0.1:1101".to_string()),
        };
        let token_path = dir.join(TOKEN_FILE);
        let token = std::fs::read_to_string(&token_path)
            .with_context(|| {
                format!(
                    "cannot read the API token at {}: is `peershare up` running with this \
                     data folder? (pass --data-dir DIR)",
                    token_path.display()
                )
            })?
            .trim()
            .to_string();
        Ok(Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}/api/v1"),
            token,
        })
    }

    /// GET a path under `/api/v1`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// GET with query parameters.
    pub async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// POST a JSON body.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| {
            anyhow!(
                "no daemon answers at {} ({e}): start one with `peershare up`, \
                     or point at it with --api / --data-dir",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .context("the daemon sent an unreadable answer")?;
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("unknown error");
            return Err(anyhow!("{message}"));
        }
        serde_json::from_value(body).context("the daemon's answer has an unexpected shape")
    }
}
