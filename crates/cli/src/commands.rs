//! The client commands: each one asks the daemon's local API and prints the
//! answer as text for people or as JSON with `--json`.

use anyhow::{anyhow, bail, Context, Result};
use peershare_core::link::ShareLink;
use peershare_index::audit::AuditPage;
use peershare_index::users::UsersList;
use peershare_node::discovery::search::Merged;
use peershare_node::share::RescanReport;
use peershare_node::views::{
    BrowseView, DownloadOptions, FileEntry, FolderRequest, FoldersChanged, FoundBy, GetRequest,
    KnownPeer, LimitsRequest, LimitsView, LinkState, LinkView, ListedBy, MappingProtocol,
    NatMapping, NatState, Origin, PeersView, PendingRequest, Policy, PolicyChange,
    PortMappingState, ReachabilityView, RequestAnswer, SessionView, SharesView, SharingRequest,
    StatusView, UserFilesView,
};
use serde_json::{json, Value};

use crate::args::{parse_bytes, parse_rate, AccountArgs, Cli, Command, SearchArgs, SharesAction};
use crate::client::DaemonClient;
use crate::messages;
use crate::output::connection_path;
use crate::output::{human_bytes, human_duration, print_json_or, utc_time, who};
use crate::transfers::{self, GetOptions};

/// Who runs a command: the binary (one command, then the process ends) or
/// the shell (many in one process, which handles Ctrl-C itself and has no
/// standard input to spare).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `peershare COMMAND`.
    Binary,
    /// A line typed in `peershare shell`.
    Shell,
}

/// Runs one client command.
pub async fn run(cli: &Cli, command: &Command) -> Result<()> {
    run_as(cli, command, Caller::Binary).await
}

/// Runs one client command for `caller`.
pub async fn run_as(cli: &Cli, command: &Command, caller: Caller) -> Result<()> {
    let client = DaemonClient::from_cli(cli)?;
    match command {
        Command::Up(_) | Command::Index(_) | Command::Completions { .. } | Command::Shell => {
            unreachable!("not a client command")
        }
        Command::Ui(args) => crate::web_ui::run(cli, args).await,
        Command::Status => status(cli, &client).await,
        Command::Browse { target, all } => browse(cli, &client, target, *all).await,
        Command::Get {
            target,
            file,
            no_wait,
            again,
            cancel_on_exit,
            sequential,
            max_rate,
        } => {
            let mut request = get_request(target, file.as_deref(), *again)?;
            request.options = DownloadOptions {
                sequential: *sequential,
                max_rate: parse_rate("max-rate", max_rate.as_deref())?.filter(|r| *r > 0),
            };
            let options = GetOptions {
                no_wait: *no_wait,
                cancel_on_exit: *cancel_on_exit,
                handle_ctrl_c: caller == Caller::Binary,
            };
            transfers::get(cli, &client, request, options).await
        }
        Command::Register(account) => sign_in(cli, &client, account, "register").await,
        Command::Login(account) => sign_in(cli, &client, account, "login").await,
        Command::Logout => {
            client.post_no_content("/index/logout").await?;
            let v = json!({ "logged_out": true });
            print(cli, &v, || "logged out; this peer left the index".into())
        }
        Command::Unregister => {
            client.post_no_content("/index/unregister").await?;
            let v = json!({ "unregistered": true });
            print(cli, &v, || {
                "account deleted, with its peers and files on the index".into()
            })
        }
        Command::Search(args) => search(cli, &client, args).await,
        Command::Users { all } => users(cli, &client, *all).await,
        Command::Peers => peers(cli, &client).await,
        Command::Audit { limit, offset } => audit(cli, &client, *limit, *offset).await,
        Command::Downloads { watch, action } => {
            transfers::downloads(cli, &client, *watch, action.as_ref()).await
        }
        Command::Shares { action } => shares(cli, &client, action.as_ref()).await,
        Command::Offline | Command::Online => {
            let online = matches!(command, Command::Online);
            let v: SharingRequest = client.post("/sharing", &SharingRequest { online }).await?;
            print_json_or(cli, &v, || match v.online {
                true => "online: your files are offered again (index, DHT, LAN)".into(),
                false => "offline: you left the index, your DHT records are withdrawn and \
                          nobody can browse or download your files; `peershare online` undoes it"
                    .into(),
            })
        }
        Command::Rescan => {
            let v: RescanReport = client.post("/rescan", &json!({})).await?;
            print_json_or(cli, &v, || {
                format!("{} files shared ({} hashed)", v.shared_files, v.hashed)
            })
        }
        Command::Link { file, with_addrs } => link(cli, &client, file, *with_addrs).await,
        Command::Requests => requests(cli, &client).await,
        Command::Uploads => transfers::uploads(cli, &client).await,
        Command::Limits {
            upload,
            download,
            slots,
            peers,
        } => {
            let rates = (upload.as_deref(), download.as_deref());
            limits(cli, &client, rates, (*slots, *peers)).await
        }
        Command::Policy { policy } => policy_command(cli, &client, policy.as_deref()).await,
        Command::Events => transfers::events(cli, &client).await,
        Command::Accept { id } => answer(cli, &client, *id, "accept").await,
        Command::Reject { id } => answer(cli, &client, *id, "reject").await,
        Command::Msg { to, text } => {
            if text.is_empty() && caller == Caller::Shell {
                bail!("give the message on the same line: `msg {to} TEXT`");
            }
            messages::send(cli, &client, to, text).await
        }
        Command::Chats => messages::chats(cli, &client).await,
        Command::Chat {
            name,
            follow,
            limit,
        } => messages::chat(cli, &client, name, *follow, *limit).await,
        Command::Contacts { action } => messages::contacts(cli, &client, action.as_ref()).await,
    }
}

