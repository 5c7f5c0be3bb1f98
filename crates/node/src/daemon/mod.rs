//! The peer daemon: wires identity, store, shares, gate, libp2p host, data
//! listener, download engine and local API together, and stops them.
//!
//! This is the only module that knows how the parts connect; each part
//! stays usable on its own. It never runs an index: joining one is a
//! client concern ([`IndexLink`]) added beside the host, not inside it.

pub mod identity;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use peershare_core::DEFAULT_PIECE_LEN;

use crate::api;
use crate::discovery::{dht, remembered};
use crate::events::EventBus;
use crate::index_link::client::IndexClient;
use crate::index_link::{IndexLink, LinkIdentity};
use crate::lifetime::Lifetime;
use crate::messaging::keys::MessageKeys;
use crate::messaging::{Messenger, MessengerParts, Roster};
use crate::net::host::{ip_of, Host, HostContext};
use crate::net::kademlia::DhtSettings;
use crate::net::peer_book::PeerBook;
use crate::net::reachability::NatSettings;
use crate::node::{
    Node, DOWNLOAD_RATE_SETTING, OFFLINE, POLICY_SETTING, SHARING_SETTING, UPLOAD_PEERS_SETTING,
    UPLOAD_RATE_SETTING, UPLOAD_SLOTS_SETTING,
};
use crate::private_file::write_private;
use crate::share::folders::folders_at_start;
use crate::share::SharedFiles;
use crate::store::Store;
use crate::transfer::data_channel::{self, DataTls};
use crate::transfer::download::{Downloads, DownloadsParts};
use crate::transfer::partial::PartialFiles;
use crate::transfer::punch::PunchBudget;
use crate::transfer::rate_limit::RateLimit;
use crate::transfer::upload::active::ActiveUploads;
use crate::transfer::upload::gate::{GateParts, Policy, UploadGate};
use crate::transfer::upload::{self, UploadService};
use crate::ui::{Reach, WebUi};
use crate::views::EventKind;
use crate::NodeError;

/// Everything `peershare up` can be told.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the key, token and database live.
    pub data_dir: PathBuf,
    /// Folders to share.
    pub shares: Vec<PathBuf>,
    /// Where finished downloads go.
    pub downloads_dir: PathBuf,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Local API address.
    pub api: SocketAddr,
    /// Data connection listen address; `None` picks the first TCP listen IP, any port.
    pub data_listen: Option<SocketAddr>,
    /// What to do with transfer requests; `None`: as last set at run time, else accept.
    pub policy: Option<Policy>,
    /// Upload slots (pieces sent at once); `None`: as last set at run time, else 4.
    pub max_uploads: Option<usize>,
    /// Peers served at once, then "busy"; `None`: as last set at run time, else 32.
    pub max_upload_peers: Option<usize>,
    /// Most sources one download uses at once.
    pub max_sources: usize,
    /// How long a download with no source left looks for one before it fails.
    pub source_patience: Duration,
    /// How long an `ask` request waits for the person.
    pub ask_timeout: Duration,
    /// Total upload rate limit in bytes per second.
    pub max_upload_rate: Option<u64>,
    /// Total download rate limit in bytes per second.
    pub max_download_rate: Option<u64>,
    /// Watch shared folders for changes.
    pub watch: bool,
    /// The index to join, if any.
    pub index: Option<IndexSettings>,
    /// DHT, mDNS and bootstrap peers.
    pub dht: DhtSettings,
    /// Port mapping, relays and the relay service.
    pub nat: NatSettings,
    /// How long a letter waits for an offline recipient.
    pub letter_ttl: Duration,
    /// DHT nodes a letter for someone away is left with (no index).
    pub mailbox_replicas: usize,
    /// How often kept letters are handed to the nodes closest to their recipients.
    pub mailbox_republish: Duration,
    /// Whether senders hear when their letters are read.
    pub read_receipts: bool,
}

/// Which index to join and how to trust it.
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// Its base URL (http:// or https://).
    pub url: String,
    /// A certificate (or CA) to trust for it besides the system roots, PEM.
    pub ca_cert: Option<PathBuf>,
}

