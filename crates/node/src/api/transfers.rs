//! Handlers for transfers: starting downloads (by address, name, id or
//! link) and controlling them, uploads, requests waiting for the person,
//! and the events stream.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use peershare_core::FileId;

use super::body::ApiJson;
use super::ApiState;
use crate::discovery;
use crate::node::Node;
use crate::views::{
    ApiError, CleanReport, DownloadRateRequest, DownloadView, Event, GetAnswer, GetRequest,
    LimitsRequest, LimitsView, OpenedFolder, PendingRequest, PolicyChange, RequestAnswer,
    UploadView,
};
use crate::NodeError;

/// Every download, newest first.
#[utoipa::path(get, path = "/downloads", tag = "transfers",
    responses((status = 200, body = Vec<DownloadView>)))]
pub(super) async fn list_downloads(
    State(s): State<ApiState>,
) -> Result<Json<Vec<DownloadView>>, NodeError> {
    let mut downloads = s.node.downloads.list().await?;
    for download in &mut downloads {
        name_sources(&s.node, download).await;
    }
    Ok(Json(downloads))
}

/// Starts a download: from one peer (`peer`), or by name, id or link sources.
#[utoipa::path(post, path = "/downloads", tag = "transfers", request_body = GetRequest,
    responses(
        (status = 201, description = "A download started (or resumed)", body = GetAnswer),
        (status = 200, description = "Attached to a running download, or the file is already here", body = GetAnswer),
        (status = 404, description = "Nobody known shares it", body = ApiError),
    ))]
pub(super) async fn start_download(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<GetRequest>,
) -> Result<(StatusCode, Json<GetAnswer>), NodeError> {
    let answer = get(&s.node, &body).await?;
    let status = match answer {
        GetAnswer::Started { .. } => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(answer)))
}

async fn get(node: &Node, body: &GetRequest) -> Result<GetAnswer, NodeError> {
    let downloads = &node.downloads;
    let (again, options) = (body.again, body.options);
    match (&body.peer, body.file.parse::<FileId>()) {
        (Some(peer), _) => downloads.start(peer, &body.file, again, options).await,
        (None, Ok(id)) => {
            if !body.sources.is_empty() {
                match downloads
                    .start_from_any(&body.sources, &id, again, options)
                    .await
                {
                    Ok(answer) => return Ok(answer),
                    Err(e) => tracing::info!("no source of the link answered ({e}); searching"),
                }
            }
            let holders = discovery::search::holders_of(node.reach(), &id).await?;
            downloads
                .start_from_any(&holders, &id, again, options)
                .await
        }
        (None, Err(_)) => {
            // One's own shared file (a first run's `get`): say where it is.
            if let Some(file) = (!again)
                .then(|| node.shares.find(&body.file).ok())
                .flatten()
            {
                return Ok(GetAnswer::AlreadyHere {
                    file_id: file.id(),
                    path: file.path.display().to_string(),
                });
            }
            let (id, sources) = discovery::search::locate(node.reach(), &body.file).await?;
            downloads
                .start_from_any(&sources, &id, again, options)
                .await
        }
    }
}

/// One download.
#[utoipa::path(get, path = "/downloads/{id}", tag = "transfers",
    params(("id" = i64, Path, description = "The download's number")),
    responses(
        (status = 200, body = DownloadView),
        (status = 404, body = ApiError),
    ))]
pub(super) async fn one_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<DownloadView>, NodeError> {
    match s.node.downloads.get(id).await? {
        Some(mut view) => {
            name_sources(&s.node, &mut view).await;
            Ok(Json(view))
        }
        None => Err(NodeError::NotFound(format!(
            "no download number {id}; `peershare downloads` lists them"
        ))),
    }
}

/// Forgets a finished, failed or cancelled download (never the file).
#[utoipa::path(delete, path = "/downloads/{id}", tag = "transfers",
    params(("id" = i64, Path, description = "The download's number")),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 400, description = "Still running: cancel it first", body = ApiError),
        (status = 404, body = ApiError),
    ))]
