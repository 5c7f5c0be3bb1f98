//! What only the index's admins may do: read the audit log.

use axum::extract::State;
use axum::Json;

use crate::audit::{audited, Action, AuditEntry, AuditEvent, AuditPage, AuditQuery};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, ClientAddr};
use crate::state::AppState;
use crate::validate;

/// Read the audit log (admins only).
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the log, newest first", body = AuditPage),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub async fn list_audit(
    user: AuthUser,
    client: ClientAddr,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let event = AuditEvent::new(Action::ReadAudit, client).user(&user.name);
    audited(state.audit(), event, async {
        if !state.config().admins.iter().any(|a| a == &user.name) {
            return Err(ApiError::Forbidden(
                "only admins can read the audit log; ask the index operator to add you with --admin".into(),
            ));
        }
        let limit = validate::limit(query.limit, 100, 1000)?;
        let offset = i64::from(query.offset.unwrap_or(0));
        let (rows, total) = state.store().audit_page(offset, limit).await?;
        Ok(Json(AuditPage {
            total,
            offset,
            entries: rows
                .into_iter()
                .map(|r| AuditEntry {
                    id: r.id,
                    at: r.at,
                    user: r.user_name,
                    peer_id: r.peer_id,
                    action: r.action,
                    outcome: r.outcome,
                    detail: r.detail,
                    client: r.client,
                })
                .collect(),
        }))
    })
    .await
}