impl NodeConfig {
    /// Defaults for a data folder: ports 1100 (libp2p) and 1101 (API).
    pub fn with_data_dir(data_dir: PathBuf, downloads_dir: PathBuf) -> Self {
        Self {
            data_dir,
            shares: Vec::new(),
            downloads_dir,
            listen: vec![
                "/ip4/0.0.0.0/tcp/1100".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/udp/1100/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            api: SocketAddr::from(([127, 0, 0, 1], 1101)),
            data_listen: None,
            policy: None,
            max_uploads: None,
            max_upload_peers: None,
            max_sources: crate::transfer::download::swarm::DEFAULT_MAX_SOURCES,
            source_patience: crate::transfer::download::swarm::DEFAULT_SOURCE_PATIENCE,
            ask_timeout: Duration::from_secs(60),
            max_upload_rate: None,
            max_download_rate: None,
            watch: true,
            index: None,
            dht: DhtSettings::default(),
            nat: NatSettings::default(),
            letter_ttl: crate::messaging::DEFAULT_LETTER_TTL,
            mailbox_replicas: crate::messaging::DEFAULT_REPLICAS,
            mailbox_republish: crate::messaging::DEFAULT_REPUBLISH,
            read_receipts: true,
        }
    }
}

/// A started daemon.
pub struct RunningNode {
    /// The parts.
    pub node: Node,
    /// Where the API listens.
    pub api_addr: SocketAddr,
    token: String,
    ui: WebUi,
    lifetime: Lifetime,
}

/// How long downloads get to record their verified pieces when the daemon stops.
const DOWNLOAD_GRACE: Duration = Duration::from_secs(3);
/// How long the other tasks get once told to stop.
const TASK_GRACE: Duration = Duration::from_secs(1);

impl RunningNode {
    /// A fresh one-time link that logs a browser on this machine in to the web UI.
    pub fn ui_login_link(&self) -> String {
        api::ui::login_url(self.api_addr, &self.ui.sessions.mint_code())
    }

    /// Also serves the API and web UI on `listener`, reached from other
    /// machines (`up --ui-listen`): logins there need the UI password.
    pub fn serve_remote_ui<L>(&self, listener: L, https: bool) -> Result<SocketAddr, NodeError>
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        if !self.ui.password.is_set() {
            return Err(NodeError::BadRequest(
                "the web UI may listen beyond this machine only with a password: set one with \
                 `peershare ui --set-password`"
                    .into(),
            ));
        }
        let addr = listener.local_addr()?;
        let listening = api::Listening {
            reach: Reach::Remote { https },
            port: addr.port(),
            local_addr: self.api_addr,
        };
        let router = api::router(
            self.node.clone(),
            self.token.clone(),
            self.ui.clone(),
            listening,
        );
        self.lifetime.spawn_cooperative(api::serve(
            listener,
            router,
            self.lifetime.token().clone(),
        ));
        Ok(addr)
    }

    /// Stops downloads (recording their verified pieces), leaves the index,
    /// stops the listeners and flushes the database; call before the process exits.
    pub async fn shutdown(self) {
        self.node.shares.stop_watching();
        self.node.downloads.shutdown(DOWNLOAD_GRACE).await;
        if let Some(link) = &self.node.index {
            link.stop().await;
        }
        // Open event streams end, so the API's graceful stop does not wait on them.
        self.node.bus.close();
        if let Err(e) = remembered::save(&self.node.host, &self.node.store).await {
            tracing::warn!("cannot remember the known peers: {e}");
        }
        if !self.lifetime.end(TASK_GRACE).await {
            tracing::warn!("some daemon tasks did not stop in time");
        }
        self.node.store.close().await;
    }
}