pub(super) async fn remove_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, NodeError> {
    s.node.downloads.remove(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets one download's own rate limit (under the global one), at once.
#[utoipa::path(post, path = "/downloads/{id}/rate", tag = "transfers", request_body = DownloadRateRequest,
    params(("id" = i64, Path, description = "The download's number")),
    responses((status = 200, body = DownloadView), (status = 404, body = ApiError)))]
pub(super) async fn rate_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<DownloadRateRequest>,
) -> Result<Json<DownloadView>, NodeError> {
    Ok(Json(s.node.downloads.set_rate(id, body.max_rate).await?))
}

/// Stops a download, keeping its verified pieces.
#[utoipa::path(post, path = "/downloads/{id}/pause", tag = "transfers",
    params(("id" = i64, Path, description = "The download's number")),
    responses((status = 200, body = DownloadView), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn pause_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<DownloadView>, NodeError> {
    Ok(Json(s.node.downloads.pause(id).await?))
}

/// Continues a paused, queued or failed download from its verified pieces.
#[utoipa::path(post, path = "/downloads/{id}/resume", tag = "transfers",
    params(("id" = i64, Path, description = "The download's number")),
    responses((status = 200, body = DownloadView), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn resume_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<DownloadView>, NodeError> {
    Ok(Json(s.node.downloads.resume(id).await?))
}

/// Stops a download and deletes its partial file.
#[utoipa::path(post, path = "/downloads/{id}/cancel", tag = "transfers",
    params(("id" = i64, Path, description = "The download's number")),
    responses((status = 200, body = DownloadView), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub(super) async fn cancel_download(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<DownloadView>, NodeError> {
    Ok(Json(s.node.downloads.cancel(id).await?))
}

/// Deletes every partial file that no download owns.
#[utoipa::path(post, path = "/downloads/clean", tag = "transfers",
    responses((status = 200, body = CleanReport)))]
pub(super) async fn clean_downloads(
    State(s): State<ApiState>,
) -> Result<Json<CleanReport>, NodeError> {
    Ok(Json(s.node.downloads.clean().await?))
}

/// The rate limits in force.
#[utoipa::path(get, path = "/limits", tag = "transfers",
    responses((status = 200, body = LimitsView)))]
pub(super) async fn limits(State(s): State<ApiState>) -> Json<LimitsView> {
    Json(s.node.limits())
}

/// Changes the upload and download rate limits now, for every transfer; they
/// are remembered for the next start unless `up` is given limits of its own.
#[utoipa::path(post, path = "/limits", tag = "transfers", request_body = LimitsRequest,
    responses((status = 200, body = LimitsView), (status = 500, body = ApiError)))]
pub(super) async fn set_limits(
    State(s): State<ApiState>,
    ApiJson(change): ApiJson<LimitsRequest>,
) -> Result<Json<LimitsView>, NodeError> {
    Ok(Json(s.node.set_limits(change).await?))
}

/// Changes what is done with transfer requests from now on; remembered
/// for the next start unless `up` is given `--policy`.
#[utoipa::path(post, path = "/policy", tag = "transfers", request_body = PolicyChange,
    responses((status = 200, body = PolicyChange), (status = 400, body = ApiError)))]
pub(super) async fn set_policy(
    State(s): State<ApiState>,
    ApiJson(change): ApiJson<PolicyChange>,
) -> Result<Json<PolicyChange>, NodeError> {
    let policy = s.node.set_policy(change.policy).await?;
    Ok(Json(PolicyChange { policy }))
}

/// Opens the folder holding a download in the file manager of the daemon's machine.
#[utoipa::path(post, path = "/downloads/{id}/open", tag = "transfers",
    params(("id" = i64, Path, description = "The download's number")),
    responses(
        (status = 200, description = "A file manager was started on the folder", body = OpenedFolder),
        (status = 404, body = ApiError),
        (status = 409, description = "Nothing could open it here; the message says where the folder is", body = ApiError),
    ))]
