//! Who is behind a name: a user's shared files, from the index when it can
//! be asked, else from the peers announcing that name in the DHT; and where
//! a peer known only by its id listens.
//!
//! The index vouches for its users; the DHT does not, since any peer can
//! announce any name. So a DHT answer is marked as such, says why the index
//! was not used, and names every peer that claims the name. An index that
//! answers "no such user" is believed; only an index that cannot be asked
//! falls back to the DHT.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use libp2p::{Multiaddr, PeerId};
use peershare_core::words::user_key;

use crate::discovery::browse::browse_until;
use crate::discovery::Reach;
use crate::index_link::client::IndexClientError;
use crate::net::host::{parse_peer_addr, Host};
use crate::views::{Claimant, ListedBy, UserFile, UserFilesView};
use crate::NodeError;

/// Most peers browsed for one name.
const MAX_CLAIMANTS: usize = 16;
/// How long one claimant may take to list its files.
const CLAIMANT_TIMEOUT: Duration = Duration::from_secs(10);

/// The files of user `name`: the index's answer, or, when the index cannot
/// be asked, what the peers announcing `name` in the DHT share (with why the
/// index was not asked and every peer that claims the name).
pub async fn user_files(
    reach: Reach<'_>,
    name: &str,
    query: &[(String, String)],
) -> Result<UserFilesView, NodeError> {
    let index_error = match reach.index {
        None => "this daemon runs without an index".to_string(),
        Some(link) => match link.token() {
            Err(e) => e.to_string(),
            Ok(token) => match link.client().user_files(&token, name, query).await {
                Ok(mut found) => {
                    found["origin"] = serde_json::json!("index");
                    return serde_json::from_value(found).map_err(|e| {
                        NodeError::Index(IndexClientError::BadAnswer {
                            url: link.client().url(),
                            reason: format!("a user's files: {e}"),
                        })
                    });
                }
                Err(e @ IndexClientError::Refused { status, .. })
                    if status != 429 && status < 500 =>
                {
                    return Err(e.into())
                }
                Err(e) => e.to_string(),
            },
        },
    };
    user_files_from_dht(reach.host, name, index_error).await
}

async fn user_files_from_dht(
    host: &Host,
    name: &str,
    index_error: String,
) -> Result<UserFilesView, NodeError> {
    let lookup = host
        .find_providers(user_key(name), super::dht::LOOKUP_PATIENCE)
        .await?;
    let mut claimants: Vec<PeerId> = lookup
        .providers
        .into_iter()
        .filter(|p| *p != host.peer_id())
        .collect();
    claimants.sort();
    claimants.truncate(MAX_CLAIMANTS);
    if claimants.is_empty() {
        return Err(NodeError::NotFound(format!(
            "no peer announces the user {name:?} in the DHT, and the index cannot be asked ({index_error})"
        )));
    }
    let deadline = tokio::time::Instant::now() + CLAIMANT_TIMEOUT;
    let everything = BTreeSet::new();
    let listings = claimants.iter().map(|peer| {
        let everything = &everything;
        async move {
            let addrs = host.find_peer(*peer);
            let (_, listing) = browse_until(host, *peer, addrs, everything, deadline).await;
            (*peer, listing)
        }
    });
    let mut files = Vec::new();
    let mut claimed_by = Vec::new();
    for (peer, listing) in join_all(listings).await {
        match listing {
            Ok(listing) => {
                claimed_by.push(Claimant {
                    peer_id: peer.to_string(),
                    ok: true,
                    error: None,
                });
                files.extend(listing.files.into_iter().map(|f| UserFile {
                    id: f.id,
                    name: f.name,
                    size: f.size,
                    peer_id: peer.to_string(),
                    online: true,
                }));
            }
            Err(e) => {
                tracing::info!(%peer, "a peer announcing {name:?} could not be browsed: {e}");
                claimed_by.push(Claimant {
                    peer_id: peer.to_string(),
                    ok: false,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(UserFilesView {
        user: name.to_string(),
        offset: 0,
        files,
        origin: ListedBy::Dht,
        index_error: Some(index_error),
        claimed_by,
    })
}

/// A peer to browse from `target`: a full address, or a bare peer id whose
/// address the peer book or the DHT knows.
pub async fn peer_to_browse(host: &Host, target: &str) -> Result<(PeerId, Multiaddr), NodeError> {
    if target.starts_with('/') {
        return parse_peer_addr(target);
    }
    let peer: PeerId = target.parse().map_err(|_| {
        NodeError::BadRequest(format!(
            "{target:?} is neither a full peer address (/ip4/…/tcp/…/p2p/<id>) nor a peer id"
        ))
    })?;
    let addrs = host.find_peer(peer).await?;
    let dial = addrs.into_iter().next().ok_or_else(|| {
        NodeError::NotFound(format!(
            "no known address for {peer}: neither this peer nor the DHT has seen it"
        ))
    })?;
    Ok((peer, dial))
}
