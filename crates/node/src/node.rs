//! The parts of a running peer, as the daemon wired them: the handle the
//! local API's handlers (and an embedding program) work with. It holds
//! handles only; each part keeps its own state.

use std::path::PathBuf;
use std::sync::Arc;

use crate::discovery::Reach;
use crate::events::EventBus;
use crate::index_link::IndexLink;
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
    /// The data folder (never shared).
    pub data_dir: PathBuf,
    pub(crate) store: Store,
}

/// The setting that keeps sharing offline across restarts.
pub(crate) const SHARING_SETTING: &str = "sharing";
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

    /// Changes the rate limits for every running and later transfer, until the daemon stops.
    pub fn set_limits(&self, change: LimitsRequest) -> LimitsView {
        if let Some(rate) = change.max_upload_rate {
            self.upload_rate.set(Some(rate).filter(|r| *r > 0));
        }
        if let Some(rate) = change.max_download_rate {
            self.download_rate.set(Some(rate).filter(|r| *r > 0));
        }
        tracing::info!(limits = ?self.limits(), "rate limits changed");
        self.limits()
    }
}