/// Starts a peer daemon with `config`.
pub async fn start(mut config: NodeConfig) -> Result<RunningNode, NodeError> {
    for dir in [&mut config.data_dir, &mut config.downloads_dir] {
        std::fs::create_dir_all(&*dir).map_err(|e| NodeError::io(dir, e))?;
        *dir = std::fs::canonicalize(&*dir).map_err(|e| NodeError::io(dir, e))?;
    }
    for share in &mut config.shares {
        if !share.is_dir() {
            return Err(NodeError::BadRequest(format!(
                "{} is not a folder: --share takes a folder to share",
                share.display()
            )));
        }
        *share = std::fs::canonicalize(&*share).map_err(|e| NodeError::io(share, e))?;
    }
    let keypair = identity::load_or_create(&config.data_dir)?;
    let message_keys = MessageKeys::load_or_create(&config.data_dir, keypair.clone())?;
    let index_client = match &config.index {
        Some(settings) => Some(IndexClient::new(
            &settings.url,
            settings.ca_cert.as_deref(),
        )?),
        None => None,
    };
    let store = Store::open(&config.data_dir.join("peer.db")).await?;
    let folders = folders_at_start(&config.shares, &store.recorded_folders().await?);
    let bus = EventBus::new();
    let shares = SharedFiles::new(folders, DEFAULT_PIECE_LEN, store.clone(), bus.clone());
    if store.setting(SHARING_SETTING).await?.as_deref() == Some(OFFLINE) {
        tracing::info!("sharing is offline (`peershare online` offers the files again)");
        shares.set_online(false);
    }

    let data_addr = config.data_listen.unwrap_or_else(|| {
        let ip = config
            .listen
            .iter()
            .find(|a| {
                a.iter()
                    .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
            })
            .and_then(ip_of)
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        SocketAddr::new(ip, 0)
    });
    let data_listener = data_channel::bind(data_addr).await?;
    let data_addr = data_listener.local_addr()?;
    let data_port = data_addr.port();
    let book = PeerBook::default();
    let partials = PartialFiles::default();
    let roster = Roster::default();
    let gate = UploadGate::new(
        setting_at_start(&store, config.policy, POLICY_SETTING, Policy::Accept).await?,
        (
            setting_at_start(&store, config.max_uploads, UPLOAD_SLOTS_SETTING, 4).await?,
            setting_at_start(&store, config.max_upload_peers, UPLOAD_PEERS_SETTING, 32).await?,
        ),
        config.ask_timeout,
        data_port,
        GateParts {
            bus: bus.clone(),
            partials: partials.clone(),
            book: book.clone(),
            roster: roster.clone(),
        },
    );
    let tls = DataTls::new(&keypair)?;
    let upload_limit = limit_at_start(&store, config.max_upload_rate, UPLOAD_RATE_SETTING).await?;
    let download_limit =
        limit_at_start(&store, config.max_download_rate, DOWNLOAD_RATE_SETTING).await?;
    let rate = Arc::new(RateLimit::new(upload_limit));
    let download_rate = Arc::new(RateLimit::new(download_limit));
    let lifetime = Lifetime::new();
    // A start that fails half-way stops what it already started.
    let started = lifetime.token().clone().drop_guard();
    let uploads = ActiveUploads::new(bus.clone());
    let service = UploadService {
        tls: tls.clone(),
        data_addr,
        gate: gate.clone(),
        rate: rate.clone(),
        uploads: uploads.clone(),
        lifetime: lifetime.clone(),
        punches: PunchBudget::default(),
    };
    lifetime.spawn(upload::serve(data_listener, service.clone()));

    let (messages, inbox) = tokio::sync::mpsc::channel(crate::net::host::MESSAGE_INBOX);
    let context = HostContext {
        lifetime: lifetime.clone(),
        bus: bus.clone(),
        book,
        messages,
    };
    let host = Host::start(
        keypair.clone(),
        &config.listen,
        shares.clone(),
        Arc::new(gate.clone()),
        (&config.dht, &config.nat),
        context,
    )
    .await?;
    if config.nat.port_mapping {
        host.map_ports_by_port_control(data_addr, &lifetime);
    }
    lifetime.spawn(upload::serve_streams(
        host.accept_data_streams()?,
        host.reachability().clone(),
        service.clone(),
    ));
    lifetime.spawn(dht::announce_shares(host.clone(), shares.clone()));
    match remembered::rejoin(&host, &store).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(peers = n, "dialling peers known from the last run"),
        Err(e) => tracing::warn!("cannot read the peers known from the last run: {e}"),
    }
    lifetime.spawn(remembered::keep_saving(host.clone(), store.clone()));
    lifetime.spawn(report_share_changes(shares.clone(), bus.clone()));
    let index = index_client.map(|client| {
        IndexLink::start(
            client,
            &config.data_dir,
            LinkIdentity {
                keypair,
                message_key: Some(Messenger::card_base64(&message_keys)),
            },
            host.clone(),
            shares.clone(),
            &lifetime,
            &bus,
        )
    });
    let downloads = Downloads::new(DownloadsParts {
        store: store.clone(),
        host: host.clone(),
        tls,
        downloads_dir: config.downloads_dir.clone(),
        shares: shares.clone(),
        bus: bus.clone(),
        index: index.clone(),
        max_sources: config.max_sources,
        rate: download_rate.clone(),
        source_patience: config.source_patience,
        partials,
        lifetime: lifetime.clone(),
    });
    let messenger = Messenger::start(MessengerParts {
        store: store.clone(),
        keys: message_keys,
        host: host.clone(),
        index: index.clone(),
        bus: bus.clone(),
        roster,
        inbox,
        letter_ttl: config.letter_ttl,
        replicas: config.mailbox_replicas,
        republish: config.mailbox_republish,
        read_receipts: config.read_receipts,
        lifetime: lifetime.clone(),
    })
    .await?;
    let node = Node {
        host,
        shares: shares.clone(),
        gate,
        uploads,
        downloads,
        downloads_dir: config.downloads_dir.clone(),
        data_port,
        upload_rate: rate,
        download_rate,
        index,
        bus,
        messenger,
        data_dir: config.data_dir.clone(),
        store,
    };

    let token = load_or_create_token(&config.data_dir)?;
    let api_listener = tokio::net::TcpListener::bind(config.api)
        .await
        .map_err(|e| NodeError::listen("the local API", config.api, e, "--api HOST:PORT"))?;
    let api_addr = api_listener.local_addr()?;
    let ui = WebUi::new(&config.data_dir);
    let listening = api::Listening {
        reach: Reach::Loopback,
        port: api_addr.port(),
        local_addr: api_addr,
    };
    lifetime.spawn_cooperative(api::serve(
        api_listener,
        api::router(node.clone(), token.clone(), ui.clone(), listening),
        lifetime.token().clone(),
    ));
    write_private(
        &config.data_dir.join(api::ADDR_FILE),
        api::addr_file_contents(api_addr).as_bytes(),
    )?;

    if config.watch {
        if let Err(e) = shares.watch() {
            tracing::warn!("not watching shared folders ({e}); use `peershare rescan`");
        }
    }
    let scanning = shares.clone();
    lifetime.spawn(async move {
        if let Err(e) = scanning.rescan().await {
            tracing::error!("scanning the shared folders failed: {e}");
        }
    });
    let resumed = node.downloads.resume_unfinished().await?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed unfinished downloads");
    }
    started.disarm();
    Ok(RunningNode {
        node,
        api_addr,
        token,
        ui,
        lifetime,
    })
}