fn print(cli: &Cli, value: &Value, text: impl FnOnce() -> String) -> Result<()> {
    print_json_or(cli, value, text)
}

async fn status(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let v: StatusView = client.get("/status").await?;
    print_json_or(cli, &v, || {
        let mut out = format!("peer {}\n", v.peer_id);
        for a in &v.addrs {
            out += &format!("  reachable at {a}\n");
        }
        let folders = match v.shares.is_empty() {
            true => "no folder".to_string(),
            false => v.shares.join(", "),
        };
        out += &format!(
            "sharing {} files from {folders} and finished downloads\ndownloads go to {}\n\
             policy {}, {} of {} upload slots busy",
            v.shared_files,
            v.downloads_dir,
            match v.policy {
                Policy::Accept => "accept",
                Policy::Ask => "ask",
                Policy::Contacts => "contacts",
            },
            v.uploads_running,
            v.max_uploads,
        );
        if !v.sharing_online {
            out += "\nOFFLINE: nobody can reach your files (`peershare online`)";
        }
        if let Some(reach) = &v.reachability {
            out += &reachability_lines(reach);
        }
        if v.kept_letters > 0 {
            out += &format!(
                "\nkeeping {} sealed letter(s) for peers who are away",
                v.kept_letters
            );
        }
        out += &match &v.index {
            None => "\nno index (--no-index)".to_string(),
            Some(index) => format!(
                "\nindex {}: {} ({}{})",
                index.url,
                link_state(index.state),
                index.message,
                match index.state {
                    LinkState::Joined => format!(", {} files listed", index.published_files),
                    _ => String::new(),
                }
            ),
        };
        out
    })
}

