//! Publishing and unpublishing single files of a joined peer without
//! re-joining, including the announcement of a finished download (a publish
//! with `"reason": "download"`, so the downloader becomes a source).
//!
//! This module checks every file entry (name, size, id) before it reaches the
//! store and never lets a user change another user's peer.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{audited_write, Action, AuditEvent};
use crate::auth::AuthUser;
use crate::cluster::Change;
use crate::error::{refused, ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ClientAddr};
use crate::gate::ListSlot;
use crate::search;
use crate::state::AppState;
use crate::store::FileRow;
use crate::validate;

/// One shared file as a peer announces it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileInput {
    /// The file's name (1–1024 bytes, no control characters).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The file's BLAKE3 id, 64 hex digits (what `b3sum` prints).
    pub id: String,
}

/// Why files are published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PublishReason {
    /// New or changed files in a shared folder.
    #[default]
    Share,
    /// A download finished; the downloader is now a source.
    Download,
}

/// Files to add to (or update on) a joined peer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublishRequest {
    /// The files.
    pub files: Vec<FileInput>,
    /// `share` (default) or `download`.
    #[serde(default)]
    pub reason: PublishReason,
}

/// The result of a publish.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Published {
    /// The peer.
    pub peer_id: String,
    /// Entries added or updated.
    pub files: usize,
}

/// Checks a file list and turns it into store rows, dropping exact duplicates.
pub fn check_files(files: &[FileInput]) -> Result<Vec<FileRow>, ApiError> {
    let mut seen = HashSet::with_capacity(files.len());
    let mut rows = Vec::with_capacity(files.len());
    for f in files {
        let name = validate::file_name(&f.name)?;
        let file_id = validate::file_id(&f.id)?;
        let size = validate::file_size(f.size)?;
        if seen.insert((file_id.clone(), name.to_string())) {
            rows.push(FileRow {
                ext: validate::extension_of(name),
                file_id,
                name: name.to_string(),
                size,
            });
        }
    }
    Ok(rows)
}

/// Add or update files of one of your joined peers.
#[utoipa::path(post, path = "/peers/{peer_id}/files", tag = "files", request_body = PublishRequest,
    params(("peer_id" = String, Path, description = "The peer's libp2p id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Published", body = Published),
        (status = 400, description = "Bad file entry", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not your peer", body = ErrorBody),
        (status = 404, description = "Peer never joined", body = ErrorBody),
        (status = 409, description = "The peer left; join again", body = ErrorBody),
        (status = 413, description = "File list too large", body = ErrorBody),
        (status = 422, description = "Missing fields or wrong types", body = ErrorBody),
        (status = 429, description = "The user would list more files than one user may (listing_quota)", body = ErrorBody),
        (status = 503, description = "Busy with other joins and publishes; retry after Retry-After seconds", body = ErrorBody),
    ))]
pub async fn publish(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    _slot: ListSlot,
    ApiPath(peer_id): ApiPath<String>,
    ApiJson(body): ApiJson<PublishRequest>,
) -> Result<Json<Published>, ApiError> {
    let action = match body.reason {
        PublishReason::Share => Action::Publish,
        PublishReason::Download => Action::DownloadAnnounced,
    };
    let detail = match body.files.as_slice() {
        [one] => one.id.clone(),
        many => format!("{} files", many.len()),
    };
    let event = AuditEvent::new(action, client)
        .user(&user.name)
        .peer(&validate::truncated(&peer_id))
        .detail(detail);
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let peer_id = validate::peer_id(&peer_id)?.to_string();
        let rows = check_files(&body.files)?;
        search::room_for_files(&state, &user.name, &peer_id, rows.len(), false)?;
        state
            .store()
            .publish(
                user.id,
                &peer_id,
                &rows,
                &audit,
                &state.cluster().notice(Change::Peer(&peer_id)),
            )
            .await?
            .map_err(refused(&peer_id))?;
        search::searchable(state.catalogue().publish(&peer_id, &rows)).await?;
        Ok(Json(Published {
            peer_id,
            files: rows.len(),
        }))
    })
    .await
}

/// Remove a file (under every name) from one of your peers.
#[utoipa::path(delete, path = "/peers/{peer_id}/files/{file_id}", tag = "files",
    params(
        ("peer_id" = String, Path, description = "The peer's libp2p id"),
        ("file_id" = String, Path, description = "The file's BLAKE3 id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Bad peer or file id", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not your peer", body = ErrorBody),
        (status = 404, description = "The peer does not list this file", body = ErrorBody),
    ))]
pub async fn unpublish(
    State(state): State<AppState>,
    client: ClientAddr,
    user: AuthUser,
    ApiPath((peer_id, file_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let event = AuditEvent::new(Action::Unpublish, client)
        .user(&user.name)
        .peer(&validate::truncated(&peer_id))
        .detail(validate::truncated(&file_id));
    let audit = event.ok_row();
    audited_write(state.audit(), event, async {
        let peer_id = validate::peer_id(&peer_id)?.to_string();
        let file_id = validate::file_id(&file_id)?;
        let removed = state
            .store()
            .unpublish(
                user.id,
                &peer_id,
                &file_id,
                &audit,
                &state
                    .cluster()
                    .notice(Change::Unpublished(&peer_id, &file_id)),
            )
            .await?
            .map_err(refused(&peer_id))?;
        state.catalogue().unpublish(&peer_id, &file_id);
        if removed == 0 {
            return Err(ApiError::NotFound(format!(
                "peer {peer_id} does not list file {file_id}; nothing changed"
            )));
        }
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
