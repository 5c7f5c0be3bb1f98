//! Who may call the daemon over HTTP, decided once for every request before
//! any handler runs.
//!
//! - Host must name this machine on the loopback listener (DNS rebinding),
//!   and an Origin, when sent, must be the listener's own origin exactly.
//! - The CLI shows the bearer token from the data folder; browsers show the
//!   web UI's session cookie, and every state-changing request of a session
//!   carries its CSRF token in `X-CSRF-Token`.
//! - Only the login page and the static files are open to everyone.
//!
//! Every response also gets the headers that keep the page from being
//! framed, sniffed or leaking its URL. This module never logs a secret.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::{error, ApiState};
use crate::ui::Reach;

/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The page's content security policy: nothing but this origin, no inline script.
const CONTENT_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The session cookie's name for the listener on `port`: two daemons on one machine keep apart.
pub fn cookie_name(port: u16) -> String {
    format!("peershare_session_{port}")
}

/// Checks every request, then adds the protective headers to the answer.
pub(super) async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let mut response = match refusal(&state, &request) {
        None => next.run(request).await,
        Some(refused) => refused,
    };
    protect(response.headers_mut());
    response
}

/// Why `request` may not go on, as the answer to give; `None` lets it through.
fn refusal(state: &ApiState, request: &Request) -> Option<Response> {
    let headers = request.headers();
    if let Some(refused) = foreign_host_or_origin(state.reach, headers) {
        return Some(refused);
    }
    let path = request.uri().path();
    if is_open(path) || has_token(headers, &state.token) {
        return None;
    }
    let session = session_id(headers, state.port).and_then(|id| state.ui.sessions.touch(&id));
    let Some(csrf) = session else {
        return Some(if path.starts_with("/api/") {
            error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API token: it is in the daemon's data folder (file api-token); \
                 in a browser, open the link `peershare ui` prints",
            )
        } else {
            super::ui::login_page(StatusCode::UNAUTHORIZED, state, None)
        });
    };
    if changes_state(request.method()) && !header_matches(headers, CSRF_HEADER, &csrf) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "csrf",
            "this request changes something but lacks the page's CSRF token; reload the page",
        ));
    }
    None
}

/// The refusal of a request whose Host or Origin is not this listener's.
fn foreign_host_or_origin(reach: Reach, headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let host_ok = match reach {
        Reach::Loopback => host.is_some_and(is_loopback_authority),
        // Reached by whatever name the person uses; a rebinding page gains nothing
        // here because every login needs the password.
        Reach::Remote { .. } => host.is_some_and(|h| !h.is_empty()),
    };
    let origin_ok = match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => host.is_some_and(|host| {
            origin
                .to_str()
                .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("{}://{host}", reach.scheme())))
        }),
    };
    if host_ok && origin_ok {
        return None;
    }
    Some(error(
        StatusCode::FORBIDDEN,
        "forbidden",
        match reach {
            Reach::Loopback => {
                "requests must come from this machine's own pages (Host/Origin is not this \
                 daemon's loopback address)"
            }
            Reach::Remote { .. } => "requests must come from this daemon's own pages (Origin)",
        },
    ))
}

/// Paths anyone may fetch: the login page and the static files.
fn is_open(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/") || path == "/favicon.ico"
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub(super) fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())))
}

fn header_matches(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())))
}

/// The session id in the request's cookie for this listener, if any.
pub(super) fn session_id(headers: &HeaderMap, port: u16) -> Option<String> {
    let name = cookie_name(port);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn protect(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CONTENT_POLICY);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cache-control", "no-store");
}

/// Whether `authority` (host[:port]) names this machine.
pub(super) fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_authorities_pass() {
        assert!(is_loopback_authority("127.0.0.1:1101"));
        assert!(is_loopback_authority("localhost:1101"));
        assert!(is_loopback_authority("[::1]:1101"));
        assert!(!is_loopback_authority("evil.example:1101"));
        assert!(!is_loopback_authority("192.168.1.5:1101"));
        assert!(!is_loopback_authority("127.0.0.1.evil.example"));
    }

    #[test]
    fn origins_must_be_the_listeners_own() {
        let headers = |host: &str, origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            h
        };
        let local = Reach::Loopback;
        assert!(foreign_host_or_origin(local, &headers("127.0.0.1:1101", None)).is_none());
        assert!(foreign_host_or_origin(
            local,
            &headers("127.0.0.1:1101", Some("http://127.0.0.1:1101"))
        )
        .is_none());
        // Another local port is same-site for cookies, so it must be refused here.
        assert!(foreign_host_or_origin(
            local,
            &headers("127.0.0.1:1101", Some("http://127.0.0.1:8080"))
        )
        .is_some());
        assert!(foreign_host_or_origin(local, &headers("rebind.example:1101", None)).is_some());
        let remote = Reach::Remote { https: true };
        assert!(foreign_host_or_origin(
            remote,
            &headers("nas.lan:8443", Some("https://nas.lan:8443"))
        )
        .is_none());
        assert!(foreign_host_or_origin(
            remote,
            &headers("nas.lan:8443", Some("http://nas.lan:8443"))
        )
        .is_some());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; peershare_session_1101=abc; peershare_session_1201=def"
                .parse()
                .unwrap(),
        );
        assert_eq!(session_id(&h, 1101).as_deref(), Some("abc"));
        assert_eq!(session_id(&h, 1201).as_deref(), Some("def"));
        assert_eq!(session_id(&h, 1301), None);
    }
}