/// `status`'s lines on NAT state, public and relayed addresses, port mapping and relay service.
fn reachability_lines(reach: &ReachabilityView) -> String {
    let nat = match reach.nat {
        NatState::Unknown => "not known yet",
        NatState::Public => "public (peers dialled back)",
        NatState::Private => "behind a NAT or firewall",
    };
    let mapping = match reach.port_mapping {
        PortMappingState::Off => "off",
        PortMappingState::Searching => "looking for the router",
        PortMappingState::Mapped => "mapped",
        PortMappingState::NoGateway => "no router offers it",
        PortMappingState::GatewayNotPublic => "the router is behind another NAT",
    };
    let by: Vec<&str> = reach
        .mapped_by
        .iter()
        .map(|p| match p {
            MappingProtocol::UpnpIgd => "UPnP IGD",
            MappingProtocol::Pcp => "PCP",
            MappingProtocol::NatPmp => "NAT-PMP",
        })
        .collect();
    let by = match by.is_empty() {
        true => String::new(),
        false => format!(" by {}", by.join(" and ")),
    };
    let mut out = format!("\nreachability: {nat}; port mapping: {mapping}{by}");
    if let Some(ip) = &reach.seen_as {
        let ports = match reach.mapping {
            NatMapping::Unknown => "",
            NatMapping::Kept => ", the same port for every peer",
            NatMapping::Changes => ", a new port for every peer (a symmetric NAT)",
        };
        out += &format!("\n  seen from outside as {ip}{ports}");
    }
    for a in &reach.public_addrs {
        out += &format!("\n  public at {a}");
    }
    for a in &reach.relayed_addrs {
        out += &format!("\n  relayed at {a}");
    }
    let service = &reach.relay_service;
    out += &match (service.enabled, service.bulk) {
        (false, _) => "\nrelay service off".to_string(),
        (true, bulk) => format!(
            "\nrelay service on{}: {} of {} slots held, {} of {} circuits open",
            if bulk { " (bulk circuits allowed)" } else { "" },
            service.reservations,
            service.max_reservations,
            service.circuits,
            service.max_circuits
        ),
    };
    out
}

fn link_state(state: LinkState) -> &'static str {
    match state {
        LinkState::LoggedOut => "logged out",
        LinkState::Joining => "joining",
        LinkState::Joined => "joined",
        LinkState::Unreachable => "unreachable",
        LinkState::Refused => "refused",
        LinkState::Offline => "offline",
    }
}

/// The forms `get` and `browse` accept, for error messages.
const PEER_FORMS: &str = "a peer is named by its full address as `peershare status` prints it \
     (/ip4/192.168.1.20/tcp/1100/p2p/12D3KooW…) or, for browse, by its peer id (12D3KooW…)";

/// What `get TARGET [FILE]` asks the daemon for.
fn get_request(target: &str, file: Option<&str>, again: bool) -> Result<GetRequest> {
    if ShareLink::is_link(target) {
        if file.is_some() {
            bail!("a peershare: link names its file already; give the link alone");
        }
        let link: ShareLink = target.parse().with_context(|| {
            "the link is damaged; copy it whole, as `peershare link` printed it".to_string()
        })?;
        return Ok(GetRequest {
            file: link.id.to_hex(),
            again,
            sources: link.sources,
            ..GetRequest::default()
        });
    }
    match file {
        Some(file) => {
            if !is_peer_address(target) {
                bail!(
                    "{target:?} is not a peer address: {PEER_FORMS}. \
                     Without a peer, `peershare get NAME`, `get ID` or `get peershare:…` finds holders"
                );
            }
            Ok(GetRequest {
                peer: Some(target.to_string()),
                file: file.to_string(),
                again,
                ..GetRequest::default()
            })
        }
        None => {
            if is_peer_address(target) || looks_like_an_address(target) {
                bail!("{target:?} names a peer but no file: `peershare get ADDRESS FILE` (FILE: a name or an id)");
            }
            Ok(GetRequest {
                file: target.to_string(),
                again,
                ..GetRequest::default()
            })
        }
    }
}

/// Text that is meant as an address but is not a full peer address: a
/// multiaddr without `/p2p/`, or HOST:PORT.
fn looks_like_an_address(target: &str) -> bool {
    let host_port = target.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok()
    });
    (target.starts_with("/ip") || target.starts_with("/dns")) && !target.contains("/p2p/")
        || host_port
}

async fn link(cli: &Cli, client: &DaemonClient, file: &str, with_addrs: bool) -> Result<()> {
    // A path to a file on this machine is sent whole; the daemon matches it.
    let what = match std::path::Path::new(file).exists() {
        true => std::path::absolute(file)?.display().to_string(),
        false => file.to_string(),
    };
    let with = if with_addrs { "true" } else { "false" };
    let v: LinkView = client
        .get_query("/link", &[("file", &what), ("with_addrs", with)])
        .await?;
    print_json_or(cli, &v, || v.uri.clone())
}

