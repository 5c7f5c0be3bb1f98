//! The online titles by exact name: an exact-name search looks the name up
//! here, in one probe, instead of in the text index.
//!
//! Names are nearly unique, so a term per name made each one a new key in
//! every segment's term dictionary, built again at every merge: a fifth of
//! the text index's CPU while peers join (bench/README.md, eighth pass).
//!
//! It owns the table of names and the chains of titles sharing one; it
//! never holds a name itself: names live in the catalogue's titles, which
//! it reads through the `name_of` its callers pass.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// No title: the end of a chain.
const NO_TITLE: u32 = u32::MAX;

/// The titles sharing one name: the first of the chain, and how many.
#[derive(Debug, Clone, Copy)]
struct Chain {
    first: u32,
    len: u32,
}

/// A title's neighbours in its name's chain.
#[derive(Debug, Clone, Copy)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links {
    prev: NO_TITLE,
    next: NO_TITLE,
};

/// Online titles by exact name (see the module doc).
#[derive(Debug, Default)]
pub struct ExactNames {
    table: HashTable<Chain>,
    /// Indexed by title ordinal.
    links: Vec<Links>,
    hasher: std::collections::hash_map::RandomState,
}

impl ExactNames {
    /// Lists `title` under `name`; `name_of` gives the name of any title
    /// listed here (and of `title`).
    pub fn insert<'n>(&mut self, title: u32, name: &str, name_of: impl Fn(u32) -> &'n str) {
        let at = title as usize;
        if self.links.len() <= at {
            self.links.resize(at + 1, UNLINKED);
        }
        let hash = self.hasher.hash_one(name);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |chain| name_of(chain.first) == name,
            |chain| hasher.hash_one(name_of(chain.first)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut found) => {
                let chain = found.get_mut();
                self.links[chain.first as usize].prev = title;
                self.links[at] = Links {
                    prev: NO_TITLE,
                    next: chain.first,
                };
                *chain = Chain {
                    first: title,
                    len: chain.len + 1,
                };
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                self.links[at] = UNLINKED;
                vacant.insert(Chain {
                    first: title,
                    len: 1,
                });
            }
        }
    }

    /// Takes `title`, listed under `name`, off the list.
    pub fn remove<'n>(&mut self, title: u32, name: &str, name_of: impl Fn(u32) -> &'n str) {
        let Some(&links) = self.links.get(title as usize) else {
            return;
        };
        let hash = self.hasher.hash_one(name);
        let Ok(mut found) = self
            .table
            .find_entry(hash, |chain| name_of(chain.first) == name)
        else {
            return;
        };
        let chain = found.get_mut();
        if chain.first != title && links.prev == NO_TITLE {
            return; // not listed
        }
        if links.prev != NO_TITLE {
            self.links[links.prev as usize].next = links.next;
        }
        if links.next != NO_TITLE {
            self.links[links.next as usize].prev = links.prev;
        }
        self.links[title as usize] = UNLINKED;
        if chain.len <= 1 {
            found.remove();
            return;
        }
        chain.len -= 1;
        if chain.first == title {
            chain.first = links.next;
        }
    }

    /// How many titles are listed under `name`.
    pub fn count<'n>(&self, name: &str, name_of: impl Fn(u32) -> &'n str) -> u32 {
        self.chain(name, name_of).map_or(0, |chain| chain.len)
    }

    /// The titles listed under `name`, newest first.
    pub fn titles<'n>(&self, name: &str, name_of: impl Fn(u32) -> &'n str) -> NamedTitles<'_> {
        NamedTitles {
            links: &self.links,
            at: self
                .chain(name, name_of)
                .map_or(NO_TITLE, |chain| chain.first),
        }
    }

    fn chain<'n>(&self, name: &str, name_of: impl Fn(u32) -> &'n str) -> Option<Chain> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |chain| name_of(chain.first) == name)
            .copied()
    }
}

/// The titles sharing a name, walked along their chain.
pub struct NamedTitles<'a> {
    links: &'a [Links],
    at: u32,
}

impl Iterator for NamedTitles<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let title = self.at;
        (title != NO_TITLE).then(|| {
            self.at = self.links[title as usize].next;
            title
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Names by title, and the table over them.
    #[derive(Default)]
    struct Listed {
        names: HashMap<u32, String>,
        exact: ExactNames,
    }

    impl Listed {
        fn add(&mut self, title: u32, name: &str) {
            self.names.insert(title, name.to_string());
            let names = &self.names;
            self.exact
                .insert(title, name, |t| names.get(&t).map_or("", String::as_str));
        }

        fn drop(&mut self, title: u32) {
            let name = self.names[&title].clone();
            let names = &self.names;
            self.exact
                .remove(title, &name, |t| names.get(&t).map_or("", String::as_str));
            self.names.remove(&title);
        }

        fn named(&self, name: &str) -> Vec<u32> {
            let names = &self.names;
            let of = |t: u32| names.get(&t).map_or("", String::as_str);
            let mut titles: Vec<u32> = self.exact.titles(name, of).collect();
            assert_eq!(titles.len() as u32, self.exact.count(name, of), "{name}");
            titles.sort_unstable();
            titles
        }
    }

    #[test]
    fn titles_are_found_by_their_whole_name_only() {
        let mut listed = Listed::default();
        listed.add(0, "Aula 1.mp4");
        listed.add(1, "aula 1.mp4");
        listed.add(2, "Aula 1.mp4");
        assert_eq!(listed.named("Aula 1.mp4"), [0, 2]);
        assert_eq!(listed.named("aula 1.mp4"), [1]);
        assert!(listed.named("Aula 1").is_empty());
        assert!(listed.named("").is_empty());
    }

    #[test]
    fn a_title_leaves_its_chain_wherever_it_is_in_it() {
        let mut listed = Listed::default();
        for title in 0..5 {
            listed.add(title, "same.iso");
        }
        listed.add(9, "other.iso");
        listed.drop(2); // the middle
        assert_eq!(listed.named("same.iso"), [0, 1, 3, 4]);
        listed.drop(4); // the first (newest)
        assert_eq!(listed.named("same.iso"), [0, 1, 3]);
        listed.drop(0); // the last
        assert_eq!(listed.named("same.iso"), [1, 3]);
        listed.drop(1);
        listed.drop(3);
        assert!(listed.named("same.iso").is_empty());
        assert_eq!(listed.named("other.iso"), [9]);
        // A title's ordinal may come back under another name.
        listed.add(3, "other.iso");
        assert_eq!(listed.named("other.iso"), [3, 9]);
    }

    #[test]
    fn matches_a_brute_force_scan_through_many_changes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut listed = Listed::default();
        let names: Vec<String> = (0..40).map(|i| format!("name {i}.dat")).collect();
        for _ in 0..20_000 {
            let title = rng.gen_range(0..600u32);
            if listed.names.contains_key(&title) {
                listed.drop(title);
            } else {
                listed.add(title, &names[rng.gen_range(0..names.len())]);
            }
        }
        for name in &names {
            let mut expected: Vec<u32> = listed
                .names
                .iter()
                .filter(|(_, n)| *n == name)
                .map(|(&t, _)| t)
                .collect();
            expected.sort_unstable();
            assert_eq!(listed.named(name), expected, "{name}");
        }
    }
}
