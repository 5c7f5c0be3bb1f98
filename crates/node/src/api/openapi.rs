//! The fixed part of the local API's OpenAPI document (title, tags, the
//! bearer token); every path and schema is generated from the handlers.

use peershare_core::api_schema;
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

/// Completes the generated document (see [`api_schema::complete_document`]):
/// every operation also lists 401 without the token (the access guard
/// gives it to every route), and those under `/index/…` the index's own
/// refusals passed on (400, 429) and 409/502/503 when there is no index,
/// it answers nonsense, or is away.
pub fn complete_document(doc: &mut utoipa::openapi::OpenApi) {
    api_schema::complete_document(doc, "ApiError", |op| {
        let mut answers = vec![("401", "Missing or wrong API token")];
        if op.path.starts_with("/api/v1/index/") {
            answers.extend([
                ("400", "The index refused a value as malformed"),
                ("409", "The daemon runs without an index"),
                (
                    "429",
                    "The index refused: too many attempts; see the message",
                ),
                ("502", "The index answered something unreadable"),
                ("503", "The index could not be reached, or is busy"),
            ]);
        }
        answers
    });
}