/// A peer address has a `/p2p/` part; anything else is a user name on the index.
pub fn is_peer_address(target: &str) -> bool {
    target.starts_with('/') && target.contains("/p2p/")
}

/// A libp2p peer id as people paste it (Ed25519 keys: `12D3KooW…`; older `Qm…`).
pub fn is_peer_id(target: &str) -> bool {
    let base58 = target
        .chars()
        .all(|c| c.is_ascii_alphanumeric() && !"0OIl".contains(c));
    base58
        && ((target.starts_with("12D3KooW") && target.len() == 52)
            || (target.starts_with("Qm") && target.len() == 46))
}

async fn browse(cli: &Cli, client: &DaemonClient, target: &str, all: bool) -> Result<()> {
    if looks_like_an_address(target) {
        bail!("{target:?} is not a full peer address: {PEER_FORMS}; or give a user name");
    }
    if is_peer_address(target) || is_peer_id(target) {
        let v: BrowseView = client.get_query("/browse", &[("peer", target)]).await?;
        return print_json_or(cli, &v, || file_table(&v.files));
    }
    let path = format!("/users/{}/files", url_segment(target));
    let all = if all { "true" } else { "false" };
    let v: UserFilesView = client.get_query(&path, &[("all", all)]).await?;
    print_json_or(cli, &v, || {
        let mut out = String::new();
        if v.origin == ListedBy::Dht {
            out += &format!(
                "(the index cannot be asked: {}; these are the files of peers that announce the \
                 name {target:?} in the DHT, which nobody vouches for)\n",
                v.index_error.as_deref().unwrap_or("-")
            );
        }
        if v.files.is_empty() {
            return format!("{out}{target} shares no files on an online peer");
        }
        out += &format!("{:>12}  {:<64}  {:<7}  NAME\n", "SIZE", "ID", "ONLINE");
        for f in &v.files {
            out += &format!(
                "{:>12}  {:<64}  {:<7}  {}\n",
                human_bytes(f.size),
                f.id,
                if f.online { "yes" } else { "no" },
                f.name
            );
        }
        out.trim_end().to_string()
    })
}

/// Characters left as they are in a URL path segment (RFC 3986 "unreserved").
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Escapes a user name for one URL path segment.
pub fn url_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

async fn sign_in(
    cli: &Cli,
    client: &DaemonClient,
    account: &AccountArgs,
    verb: &str,
) -> Result<()> {
    let password = read_password(account, verb == "register")?;
    sign_in_with(cli, client, &account.name, &password, verb).await
}

/// Registers (`verb` "register") or logs in ("login") with a password already read, and says how it went.
pub async fn sign_in_with(
    cli: &Cli,
    client: &DaemonClient,
    name: &str,
    password: &str,
    verb: &str,
) -> Result<()> {
    let v: SessionView = client
        .post(
            &format!("/index/{verb}"),
            &json!({ "name": name, "password": password }),
        )
        .await?;
    print_json_or(cli, &v, || {
        let done = match verb {
            "register" => format!("registered {} and logged in", v.name),
            _ => format!("logged in as {}", v.name),
        };
        let index = &v.index;
        match index.state {
            LinkState::Joined => format!(
                "{done}; joined the index at {} sharing {} files",
                index.url, index.published_files
            ),
            LinkState::Joining => format!("{done}; still joining the index at {}", index.url),
            _ => format!("{done}; the index: {}", index.message),
        }
    })
}

/// The password from standard input (`--password-stdin`) or a hidden prompt.
fn read_password(account: &AccountArgs, confirm: bool) -> Result<String> {
    if account.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            bail!("no password on standard input: pipe it in, one line");
        }
        return Ok(password);
    }
    let prompt = format!("password for {}: ", account.name);
    let password = rpassword::prompt_password(&prompt)
        .context("cannot read a password from the terminal; use --password-stdin")?;
    if confirm && rpassword::prompt_password("again: ")? != password {
        bail!("the two passwords differ; nothing was registered");
    }
    Ok(password)
}

