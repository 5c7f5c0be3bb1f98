//! The parts of a running peer, as the daemon wired them: the handle the
//! local API's handlers (and an embedding program) work with. It holds
//! handles only; each part keeps its own state.

use std::path::PathBuf;
use std::sync::Arc;

use crate::discovery::Reach;
use crate::events::EventBus;
use crate::index_link::IndexLink;
use crate::messaging::Messenger;
use crate::net::host::Host;
use crate::share::SharedFiles;
use crate::store::Store;
use crate::transfer::download::Downloads;
use crate::transfer::rate_limit::RateLimit;
use crate::transfer::upload::active::ActiveUploads;
use crate::transfer::upload::gate::UploadGate;
use crate::views::{LimitsRequest, LimitsView};
use crate::NodeError;

/// The running parts of a peer, shared with the API handlers.
#[derive(Clone)]
pub struct Node {
    /// The libp2p host.
    pub host: Host,
    /// What this peer shares.
    pub shares: SharedFiles,
    /// Upload policy and slots.
    pub gate: UploadGate,
    /// The uploads running now.
    pub uploads: ActiveUploads,
    /// The download engine.
    pub downloads: Downloads,
    /// Where downloads land.
    pub downloads_dir: PathBuf,
    /// The data listener's port.
    pub data_port: u16,
    /// Upload slots.
    pub max_uploads: usize,
    /// Peers served at once at most.
    pub max_upload_peers: usize,
    /// The rate limit all uploads share, changeable at run time.
    pub upload_rate: Arc<RateLimit>,
    /// The rate limit all downloads share, changeable at run time.
    pub download_rate: Arc<RateLimit>,
    /// Membership in an index, if the daemon uses one.
    pub index: Option<IndexLink>,
    /// Where every subsystem pushes its changes.
    pub bus: EventBus,
    /// Messages, contacts and presence.
    pub messenger: Messenger,
    /// The data folder (never shared).
    pub data_dir: PathBuf,
    pub(crate) store: Store,
}

/// The setting that keeps sharing offline across restarts.
pub(crate) const SHARING_SETTING: &str = "sharing";
/// The setting that remembers an upload limit changed at run time (bytes per second, 0: none).
pub(crate) const UPLOAD_RATE_SETTING: &str = "max_upload_rate";
/// The setting that remembers a download limit changed at run time (bytes per second, 0: none).
pub(crate) const DOWNLOAD_RATE_SETTING: &str = "max_download_rate";
/// Its value while offline.
pub(crate) const OFFLINE: &str = "offline";

impl Node {
    /// Where discovery asks, for searches and lookups.
    pub fn reach(&self) -> Reach<'_> {
        Reach {
            host: &self.host,
            index: self.index.as_ref(),
        }
    }

    /// Offers this peer's files to the network again, or withdraws them all
    /// (index, DHT, browse and transfer requests); kept across restarts.
    pub async fn set_sharing(&self, online: bool) -> Result<(), NodeError> {
        let value = if online { "online" } else { OFFLINE };
        self.store.set_setting(SHARING_SETTING, value).await?;
        self.shares.set_online(online);
        Ok(())
    }
}

impl Node {
    /// The rate limits in force.
    pub fn limits(&self) -> LimitsView {
        LimitsView {
            max_upload_rate: self.upload_rate.get(),
            max_download_rate: self.download_rate.get(),
        }
    }

    /// Changes the rate limits for every running and later transfer, at
    /// once, and remembers them for the next start (unless `up` sets one).
    pub async fn set_limits(&self, change: LimitsRequest) -> Result<LimitsView, NodeError> {
        let changes = [
            (
                change.max_upload_rate,
                &self.upload_rate,
                UPLOAD_RATE_SETTING,
            ),
            (
                change.max_download_rate,
                &self.download_rate,
                DOWNLOAD_RATE_SETTING,
            ),
        ];
        for (rate, limit, key) in changes {
            if let Some(rate) = rate {
                limit.set(Some(rate).filter(|r| *r > 0));
                self.store.set_setting(key, &rate.to_string()).await?;
            }
        }
        tracing::info!(limits = ?self.limits(), "rate limits changed");
        Ok(self.limits())
    }
}
