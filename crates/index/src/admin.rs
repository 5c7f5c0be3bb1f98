//! What only the index's admins may do: read the audit log; and who they
//! are ([`AdminNames`]).
//!
//! Admin rights belong to an account, not to a name. Each configured admin
//! name (`--admin NAME`) is bound, in the store, to the account that held
//! it when the index first ran with the setting, or else to the first
//! account to register it afterwards. Only that account is an admin. When
//! it is deleted the binding stays, so the name stays reserved: registering
//! it again is refused until the operator drops the name from the settings,
//! runs the index once, and adds it back (which binds it afresh). A new
//! account that merely has the same name, or one that looks the same, never
//! inherits the rights.

use axum::extract::State;
use axum::Json;

use crate::audit::{audited, Action, AuditEntry, AuditEvent, AuditPage, AuditQuery};
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, ClientAddr};
use crate::state::AppState;
use crate::store::{now_ms, Store};
use crate::validate;

/// The configured admin names (normalised like user names) and whether the
/// store's bindings were brought in line with them since the index started.
#[derive(Clone, Debug)]
pub struct AdminNames {
    names: Arc<[String]>,
    synced: Arc<OnceCell<()>>,
}

impl AdminNames {
    /// The admin names of the settings, synced with `store` in the
    /// background right away when called inside a Tokio runtime (so a name
    /// dropped from the settings is released even if no one asks).
    pub fn start(configured: &[String], store: &Store) -> Self {
        let admins = Self {
            names: configured
                .iter()
                .map(|n| validate::user_name_key(n))
                .collect(),
            synced: Arc::default(),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (admins, store) = (admins.clone(), store.clone());
            runtime.spawn(async move {
                if let Err(e) = admins.sync(&store).await {
                    tracing::warn!("could not sync the admin accounts with the settings: {e}");
                }
            });
        }
        admins
    }

    /// Whether `name` (normalised) is a configured admin name.
    pub fn configured(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Syncs the store's bindings with the settings, once per process
    /// (at start, and before any admin decision that comes first).
    pub async fn sync(&self, store: &Store) -> Result<(), ApiError> {
        self.synced
            .get_or_try_init(|| async {
                store
                    .sync_admins(&self.names, now_ms(), validate::user_name_skeleton)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Whether `user` is an admin: their name is configured and bound to their account.
    pub async fn is_admin(&self, store: &Store, user: &AuthUser) -> Result<bool, ApiError> {
        if !self.configured(&user.name) {
            return Ok(false);
        }
        self.sync(store).await?;
        Ok(store.admin_account(&user.name).await? == Some(user.id))
    }
}

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
        if !state.admins().is_admin(state.store(), &user).await? {
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
