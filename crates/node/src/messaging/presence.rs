//! Whether contacts are online: asked of the index when there is one (it
//! knows every peer of a user), else told by open connections to their
//! pinned peers, else by probing them (a key card request, briefly). A task publishes `contact_presence` when a contact comes
//! online or goes offline: at once when a connection to one of its peers
//! opens or closes, and from a look at the index every half minute.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use libp2p::PeerId;

use super::Inner;
use crate::views::{ContactView, EventKind};

/// How often contacts' presence is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(30);
/// Most contacts looked at per round (the index is asked once per contact).
const MAX_WATCHED: usize = 64;

/// Fills in `contact`'s presence.
pub(super) async fn fill(inner: &Inner, contact: &mut ContactView) {
    if contact.name.parse::<PeerId>().is_err() {
        if let Some(link) = &inner.index {
            if let Ok(token) = link.token() {
                if let Ok(listed) = link.client().user_peers(&token, &contact.name).await {
                    contact.online = Some(listed.online);
                    contact.last_seen = listed.last_seen;
                    contact.presence_from = "index".into();
                    return;
                }
            }
        }
    }
    let mut peers: Vec<PeerId> = contact
        .peers
        .iter()
        .filter_map(|p| p.peer_id.parse().ok())
        .collect();
    if let Ok(peer) = contact.name.parse() {
        peers.push(peer);
    }
    let seen: Vec<(bool, i64)> = peers
        .iter()
        .filter_map(|p| inner.host.book().presence(p))
        .collect();
    contact.last_seen = seen.iter().map(|(_, at)| *at).max();
    if seen.iter().any(|(connected, _)| *connected) {
        contact.online = Some(true);
        contact.presence_from = "connection".into();
        return;
    }
    if peers.is_empty() {
        return;
    }
    let probes = join_all(peers.iter().map(|p| super::recipients::ask_card(inner, p))).await;
    contact.online = Some(probes.iter().any(Option::is_some));
    contact.presence_from = "probe".into();
    if contact.online == Some(true) {
        contact.last_seen = Some(crate::now_ms());
    }
}

/// Publishes contacts coming online and going offline until the daemon stops.
pub(super) async fn watch(inner: Arc<Inner>) {
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut events = inner.bus.subscribe();
    loop {
        look(&inner, &mut known).await;
        let wait = tokio::time::sleep(LOOK_EVERY);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                event = events.next() => match event {
                    Some(event) => {
                        if let EventKind::PeerConnection { peer_id, .. } = event.kind {
                            if inner.contacts_with_peer(&peer_id) {
                                break;
                            }
                        }
                    }
                    None => {
                        (&mut wait).await;
                        events = inner.bus.subscribe();
                        break;
                    }
                },
            }
        }
    }
}

async fn look(inner: &Inner, known: &mut HashMap<String, bool>) {
    let Ok(list) = inner.contacts.list().await else {
        return;
    };
    for mut contact in list
        .into_iter()
        .filter(|c| c.contact && !c.blocked)
        .take(MAX_WATCHED)
    {
        fill(inner, &mut contact).await;
        let Some(online) = contact.online else {
            continue;
        };
        let before = known.insert(contact.name.clone(), online);
        if before != Some(online) && (before.is_some() || online) {
            inner.bus.publish(EventKind::ContactPresence {
                name: contact.name,
                online,
            });
        }
    }
}

impl Inner {
    /// Whether `peer_id` is pinned to a contact (or is one).
    fn contacts_with_peer(&self, peer_id: &str) -> bool {
        let Ok(peer) = peer_id.parse::<PeerId>() else {
            return false;
        };
        self.roster.is_contact(&peer)
    }
}
