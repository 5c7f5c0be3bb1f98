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
use crate::views::{EventKind, LimitsRequest, LimitsView, Policy};
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
/// The setting that remembers the policy changed at run time.
pub(crate) const POLICY_SETTING: &str = "policy";
/// The setting that remembers the upload slots changed at run time.
pub(crate) const UPLOAD_SLOTS_SETTING: &str = "max_uploads";
/// The setting that remembers the peers served at once, changed at run time.
pub(crate) const UPLOAD_PEERS_SETTING: &str = "max_upload_peers";
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
        let (max_uploads, max_upload_peers) = self.gate.capacity();
        LimitsView {
            max_upload_rate: self.upload_rate.get(),
            max_download_rate: self.download_rate.get(),
            max_uploads,
            max_upload_peers,
        }
    }

    /// Changes what is done with transfer requests from now on, and
    /// remembers it for the next start (unless `up` sets one).
    pub async fn set_policy(&self, policy: Policy) -> Result<Policy, NodeError> {
        self.gate.set_policy(policy);
        self.store
            .set_setting(POLICY_SETTING, policy.as_str())
            .await?;
        tracing::info!(?policy, "policy changed");
        self.publish_settings();
        Ok(policy)
    }

    fn publish_settings(&self) {
        self.bus.publish(EventKind::SettingsChanged {
            limits: self.limits(),
            policy: self.gate.policy(),
        });
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
        let capacity = [
            (change.max_uploads, UPLOAD_SLOTS_SETTING, "max_uploads"),
            (
                change.max_upload_peers,
                UPLOAD_PEERS_SETTING,
                "max_upload_peers",
            ),
        ];
        for (count, _, field) in capacity {
            if count == Some(0) {
                return Err(NodeError::BadRequest(format!("{field} must be at least 1")));
            }
        }
        for (rate, limit, key) in changes {
            if let Some(rate) = rate {
                limit.set(Some(rate).filter(|r| *r > 0));
                self.store.set_setting(key, &rate.to_string()).await?;
            }
        }
        self.gate
            .set_capacity(change.max_uploads, change.max_upload_peers);
        for (count, key, _) in capacity {
            if let Some(count) = count {
                self.store.set_setting(key, &count.to_string()).await?;
            }
        }
        tracing::info!(limits = ?self.limits(), "limits changed");
        self.publish_settings();
        Ok(self.limits())
    }
}
