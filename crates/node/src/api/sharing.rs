//! Handlers for this peer's own side: status, shared folders and files,
//! sharing online or offline, rescans and share links.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::body::ApiJson;
use super::ApiState;
use crate::index_link::IndexLink;
use crate::node::Node;
use crate::share::RescanReport;
use crate::views::{
    ApiError, FileEntry, FolderRequest, FoldersChanged, LinkView, SharesView, SharingRequest,
    StatusView,
};
use crate::NodeError;

/// This peer: id, addresses, shares, policy, index membership.
#[utoipa::path(get, path = "/status", tag = "sharing",
    responses((status = 200, body = StatusView)))]
pub(super) async fn status(State(s): State<ApiState>) -> Json<StatusView> {
    let node = &s.node;
    Json(StatusView {
        peer_id: node.host.peer_id().to_string(),
        addrs: node.host.addrs().iter().map(|a| a.to_string()).collect(),
        data_port: node.data_port,
        shares: folder_names(node),
        shared_files: node.shares.len(),
        sharing_online: node.shares.is_online(),
        downloads_dir: node.downloads_dir.display().to_string(),
        policy: node.gate.policy(),
        max_uploads: node.gate.capacity().0,
        max_upload_peers: node.gate.capacity().1,
        uploads_running: node.gate.busy_slots(),
        index: node.index.as_ref().map(IndexLink::status),
        kept_letters: node.messenger.kept_letters().await,
        share_problems: node.shares.problems(),
        reachability: Some(node.host.reachability().view()),
    })
}

/// The shared folders and every shared file.
#[utoipa::path(get, path = "/shares", tag = "sharing",
    responses((status = 200, body = SharesView)))]
pub(super) async fn shares(State(s): State<ApiState>) -> Json<SharesView> {
    let (files, total) = s.node.shares.page(0, u32::MAX, &Default::default());
    Json(SharesView {
        online: s.node.shares.is_online(),
        folders: folder_names(&s.node),
        files: files.into_iter().map(FileEntry::from).collect(),
        total,
    })
}

fn folder_names(node: &Node) -> Vec<String> {
    let roots = node.shares.roots();
    roots.iter().map(|p| p.display().to_string()).collect()
}

/// Shares a folder now (remembered across restarts).
#[utoipa::path(post, path = "/shares/folders", tag = "sharing", request_body = FolderRequest,
    responses(
        (status = 200, body = FoldersChanged),
        (status = 400, description = "Not a folder, already shared, or holds the data folder", body = ApiError),
    ))]
pub(super) async fn add_folder(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<FolderRequest>,
) -> Result<Json<FoldersChanged>, NodeError> {
    let path = std::path::Path::new(&body.path);
    let report = s.node.shares.add_folder(path, &s.node.data_dir).await?;
    Ok(folders_changed(&s.node, report))
}

/// Stops sharing a folder now; its files leave the index and the DHT.
#[utoipa::path(post, path = "/shares/folders/remove", tag = "sharing", request_body = FolderRequest,
    responses(
        (status = 200, body = FoldersChanged),
        (status = 404, description = "Not a shared folder", body = ApiError),
    ))]
pub(super) async fn remove_folder(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<FolderRequest>,
) -> Result<Json<FoldersChanged>, NodeError> {
    let path = std::path::Path::new(&body.path);
    let report = s.node.shares.remove_folder(path).await?;
    Ok(folders_changed(&s.node, report))
}

fn folders_changed(node: &Node, report: RescanReport) -> Json<FoldersChanged> {
    Json(FoldersChanged {
        folders: folder_names(node),
        shared_files: report.shared_files,
        hashed: report.hashed,
    })
}

/// Offers every file to the network, or withdraws them all (remembered across restarts).
#[utoipa::path(post, path = "/sharing", tag = "sharing", request_body = SharingRequest,
    responses((status = 200, body = SharingRequest)))]
pub(super) async fn set_sharing(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<SharingRequest>,
) -> Result<Json<SharingRequest>, NodeError> {
    s.node.set_sharing(body.online).await?;
    Ok(Json(SharingRequest {
        online: s.node.shares.is_online(),
    }))
}

/// Rescans the shared folders now.
#[utoipa::path(post, path = "/rescan", tag = "sharing",
    responses((status = 200, body = RescanReport)))]
pub(super) async fn rescan(State(s): State<ApiState>) -> Result<Json<RescanReport>, NodeError> {
    Ok(Json(s.node.shares.rescan().await?))
}

/// Which file a link is for.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LinkQuery {
    /// A shared file's id, shared name, or absolute path.
    file: String,
    /// Put this peer's addresses in the link.
    #[serde(default)]
    with_addrs: bool,
}

/// A `peershare:` link to one shared file.
#[utoipa::path(get, path = "/link", tag = "sharing", params(LinkQuery),
    responses(
        (status = 200, body = LinkView),
        (status = 404, description = "No shared file by that id, name or path", body = ApiError),
    ))]
pub(super) async fn share_link(
    State(s): State<ApiState>,
    Query(q): Query<LinkQuery>,
) -> Result<Json<LinkView>, NodeError> {
    let file = s.node.shares.find(&q.file)?;
    let sources = match q.with_addrs {
        true => s.node.host.addrs().iter().map(|a| a.to_string()).collect(),
        false => Vec::new(),
    };
    let link = peershare_core::link::ShareLink {
        id: file.id(),
        name: Some(file.name.clone()),
        size: Some(file.size),
        sources,
    };
    Ok(Json(LinkView {
        uri: link.to_uri(),
        file_id: file.id(),
        name: file.name,
        size: file.size,
    }))
}