/// Pushes every change of the shared files on the event bus.
async fn report_share_changes(shares: SharedFiles, bus: EventBus) {
    let mut changes = shares.subscribe();
    while changes.changed().await.is_ok() {
        bus.publish(EventKind::SharesChanged {
            shared_files: shares.len(),
        });
    }
}

fn load_or_create_token(data_dir: &std::path::Path) -> Result<String, NodeError> {
    let path = data_dir.join(api::TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// A setting at start: the one `up` was given, else the one last set at
/// run time (remembered under `key`), else `default`.
async fn setting_at_start<T: std::str::FromStr>(
    store: &Store,
    given: Option<T>,
    key: &str,
    default: T,
) -> Result<T, NodeError> {
    if let Some(given) = given {
        return Ok(given);
    }
    let remembered = store.setting(key).await?;
    Ok(remembered.and_then(|v| v.parse().ok()).unwrap_or(default))
}

/// A rate limit at start: the one `up` was given, else the one last set at
/// run time (remembered under `key`), else none.
async fn limit_at_start(
    store: &Store,
    given: Option<u64>,
    key: &str,
) -> Result<Option<u64>, NodeError> {
    if given.is_some() {
        return Ok(given.filter(|r| *r > 0));
    }
    let remembered = store.setting(key).await?;
    Ok(remembered
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|r| *r > 0))
}
