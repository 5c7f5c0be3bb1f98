//! The CLI's side of the local API: finding the daemon (address and token
//! from the data folder), sending requests, following the events stream,
//! and turning API errors into messages that say what to do next.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use peershare_node::api::{ADDR_FILE, TOKEN_FILE};
use peershare_node::views::{ApiError, Event};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::args::Cli;

/// How long a command waits for a daemon that is still starting.
const STARTING_DAEMON_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// Pause between two tries.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Reads `path`, waiting briefly for a starting daemon to write it.
fn read_when_there(path: &std::path::Path) -> std::io::Result<String> {
    let give_up = std::time::Instant::now() + STARTING_DAEMON_WAIT;
    loop {
        match std::fs::read_to_string(path) {
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && std::time::Instant::now() < give_up =>
            {
                std::thread::sleep(RETRY_PAUSE)
            }
            other => return other,
        }
    }
}

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

/// The daemon's events, in the order it published them.
pub type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

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
        let token_path = dir.join(TOKEN_FILE);
        let token = read_when_there(&token_path)
            .with_context(|| {
                format!(
                    "cannot read the API token at {}: is `peershare up` running with this \
                     data folder? (pass --data-dir DIR)",
                    token_path.display()
                )
            })?
            .trim()
            .to_string();
        // The daemon writes its address once its API listens, after the token.
        let addr = match &cli.api {
            Some(a) => a.clone(),
            None => read_when_there(&dir.join(ADDR_FILE))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "127.0.0.1:1101".to_string()),
        };
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
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// POST a JSON body to a path whose answer has no body.
    pub async fn post_expecting_nothing(&self, path: &str, body: &impl Serialize) -> Result<()> {
        self.no_content(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// DELETE a path under `/api/v1`; the answer has no body.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.no_content(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// POST to a path under `/api/v1` whose answer has no body.
    pub async fn post_no_content(&self, path: &str) -> Result<()> {
        self.no_content(self.http.post(format!("{}{path}", self.base)))
            .await
    }

    async fn no_content(&self, request: reqwest::RequestBuilder) -> Result<()> {
        let response = self.connect(request).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(api_error(response).await)
    }

    /// Subscribes to the daemon's events; every event published from now on arrives, in order.
    pub async fn events(&self) -> Result<EventStream> {
        let response = self
            .connect(self.http.get(format!("{}/events", self.base)))
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let events = response.bytes_stream().eventsource().map(|item| {
            let item = item.map_err(|e| anyhow!("the events stream broke: {e}"))?;
            serde_json::from_str::<Event>(&item.data)
                .with_context(|| format!("the daemon sent an unreadable event: {}", item.data))
        });
        Ok(Box::pin(events))
    }

    async fn connect(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let request = request.bearer_auth(&self.token);
        let give_up = std::time::Instant::now() + STARTING_DAEMON_WAIT;
        loop {
            let attempt = request.try_clone().map(|r| r.send());
            let error = match attempt {
                Some(sent) => match sent.await {
                    Ok(response) => return Ok(response),
                    Err(e) => e,
                },
                None => return Err(anyhow!("a request that cannot be sent twice failed")),
            };
            // A daemon that is still starting has not opened its API yet.
            if !error.is_connect() || std::time::Instant::now() >= give_up {
                return Err(anyhow!(
                    "no daemon answers at {} ({error}): start one with `peershare up`, \
                     or point at it with --api / --data-dir",
                    self.base
                ));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = self.connect(request).await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let body: Value = response
            .json()
            .await
            .context("the daemon sent an unreadable answer")?;
        serde_json::from_value(body).context("the daemon's answer has an unexpected shape")
    }
}

/// The message of an API error answer.
async fn api_error(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    match response.json::<ApiError>().await {
        Ok(e) => anyhow!("{}", e.message),
        Err(_) => anyhow!("the daemon answered {status} with no explanation"),
    }
}