async fn search(cli: &Cli, client: &DaemonClient, args: &SearchArgs) -> Result<()> {
    let size = |flag: &str, v: &Option<String>| -> Result<Option<String>> {
        v.as_ref()
            .map(|s| {
                parse_bytes(s)
                    .map(|n| n.to_string())
                    .ok_or_else(|| anyhow!("--{flag} {s:?}: use a size like 700M or 1G"))
            })
            .transpose()
    };
    let mut query: Vec<(&str, String)> =
        vec![("q", args.query.clone()), ("mode", args.mode.clone())];
    if let Some(ext) = &args.ext {
        query.push(("ext", ext.trim_start_matches('.').to_string()));
    }
    if let Some(min) = size("min-size", &args.min_size)? {
        query.push(("min_size", min));
    }
    if let Some(max) = size("max-size", &args.max_size)? {
        query.push(("max_size", max));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(offset) = args.offset {
        query.push(("offset", offset.to_string()));
    }
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let v: Merged = client.get_query("/search", &query).await?;
    print_json_or(cli, &v, || {
        let mut out = String::new();
        for (source, o) in &v.origins {
            if !o.ok {
                let why = o.error.as_deref().unwrap_or("no reason given");
                out += &format!("({source} not asked: {why})\n");
            }
        }
        if v.results.is_empty() {
            return format!("{out}nothing found for {:?} on online peers", args.query);
        }
        for hit in &v.results {
            let n = hit.sources.len();
            let total = hit.sources_total.max(n);
            let count = if total > n {
                format!("{n} of {total} sources")
            } else {
                format!("{n} source{}", if n == 1 { "" } else { "s" })
            };
            out += &format!(
                "{}  ({}, {count})\n  id {}\n",
                hit.names.join(" | "),
                human_bytes(hit.size),
                hit.id,
            );
            for src in &hit.sources {
                let found_by: Vec<&str> = src
                    .found_by
                    .iter()
                    .map(|o| match o {
                        Origin::Index => "index",
                        Origin::Dht => "dht",
                        Origin::Lan => "lan",
                    })
                    .collect();
                out += &format!(
                    "  from {} ({}) via {}\n",
                    src.user.as_deref().unwrap_or("-"),
                    src.peer_id,
                    found_by.join("+")
                );
            }
        }
        out += &format!("{} of {} shown", v.results.len(), v.total);
        out
    })
}

async fn users(cli: &Cli, client: &DaemonClient, all: bool) -> Result<()> {
    let all = if all { "true" } else { "false" };
    let v: UsersList = client.get_query("/index/users", &[("all", all)]).await?;
    print_json_or(cli, &v, || {
        if v.users.is_empty() {
            return "nobody is online".into();
        }
        let online = |yes: bool| if yes { "online" } else { "offline" };
        let mut out = String::new();
        for u in &v.users {
            out += &format!("{}  {}\n", u.name, online(u.online));
            for p in &u.peers {
                out += &format!("  peer {} {}\n", p.peer_id, online(p.online));
            }
        }
        out.trim_end().to_string()
    })
}

/// A peer's addresses, the one its connection uses first (marked).
fn addresses(peer: &KnownPeer) -> String {
    let others = peer
        .addrs
        .iter()
        .filter(|a| Some(*a) != peer.remote_addr.as_ref());
    let mut all: Vec<String> = peer
        .remote_addr
        .iter()
        .map(|a| format!("{a} (in use)"))
        .collect();
    all.extend(others.cloned());
    all.join(",")
}

async fn peers(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let v: PeersView = client.get("/peers").await?;
    print_json_or(cli, &v, || {
        if v.peers.is_empty() {
            return "no known peers".into();
        }
        let mut out = format!(
            "{:<52}  {:<9}  {:<12}  {:<23}  {:<24}  ADDRESSES\n",
            "PEER", "STATE", "PATH", "LAST SEEN (UTC)", "FOUND BY"
        );
        for p in &v.peers {
            let found_by: Vec<&str> = p
                .found_by
                .iter()
                .map(|f| match f {
                    FoundBy::Index => "index",
                    FoundBy::Mdns => "mdns",
                    FoundBy::Dht => "dht",
                    FoundBy::Bootstrap => "bootstrap",
                    FoundBy::Connection => "connection",
                })
                .collect();
            out += &format!(
                "{:<52}  {:<9}  {:<12}  {:<23}  {:<24}  {}\n",
                p.peer_id,
                if p.connected { "connected" } else { "-" },
                p.path.map_or("-", connection_path),
                utc_time(p.last_seen_ms),
                found_by.join(","),
                addresses(p)
            );
        }
        out.trim_end().to_string()
    })
}

async fn audit(cli: &Cli, client: &DaemonClient, limit: u32, offset: u32) -> Result<()> {
    let (limit, offset) = (limit.to_string(), offset.to_string());
    let v: AuditPage = client
        .get_query("/index/audit", &[("limit", &limit), ("offset", &offset)])
        .await?;
    print_json_or(cli, &v, || {
        let mut out = format!(
            "{:<23}  {:<12}  {:<18}  {:<8}  DETAIL\n",
            "WHEN (UTC)", "USER", "ACTION", "OUTCOME"
        );
        for e in &v.entries {
            out += &format!(
                "{:<23}  {:<12}  {:<18}  {:<8}  {}\n",
                utc_time(e.at),
                e.user.as_deref().unwrap_or("-"),
                e.action,
                e.outcome,
                e.detail.as_deref().unwrap_or("-")
            );
        }
        out += &format!("{} entries in all", v.total);
        out
    })
}

async fn shares(cli: &Cli, client: &DaemonClient, action: Option<&SharesAction>) -> Result<()> {
    let (route, dir) = match action {
        None => {
            let v: SharesView = client.get("/shares").await?;
            return print_json_or(cli, &v, || {
                let mut out = match v.folders.is_empty() {
                    true => "no shared folder (`peershare shares add DIR`)\n".to_string(),
                    false => format!("shared folders: {}\n", v.folders.join(", ")),
                };
                if !v.online {
                    out += "OFFLINE: nobody can reach these files (`peershare online`)\n";
                }
                out + &file_table(&v.files)
            });
        }
        Some(SharesAction::Add { dir }) => ("/shares/folders", dir),
        Some(SharesAction::Remove { dir }) => ("/shares/folders/remove", dir),
    };
    // The daemon runs elsewhere: a relative path means the one from here.
    let path = std::path::absolute(dir)
        .with_context(|| format!("cannot make {} an absolute path", dir.display()))?;
    let body = FolderRequest {
        path: path.display().to_string(),
    };
    let v: FoldersChanged = client.post(route, &body).await?;
    print_json_or(cli, &v, || {
        let verb = match action {
            Some(SharesAction::Add { .. }) => "now shared",
            _ => "no longer shared",
        };
        format!(
            "{} {verb}; {} files shared from {} folder{}",
            path.display(),
            v.shared_files,
            v.folders.len(),
            if v.folders.len() == 1 { "" } else { "s" }
        )
    })
}

fn file_table(files: &[FileEntry]) -> String {
    if files.is_empty() {
        return "no shared files".into();
    }
    let mut out = format!("{:>12}  {:<64}  NAME\n", "SIZE", "ID");
    for f in files {
        out += &format!("{:>12}  {:<64}  {}\n", human_bytes(f.size), f.id, f.name);
    }
    out.trim_end().to_string()
}

async fn requests(cli: &Cli, client: &DaemonClient) -> Result<()> {
    let list: Vec<PendingRequest> = client.get("/requests").await?;
    print_json_or(cli, &list, || {
        if list.is_empty() {
            return "no requests waiting".into();
        }
        let mut out = String::new();
        for r in &list {
            out += &format!(
                "#{}  {} wants {} ({}), {} left: `peershare accept {}` or `peershare reject {}`\n",
                r.id,
                who(r.user.as_deref(), &r.peer),
                r.name,
                human_bytes(r.size),
                human_duration(r.expires_in),
                r.id,
                r.id
            );
        }
        out.trim_end().to_string()
    })
}

async fn answer(cli: &Cli, client: &DaemonClient, id: u64, verb: &str) -> Result<()> {
    let v: RequestAnswer = client
        .post(&format!("/requests/{id}/{verb}"), &json!({}))
        .await?;
    print_json_or(cli, &v, || match (v.accepted, v.granted) {
        (true, false) => format!("request {id} accepted, but all upload slots are busy"),
        (true, true) => format!("request {id} accepted"),
        _ => format!("request {id} rejected"),
    })
}

/// `peershare limits [--upload RATE] [--download RATE] [--slots N] [--peers N]`: shows the
/// limits, after changing those given.
async fn limits(
    cli: &Cli,
    client: &DaemonClient,
    (upload, download): (Option<&str>, Option<&str>),
    (slots, peers): (Option<usize>, Option<usize>),
) -> Result<()> {
    let change = LimitsRequest {
        max_upload_rate: parse_rate("upload", upload)?,
        max_download_rate: parse_rate("download", download)?,
        max_uploads: slots,
        max_upload_peers: peers,
    };
    let unchanged = change.max_upload_rate.is_none()
        && change.max_download_rate.is_none()
        && slots.is_none()
        && peers.is_none();
    let v: LimitsView = match unchanged {
        true => client.get("/limits").await?,
        false => client.post("/limits", &change).await?,
    };
    let show = |rate: Option<u64>| match rate {
        Some(r) => format!("{}/s", human_bytes(r)),
        None => "no limit".into(),
    };
    print_json_or(cli, &v, || {
        format!(
            "uploads: {}\ndownloads: {}\nupload slots: {} pieces at once, {} peers at once",
            show(v.max_upload_rate),
            show(v.max_download_rate),
            v.max_uploads,
            v.max_upload_peers
        )
    })
}

/// `peershare policy [POLICY]`: shows the policy, after changing it if one is given.
async fn policy_command(cli: &Cli, client: &DaemonClient, policy: Option<&str>) -> Result<()> {
    let policy = match policy {
        Some(name) => {
            let policy: Policy = name.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let v: PolicyChange = client.post("/policy", &PolicyChange { policy }).await?;
            v.policy
        }
        None => client.get::<StatusView>("/status").await?.policy,
    };
    let v = PolicyChange { policy };
    print_json_or(cli, &v, || match policy {
        Policy::Accept => "policy: accept (every request is granted while slots are free)".into(),
        Policy::Ask => "policy: ask (each request waits for `peershare accept N`)".into(),
        Policy::Contacts => "policy: contacts (contacts are granted, others asked)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(utc_time(1_795_376_785_155), "2026-11-22 19:46:25.155");
        assert_eq!(utc_time(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn peer_addresses_and_user_names_are_told_apart() {
        assert!(is_peer_address("/ip4/127.0.0.1/tcp/1/p2p/12D3KooWabc"));
        assert!(!is_peer_address("alice"));
        assert!(!is_peer_address("p2p/alice"));
        assert!(is_peer_id(
            "12D3KooWLxeMFhSVvLMqxg1DwSBMDiMB8uh93yBewqQpY4aytK4w"
        ));
        assert!(!is_peer_id("alice"));
        assert!(!is_peer_id(
            "12D3KooW has spaces in it, so it is a user name ok"
        ));
        assert_eq!(url_segment("a b/../c"), "a%20b%2F..%2Fc");
        assert!(looks_like_an_address("/ip4/10.0.0.2/tcp/1100"));
        assert!(looks_like_an_address("10.0.0.2:1100"));
        assert!(looks_like_an_address("[::1]:1100"));
        assert!(!looks_like_an_address("alice"));
        assert!(!looks_like_an_address("aula 1.mp4"));
        assert!(!looks_like_an_address("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWabc"));
    }
}
