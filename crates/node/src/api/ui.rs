//! The web UI's HTTP side: the page and its files, logging in with a
//! one-time link or the UI password, logging out, and the session's CSRF
//! token for the page's scripts. What a request may do is decided before
//! these handlers run (`access`); they only open and end sessions.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::{cookie_name, has_token, session_id};
use super::{error, ApiState};
use crate::ui::assets::{asset, fingerprint};
use crate::ui::sessions::SESSION_IDLE;
use crate::ui::{NewSession, Reach, Refusal};
use crate::views::ApiError;

/// What the page needs to know about its own session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UiSessionView {
    /// The token to send as `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    /// Whether this listener is reached from beyond this machine (`--ui-listen`).
    pub remote: bool,
    /// Whether a UI password is set (then the login page also takes it).
    pub password_set: bool,
}

/// A fresh login link for the web UI.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UiLinkView {
    /// Open this in a browser on this machine; it works once.
    pub url: String,
    /// Seconds the link stays valid if unused.
    pub expires_in_secs: u64,
}

/// The web UI's session for the calling page: its CSRF token.
#[utoipa::path(get, path = "/ui/session", tag = "ui",
    responses(
        (status = 200, body = UiSessionView),
        (status = 401, description = "No session: called with the API token, not from a logged-in page", body = ApiError),
    ))]
pub(super) async fn session(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let csrf = session_id(&headers, s.port).and_then(|id| s.ui.sessions.touch(&id));
    match csrf {
        Some(csrf_token) => Json(UiSessionView {
            csrf_token,
            remote: s.reach != Reach::Loopback,
            password_set: s.ui.password.is_set(),
        })
        .into_response(),
        None => error(
            StatusCode::UNAUTHORIZED,
            "no_session",
            "this call belongs to a logged-in web page; the API token has no UI session",
        ),
    }
}

/// A one-time login link for a browser on this machine (what `peershare ui` opens).
#[utoipa::path(post, path = "/ui/link", tag = "ui",
    responses(
        (status = 200, body = UiLinkView),
        (status = 403, description = "Asked by a web page rather than with the API token", body = ApiError),
    ))]
pub(super) async fn new_link(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if !has_token(&headers, &s.token) {
        return error(
            StatusCode::FORBIDDEN,
            "token_required",
            "login links are given only to holders of the API token (`peershare ui`)",
        );
    }
    Json(UiLinkView {
        url: login_url(s.local_addr, &s.ui.sessions.mint_code()),
        expires_in_secs: crate::ui::sessions::CODE_LIFETIME.as_secs(),
    })
    .into_response()
}

/// The URL that logs a browser in with `code` on the listener at `addr`.
pub fn login_url(addr: SocketAddr, code: &str) -> String {
    format!("http://{addr}/login?code={code}")
}

/// The page itself (the guard let only logged-in browsers through).
pub(super) async fn page() -> Response {
    serve_asset("index.html", None)
}

/// The icon, where browsers look for it unasked.
pub(super) async fn favicon(headers: HeaderMap) -> Response {
    serve_asset("icon.svg", headers.get(header::IF_NONE_MATCH))
}

/// One of the page's files.
pub(super) async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve_asset(&path, headers.get(header::IF_NONE_MATCH))
}

fn serve_asset(path: &str, if_none_match: Option<&HeaderValue>) -> Response {
    let Some(asset) = asset(path) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("the web UI has no file {path}"),
        );
    };
    let etag = format!("\"{}\"", fingerprint());
    let cache = [
        (header::CACHE_CONTROL, "no-cache".to_string()),
        (header::ETAG, etag.clone()),
    ];
    if if_none_match.is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, asset.content_type)],
        asset.bytes,
    )
        .into_response()
}

/// `GET /login?code=…`: the link `up` and `peershare ui` print.
#[derive(Deserialize)]
pub(super) struct LinkQuery {
    code: Option<String>,
}

pub(super) async fn login_with_link(
    State(s): State<ApiState>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let Some(code) = q.code else {
        return login_page(StatusCode::OK, &s, None);
    };
    if s.reach != Reach::Loopback {
        return login_page(
            StatusCode::FORBIDDEN,
            &s,
            Some(
                "Login links work only on this machine's own address; log in with the UI password.",
            ),
        );
    }
    match s.ui.sessions.redeem(&code) {
        Some(session) => logged_in(&s, session),
        None => login_page(
            StatusCode::UNAUTHORIZED,
            &s,
            Some("This login link was used already or has expired. Run `peershare ui` for a fresh one."),
        ),
    }
}

/// `POST /login` with the form field `password`.
#[derive(Deserialize)]
pub(super) struct PasswordForm {
    password: String,
}

pub(super) async fn login_with_password(
    State(s): State<ApiState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Form(form): Form<PasswordForm>,
) -> Response {
    match s.ui.password.verify(client.ip(), &form.password).await {
        Ok(()) => logged_in(&s, s.ui.sessions.open()),
        Err(refusal) => {
            let (status, problem) = match refusal {
                Refusal::NotSet => (
                    StatusCode::FORBIDDEN,
                    "No UI password is set: set one with `peershare ui --set-password`."
                        .to_string(),
                ),
                Refusal::Wrong => (StatusCode::UNAUTHORIZED, "Wrong password.".to_string()),
                Refusal::LockedOut(wait) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many wrong passwords from your address; try again in {} min.",
                        wait.as_secs().div_ceil(60)
                    ),
                ),
                Refusal::Busy => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many logins at once; try again in a moment.".to_string(),
                ),
            };
            login_page(status, &s, Some(&problem))
        }
    }
}

/// `POST /logout`: ends this browser's session.
pub(super) async fn logout(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers, s.port) {
        s.ui.sessions.end(&id);
    }
    let expired = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
        cookie_name(s.port)
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, expired)]).into_response()
}

fn logged_in(s: &ApiState, session: NewSession) -> Response {
    let secure = if s.reach.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        cookie_name(s.port),
        session.id,
        SESSION_IDLE.as_secs()
    );
    // 303 to `/` takes the code out of the address bar and the history.
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// The login page, with `problem` (one of this module's own sentences) shown first.
pub(super) fn login_page(status: StatusCode, s: &ApiState, problem: Option<&str>) -> Response {
    let mut body = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>peershare: log in</title>\n<link rel=\"stylesheet\" href=\"/assets/style.css\">\n\
         <link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\n\
         </head>\n<body>\n<main class=\"login\">\n<h1>peershare</h1>\n",
    );
    if let Some(problem) = problem {
        body += &format!(
            "<p class=\"problem\" role=\"alert\">{}</p>\n",
            escape(problem)
        );
    }
    if s.reach == Reach::Loopback {
        body += "<p>To open the web UI, run <code>peershare ui</code> on this machine, \
                 or open the login link <code>peershare up</code> printed.</p>\n";
    }
    if s.ui.password.is_set() {
        body += "<form method=\"post\" action=\"/login\">\n\
                 <label for=\"password\">UI password</label>\n\
                 <input id=\"password\" name=\"password\" type=\"password\" \
                 autocomplete=\"current-password\" required autofocus>\n\
                 <button type=\"submit\">Log in</button>\n</form>\n";
    } else if s.reach != Reach::Loopback {
        body += "<p>No UI password is set. On the daemon's machine, run \
                 <code>peershare ui --set-password</code>.</p>\n";
    }
    body += "</main>\n</body>\n</html>\n";
    (status, Html(body)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
