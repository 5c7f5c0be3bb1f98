//! The fixed part of the local API's OpenAPI document (title, tags, the
//! bearer token); every path and schema is generated from the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::views::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "peershare daemon (local API)",
        description = "The API of a running `peershare up`, on 127.0.0.1 unless `--ui-listen` is given. Every \
request needs `Authorization: Bearer TOKEN` (the file `api-token` in the data folder) and a \
loopback Host, or a web UI session cookie, whose requests that change something carry its \
`X-CSRF-Token`. \
Errors are JSON `{\"code\": stable code, \"message\": what to do}`. `GET /api/v1/events` is a \
Server-Sent Events stream of every change. Times are milliseconds since the Unix epoch unless \
a field says seconds."
    ),
    modifiers(&BearerAuth),
    components(schemas(ApiError)),
    security(("bearer" = [])),
    tags(
        (name = "sharing", description = "Status, shared folders and files, online/offline, links"),
        (name = "transfers", description = "Downloads and their controls, uploads, requests, events"),
        (name = "network", description = "Browse, search, known peers, the index account and its listings"),
        (name = "messages", description = "End-to-end encrypted messages, chats, contacts and presence"),
        (name = "ui", description = "The web UI's login links and sessions"),
    )
)]
struct LocalApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document's fixed part before paths are added.
pub fn base() -> utoipa::openapi::OpenApi {
    LocalApiDoc::openapi()
}