pub(super) async fn open_folder(
    State(s): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<OpenedFolder>, NodeError> {
    let download = s
        .node
        .downloads
        .get(id)
        .await?
        .ok_or_else(|| NodeError::NotFound(format!("there is no download {id}")))?;
    let folder = download
        .record
        .path
        .as_deref()
        .and_then(|p| std::path::Path::new(p).parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| s.node.downloads_dir.clone());
    let path = folder.display().to_string();
    if s.reach != crate::ui::Reach::Loopback {
        return Err(NodeError::Refused(format!(
            "the folder is on the daemon's machine, not yours: {path}"
        )));
    }
    if !crate::ui::desktop::open(folder.as_os_str(), None) {
        return Err(NodeError::Refused(format!(
            "no file manager could be started on this machine; the folder is {path}"
        )));
    }
    Ok(Json(OpenedFolder { path }))
}

/// Who is downloading what from this peer now.
#[utoipa::path(get, path = "/uploads", tag = "transfers",
    responses((status = 200, body = Vec<UploadView>)))]
pub(super) async fn uploads(State(s): State<ApiState>) -> Json<Vec<UploadView>> {
    let mut running = s.node.uploads.list();
    for upload in &mut running {
        upload.user = user_of(&s.node, &upload.peer).await;
    }
    Json(running)
}

/// Transfer requests waiting for the person's answer (policy `ask`).
#[utoipa::path(get, path = "/requests", tag = "transfers",
    responses((status = 200, body = Vec<PendingRequest>)))]
pub(super) async fn requests(State(s): State<ApiState>) -> Json<Vec<PendingRequest>> {
    let mut pending = s.node.gate.pending();
    for request in &mut pending {
        request.user = user_of(&s.node, &request.peer).await;
    }
    Json(pending)
}

/// Fills in the user names of a download's sources.
async fn name_sources(node: &Node, download: &mut DownloadView) {
    for source in &mut download.peers {
        source.user = user_of(node, &source.peer_id).await;
    }
}

/// The user name the index gives a peer, if the daemon has an index and it knows one.
async fn user_of(node: &Node, peer_id: &str) -> Option<String> {
    node.index.as_ref()?.user_of(peer_id).await
}

/// Accepts a waiting request.
#[utoipa::path(post, path = "/requests/{id}/accept", tag = "transfers",
    params(("id" = u64, Path, description = "The request's number")),
    responses((status = 200, body = RequestAnswer), (status = 404, body = ApiError)))]
pub(super) async fn accept(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<Json<RequestAnswer>, NodeError> {
    answer(&s, id, true).await
}

/// Rejects a waiting request.
#[utoipa::path(post, path = "/requests/{id}/reject", tag = "transfers",
    params(("id" = u64, Path, description = "The request's number")),
    responses((status = 200, body = RequestAnswer), (status = 404, body = ApiError)))]
pub(super) async fn reject(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<Json<RequestAnswer>, NodeError> {
    answer(&s, id, false).await
}

async fn answer(s: &ApiState, id: u64, accept: bool) -> Result<Json<RequestAnswer>, NodeError> {
    let response = s.node.gate.answer(id, accept).ok_or_else(|| {
        NodeError::NotFound(format!(
            "no request number {id} is waiting (answered or timed out); `peershare requests` lists them"
        ))
    })?;
    let granted = matches!(
        response,
        peershare_core::wire::control::TransferResponse::Granted { .. }
    );
    s.node.host.answer(id, response).await?;
    Ok(Json(RequestAnswer {
        id,
        accepted: accept,
        granted,
    }))
}

/// Server-Sent Events: one `data:` line of JSON (an `Event`) per change, from now on.
#[utoipa::path(get, path = "/events", tag = "transfers",
    responses(
        (status = 200, description = "A stream of events", content_type = "text/event-stream", body = Event),
        (status = 503, description = "Too many event streams are open", body = ApiError),
    ))]
pub(super) async fn events(
    State(s): State<ApiState>,
) -> Result<Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>>, NodeError> {
    let subscription = s.node.bus.subscribe_bounded().ok_or_else(|| {
        NodeError::Busy(format!(
            "{} event streams are open already, the most the daemon serves; close one",
            crate::events::MAX_STREAMS
        ))
    })?;
    let stream = futures::stream::unfold(subscription, |mut sub| async move {
        let event = sub.next().await?;
        let sse = SseEvent::default()
            .id(event.seq.to_string())
            .json_data(&event)
            .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
        Some((Ok(sse), sub))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
