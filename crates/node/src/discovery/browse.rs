//! Asking a peer what it shares: page after page of `/peershare/browse/1`,
//! optionally only the names holding some words. Everything a peer answers
//! is untrusted: a page longer than asked for is a broken peer, and a
//! listing stops at [`MAX_LISTED_FILES`] entries, [`MAX_LISTING_NAME_BYTES`]
//! of names or [`MAX_PAGES`] pages, so a peer that claims an endless share
//! can neither hold a caller forever nor fill its memory.
//!
//! This module never decides what an entry means: callers check names and
//! ids against what they asked for.

use std::collections::BTreeSet;
use std::future::Future;

use libp2p::{Multiaddr, PeerId};
use peershare_core::wire::control::{BrowseRequest, SharedFileEntry, MAX_BROWSE_PAGE};
use serde::Serialize;

use crate::net::host::Host;
use crate::NodeError;

/// Most entries kept from one peer's listing.
pub const MAX_LISTED_FILES: usize = 100_000;
/// Most bytes of names kept from one peer's listing.
pub const MAX_LISTING_NAME_BYTES: usize = 32 << 20;
/// Most pages asked for in one listing.
pub const MAX_PAGES: usize = 1_000;

/// What a peer listed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    /// The entries, in the peer's order.
    pub files: Vec<SharedFileEntry>,
    /// How many entries the peer says it has (for a filtered browse, how many match).
    pub total: u64,
    /// True when the listing stopped at one of this module's limits before the peer's total.
    pub truncated: bool,
}

/// Lists what `peer` shares (only names holding every one of `words`, when
/// given), page by page, within this module's limits.
pub async fn browse_all(
    host: &Host,
    peer: PeerId,
    dial: Multiaddr,
    words: &BTreeSet<String>,
) -> Result<Listing, NodeError> {
    let mut listing = Listing::default();
    let mut name_bytes = 0usize;
    for _ in 0..MAX_PAGES {
        let request = BrowseRequest {
            offset: listing.files.len() as u64,
            limit: MAX_BROWSE_PAGE,
            words: words.iter().cloned().collect(),
        };
        let page = host.browse(peer, vec![dial.clone()], request).await?;
        if page.files.len() > MAX_BROWSE_PAGE as usize {
            return Err(NodeError::PeerMisbehaved(format!(
                "{peer} answered a browse with {} entries; at most {MAX_BROWSE_PAGE} were asked for",
                page.files.len()
            )));
        }
        listing.total = page.total;
        if page.files.is_empty() {
            return Ok(listing);
        }
        for entry in page.files {
            name_bytes += entry.name.len();
            if listing.files.len() >= MAX_LISTED_FILES || name_bytes > MAX_LISTING_NAME_BYTES {
                return Ok(truncated(peer, listing));
            }
            listing.files.push(entry);
        }
        if listing.files.len() as u64 >= page.total {
            return Ok(listing);
        }
    }
    Ok(truncated(peer, listing))
}

/// Lists what `peer` shares (as [`browse_all`]) at the first address `addrs`
/// yields, giving up at `deadline`; returns the addresses it had, if any.
pub async fn browse_until(
    host: &Host,
    peer: PeerId,
    addrs: impl Future<Output = Result<Vec<Multiaddr>, NodeError>>,
    words: &BTreeSet<String>,
    deadline: tokio::time::Instant,
) -> (Vec<Multiaddr>, Result<Listing, NodeError>) {
    let listed = async {
        let addrs = match addrs.await {
            Ok(addrs) => addrs,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let listing = match addrs.first() {
            Some(addr) => browse_all(host, peer, addr.clone(), words).await,
            None => Err(NodeError::PeerUnreachable(format!("no address for {peer}"))),
        };
        (addrs, listing)
    };
    tokio::time::timeout_at(deadline, listed)
        .await
        .unwrap_or_else(|_| {
            (
                Vec::new(),
                Err(NodeError::PeerUnreachable(format!(
                    "{peer} did not list its files in time"
                ))),
            )
        })
}

fn truncated(peer: PeerId, mut listing: Listing) -> Listing {
    tracing::info!(
        %peer,
        kept = listing.files.len(),
        claimed = listing.total,
        "a peer's listing was cut short at this node's limits"
    );
    listing.truncated = true;
    listing
}
