//! Share links: a `peershare:` URI that names one file by its id, with its
//! name and size for people and, optionally, addresses of peers that hold
//! it, so `peershare get LINK` finds it even with no index and no DHT.
//!
//! ```text
//! peershare:b3/<64 hex digits>?name=aula%201.mp4&size=1048576&src=/ip4/…/p2p/12D3KooW…
//! ```
//!
//! Parsing a link from elsewhere never trusts it: the id is checked, the
//! size must be a number, the name is only a hint (what lands on disk is
//! sanitised from the sharer's listing) and the lengths are bounded.

use std::str::FromStr;

use crate::FileId;

/// The URI scheme.
pub const SCHEME: &str = "peershare";
/// Longest link accepted.
pub const MAX_LINK_LEN: usize = 8 * 1024;
/// Most holder addresses a link carries.
pub const MAX_SOURCES: usize = 16;

/// One file, as a link names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLink {
    /// The file's BLAKE3 id.
    pub id: FileId,
    /// Its name, as a hint.
    pub name: Option<String>,
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Full addresses (ending in `/p2p/<peer id>`) of peers that hold it.
    pub sources: Vec<String>,
}

/// Why a text is not a share link.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// Not a `peershare:` URI at all.
    #[error("not a peershare: link")]
    NotALink,
    /// Longer than [`MAX_LINK_LEN`].
    #[error("the link is longer than {MAX_LINK_LEN} bytes")]
    TooLong,
    /// A part of it is malformed.
    #[error("malformed peershare: link: {0}")]
    Malformed(String),
}

impl ShareLink {
    /// The link as a URI.
    pub fn to_uri(&self) -> String {
        let mut url = url::Url::parse(&format!("{SCHEME}:b3/{}", self.id.to_hex()))
            .expect("a fixed scheme and a hex id form a valid URI");
        {
            let mut query = url.query_pairs_mut();
            if let Some(name) = &self.name {
                query.append_pair("name", name);
            }
            if let Some(size) = self.size {
                query.append_pair("size", &size.to_string());
            }
            for source in self.sources.iter().take(MAX_SOURCES) {
                query.append_pair("src", source);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url.into()
    }

    /// True if `text` looks like a link (so it should be parsed as one, and errors reported).
    pub fn is_link(text: &str) -> bool {
        text.get(..SCHEME.len() + 1)
            .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{SCHEME}:")))
    }
}

impl FromStr for ShareLink {
    type Err = LinkError;

    fn from_str(text: &str) -> Result<Self, LinkError> {
        let text = text.trim();
        if !Self::is_link(text) {
            return Err(LinkError::NotALink);
        }
        if text.len() > MAX_LINK_LEN {
            return Err(LinkError::TooLong);
        }
        let url = url::Url::parse(text).map_err(|e| LinkError::Malformed(e.to_string()))?;
        let hex = url
            .path()
            .strip_prefix("b3/")
            .ok_or_else(|| LinkError::Malformed("it names no b3/<id>".into()))?;
        let id = FileId::from_str(hex)
            .map_err(|_| LinkError::Malformed(format!("{hex:?} is not a BLAKE3 id")))?;
        let mut link = ShareLink {
            id,
            name: None,
            size: None,
            sources: Vec::new(),
        };
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "name" => link.name = Some(value.into_owned()),
                "size" => {
                    let size = value
                        .parse()
                        .map_err(|_| LinkError::Malformed(format!("size {value:?}")))?;
                    link.size = Some(size);
                }
                "src" if link.sources.len() < MAX_SOURCES => link.sources.push(value.into_owned()),
                // Later versions may add keys; extra sources are dropped.
                _ => {}
            }
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> FileId {
        FileId::from(blake3::hash(b"aula"))
    }

    #[test]
    fn a_link_round_trips_with_awkward_names() {
        let link = ShareLink {
            id: id(),
            name: Some("aula 1 & 2?=#%/ünï.mp4".into()),
            size: Some(1 << 40),
            sources: vec![
                "/ip4/192.168.1.20/tcp/1100/p2p/12D3KooWLxeMFhSVvLMqxg1DwSBMDiMB8uh93yBewqQpY4aytK4w"
                    .into(),
            ],
        };
        let uri = link.to_uri();
        assert!(uri.starts_with("peershare:b3/"), "{uri}");
        assert!(!uri.contains(' '), "{uri}");
        assert_eq!(uri.parse::<ShareLink>().unwrap(), link);
        let bare = ShareLink {
            id: id(),
            name: None,
            size: None,
            sources: vec![],
        };
        assert_eq!(bare.to_uri(), format!("peershare:b3/{}", id().to_hex()));
        assert_eq!(bare.to_uri().parse::<ShareLink>().unwrap(), bare);
    }

    #[test]
    fn bad_links_are_refused_with_a_reason() {
        let hex = id().to_hex();
        assert_eq!("aula.mp4".parse::<ShareLink>(), Err(LinkError::NotALink));
        for bad in [
            "peershare:b3/nothex".to_string(),
            "peershare:md5/abc".to_string(),
            format!("peershare:b3/{hex}?size=-1"),
            format!("peershare:b3/{hex}?size=12x"),
        ] {
            assert!(
                matches!(bad.parse::<ShareLink>(), Err(LinkError::Malformed(_))),
                "{bad}"
            );
        }
        let huge = format!("peershare:b3/{hex}?name={}", "a".repeat(MAX_LINK_LEN));
        assert_eq!(huge.parse::<ShareLink>(), Err(LinkError::TooLong));
        let many: String = (0..100).map(|n| format!("&src=/ip4/1.2.3.{n}")).collect();
        let parsed: ShareLink = format!("peershare:b3/{hex}?x=1{many}").parse().unwrap();
        assert_eq!(
            parsed.sources.len(),
            MAX_SOURCES,
            "extra sources are dropped"
        );
        assert!(ShareLink::is_link("PeerShare:b3/x"));
    }
}
