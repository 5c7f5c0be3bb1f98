//! Who is on the network and what they share: the users list (online users
//! and their online peers by default, everyone with `all=true`), one user's
//! peers with their presence and messaging key cards (to seal letters to
//! them), the user owning a peer id, and browsing one user's shared files.
//!
//! This module only reads; it never shows anything but names, peer ids,
//! addresses, presence, key cards and shared file entries (no account data).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::{now_ms, PeerRow, UserPeerRow};
use crate::validate;

/// Whether to include offline users, peers and files.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersParams {
    /// `true` to include offline users and peers (default `false`).
    pub all: Option<bool>,
}

/// Paging and scope of a browse.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrowseParams {
    /// `true` to include files of offline peers (default `false`).
    pub all: Option<bool>,
    /// Entries to skip (default 0).
    pub offset: Option<u32>,
    /// Entries per page (1–5000, default 1000).
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<u32>,
}

/// A peer as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// Where to reach it.
    pub addrs: Vec<String>,
    /// Whether it counts as online now.
    pub online: bool,
    /// Last join or heartbeat, in milliseconds since the Unix epoch.
    pub last_seen: i64,
}

/// A user with their peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Whether any of their peers is online.
    pub online: bool,
    /// Their peers (online ones only unless `all=true`).
    pub peers: Vec<PeerInfo>,
}

/// The users list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsersList {
    /// Users ordered by name.
    pub users: Vec<UserInfo>,
}

/// A peer of a user with its messaging key card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserPeer {
    /// libp2p peer id.
    pub peer_id: String,
    /// Where to reach it (as of its last join).
    pub addrs: Vec<String>,
    /// Whether it counts as online now.
    pub online: bool,
    /// Last join or heartbeat, in milliseconds since the Unix epoch.
    pub last_seen: i64,
    /// Its signed messaging key card (base64, opaque to the index), if its last join sent one.
    pub message_key: Option<String>,
}

/// Every peer a user ever joined, with presence and key cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserPeers {
    /// The user.
    pub user: String,
    /// Whether any of their peers is online.
    pub online: bool,
    /// The latest `last_seen` of their peers (none if they never joined one), in ms.
    pub last_seen: Option<i64>,
    /// Online peers first, then most recently seen first.
    pub peers: Vec<UserPeer>,
}

/// One entry of a user's shared files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SharedFile {
    /// BLAKE3 id.
    pub id: String,
    /// Name on that peer.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// The peer sharing it.
    pub peer_id: String,
    /// Whether that peer is online now.
    pub online: bool,
}

/// A page of one user's shared files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserFiles {
    /// The user.
    pub user: String,
    /// Entries skipped.
    pub offset: i64,
    /// This page, ordered by name.
    pub files: Vec<SharedFile>,
}

/// The user a peer belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerOwner {
    /// libp2p peer id.
    pub peer_id: String,
    /// The user whose account joined it.
    pub user: String,
    /// Whether it counts as online now.
    pub online: bool,
}

/// Who owns a peer id (a sharer shows the user name of a peer downloading from it).
#[utoipa::path(get, path = "/peers/{peer_id}", tag = "peers",
    params(("peer_id" = String, Path, description = "The peer's libp2p id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user owning the peer", body = PeerOwner),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No peer with this id ever joined", body = ErrorBody),
    ))]
pub async fn peer_owner(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiPath(peer_id): ApiPath<String>,
) -> Result<Json<PeerOwner>, ApiError> {
    let cutoff = state.online_cutoff(now_ms());
    let (user, peer) = state
        .store()
        .peer_with_user(&peer_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no peer {:?} ever joined this index",
                validate::truncated(&peer_id)
            ))
        })?;
    Ok(Json(PeerOwner {
        online: peer.online(cutoff),
        peer_id: peer.peer_id,
        user,
    }))
}

fn peer_info(p: PeerRow, cutoff: i64) -> PeerInfo {
    PeerInfo {
        online: p.online(cutoff),
        addrs: serde_json::from_str(&p.addrs_json).unwrap_or_default(),
        peer_id: p.peer_id,
        last_seen: p.last_seen,
    }
}

fn user_peer(row: UserPeerRow, cutoff: i64) -> UserPeer {
    let info = peer_info(row.peer, cutoff);
    UserPeer {
        peer_id: info.peer_id,
        addrs: info.addrs,
        online: info.online,
        last_seen: info.last_seen,
        message_key: row.message_key,
    }
}

/// List online users and their peers (everyone with `all=true`).
#[utoipa::path(get, path = "/users", tag = "users", params(UsersParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Users ordered by name", body = UsersList),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiQuery(params): ApiQuery<UsersParams>,
) -> Result<Json<UsersList>, ApiError> {
    let all = params.all.unwrap_or(false);
    let cutoff = state.online_cutoff(now_ms());
    let rows = state.store().users_with_peers(cutoff, all).await?;
    let mut users: Vec<UserInfo> = Vec::new();
    for (name, peer) in rows {
        if users.last().is_none_or(|u| u.name != name) {
            users.push(UserInfo {
                name,
                online: false,
                peers: Vec::new(),
            });
        }
        let user = users.last_mut().expect("pushed above");
        if let Some(peer) = peer {
            let info = peer_info(peer, cutoff);
            user.online |= info.online;
            user.peers.push(info);
        }
    }
    Ok(Json(UsersList { users }))
}

/// Browse one user's shared files (online peers only unless `all=true`).
#[utoipa::path(get, path = "/users/{name}/files", tag = "users",
    params(("name" = String, Path, description = "The user's name (compared in its NFKC form)"), BrowseParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the user's files, ordered by name", body = UserFiles),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn user_files(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<BrowseParams>,
) -> Result<Json<UserFiles>, ApiError> {
    let name = validate::user_name_key(&name);
    let limit = validate::limit(params.limit, 1000, 5000)?;
    let offset = i64::from(params.offset.unwrap_or(0));
    let cutoff = state.online_cutoff(now_ms());
    let rows = state
        .store()
        .user_files(&name, cutoff, params.all.unwrap_or(false), offset, limit)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "there is no user {:?}; list users with GET /api/v1/users?all=true",
                validate::truncated(&name)
            ))
        })?;
    Ok(Json(UserFiles {
        user: name,
        offset,
        files: rows
            .into_iter()
            .map(|r| SharedFile {
                online: r.peer.online(cutoff),
                id: r.file.file_id,
                name: r.file.name,
                size: r.file.size,
                peer_id: r.peer.peer_id,
            })
            .collect(),
    }))
}

/// One user's peers, online or not, with their messaging key cards (to seal letters to them).
#[utoipa::path(get, path = "/users/{name}/peers", tag = "users",
    params(("name" = String, Path, description = "The user's name (compared in its NFKC form)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every peer the user ever joined, online ones first", body = UserPeers),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn user_peers(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<UserPeers>, ApiError> {
    let name = validate::user_name_key(&name);
    let cutoff = state.online_cutoff(now_ms());
    let rows = state
        .store()
        .user_peers(&name, cutoff)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "there is no user {:?}; list users with GET /api/v1/users?all=true",
                validate::truncated(&name)
            ))
        })?;
    let peers: Vec<UserPeer> = rows.into_iter().map(|r| user_peer(r, cutoff)).collect();
    Ok(Json(UserPeers {
        user: name,
        online: peers.iter().any(|p| p.online),
        last_seen: peers.iter().map(|p| p.last_seen).max(),
        peers,
    }))
}
