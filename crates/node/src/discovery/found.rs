//! Files found, merged by id: each part of a search (the index, the DHT,
//! the LAN) adds the [`Hit`]s it found, and a file found twice becomes one
//! hit with every name and every holder, each holder tagged with every
//! place it was found.
//!
//! It only merges; it never asks anyone and never drops a holder.

use std::collections::BTreeMap;

use peershare_core::FileId;

use crate::views::{Hit, Holder};

/// Hits merged by file id, in id order.
#[derive(Default)]
pub struct Findings {
    hits: BTreeMap<FileId, Hit>,
}

impl Findings {
    /// Whether a file with this id was found already.
    pub fn contains(&self, id: &FileId) -> bool {
        self.hits.contains_key(id)
    }

    /// Adds a hit, merging it into an earlier one with the same id.
    pub fn add(&mut self, found: Hit) {
        let Some(hit) = self.hits.get_mut(&found.id) else {
            self.hits.insert(found.id, found);
            return;
        };
        for name in found.names {
            if !hit.names.contains(&name) {
                hit.names.push(name);
            }
        }
        for holder in found.sources {
            merge_holder(&mut hit.sources, holder);
        }
        // Each part counted its own holders; the merge knows at least the
        // most any part knew, and every holder it lists.
        hit.sources_total = hit
            .sources_total
            .max(found.sources_total)
            .max(hit.sources.len());
    }

    /// Adds every hit.
    pub fn extend(&mut self, found: impl IntoIterator<Item = Hit>) {
        for hit in found {
            self.add(hit);
        }
    }

    /// The merged hits, in id order.
    pub fn into_hits(self) -> Vec<Hit> {
        self.hits.into_values().collect()
    }
}

fn merge_holder(holders: &mut Vec<Holder>, found: Holder) {
    let Some(known) = holders.iter_mut().find(|h| h.peer_id == found.peer_id) else {
        holders.push(found);
        return;
    };
    for addr in found.addrs {
        if !known.addrs.contains(&addr) {
            known.addrs.push(addr);
        }
    }
    known.found_by.extend(found.found_by);
    if known.user.is_none() {
        known.user = found.user;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::Origin;
    use std::collections::BTreeSet;

    fn hit(id: u8, name: &str, holders: Vec<Holder>) -> Hit {
        Hit {
            id: FileId::from_bytes([id; 32]),
            names: vec![name.to_string()],
            size: 10,
            sources_total: holders.len(),
            sources: holders,
        }
    }

    #[test]
    fn a_sampled_count_of_holders_survives_the_merge() {
        let listed = |n: usize| {
            (0..n)
                .map(|i| {
                    Holder::found(format!("peer-{i}"), &["/ip4/10.0.0.1/tcp/1"], Origin::Index)
                })
                .collect::<Vec<_>>()
        };
        let mut popular = hit(2, "song.flac", listed(10));
        popular.sources_total = 400;
        let mut found = Findings::default();
        found.add(popular);
        let from_dht = Holder::found("dht-peer".into(), &["/ip4/10.0.0.9/tcp/1"], Origin::Dht);
        found.add(hit(2, "song.flac", vec![from_dht]));
        let hits = found.into_hits();
        assert_eq!(hits[0].sources.len(), 11);
        assert_eq!(hits[0].sources_total, 400);

        // Without a sampled count, the merged holders are the count.
        let mut found = Findings::default();
        found.add(hit(3, "a", listed(2)));
        found.add(hit(
            3,
            "a",
            vec![Holder::found(
                "other".into(),
                &["/ip4/10.0.0.2/tcp/1"],
                Origin::Lan,
            )],
        ));
        assert_eq!(found.into_hits()[0].sources_total, 3);
    }

    #[test]
    fn one_file_found_twice_is_one_hit_with_every_name_holder_and_origin() {
        let mut alice = Holder::found("alice-peer".into(), &["/ip4/10.0.0.1/tcp/1"], Origin::Index);
        alice.user = Some("alice".into());
        let mut found = Findings::default();
        found.add(hit(1, "film.mkv", vec![alice]));
        found.add(hit(
            1,
            "Film.mkv",
            vec![
                Holder::found(
                    "alice-peer".into(),
                    &["/ip4/192.168.1.5/tcp/1"],
                    Origin::Lan,
                ),
                Holder::found("bob-peer".into(), &["/ip4/10.0.0.2/tcp/1"], Origin::Dht),
            ],
        ));
        found.add(hit(2, "other", vec![]));
        assert!(found.contains(&FileId::from_bytes([2; 32])));
        let hits = found.into_hits();
        assert_eq!(hits.len(), 2);
        let film = &hits[0];
        assert_eq!(film.names, ["film.mkv", "Film.mkv"]);
        assert_eq!(film.sources.len(), 2);
        let alice = &film.sources[0];
        assert_eq!(
            alice.user.as_deref(),
            Some("alice"),
            "the index's name is kept"
        );
        assert_eq!(alice.addrs.len(), 2);
        assert_eq!(alice.found_by, BTreeSet::from([Origin::Index, Origin::Lan]));
        assert_eq!(film.sources[1].found_by, BTreeSet::from([Origin::Dht]));
    }
}
