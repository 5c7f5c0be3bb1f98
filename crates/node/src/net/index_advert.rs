//! The index a peer runs, told to the peers it meets: the identify
//! protocol's agent version carries its port (`peershare/0.1.0;
//! index-port=1099`), so a second `peershare up` on a LAN learns that an
//! index already runs there instead of silently starting a second network.
//!
//! An advert is a hint for the person, never trusted for anything else: the
//! daemon does not switch indexes by itself.

/// What this peer announces as its agent version, with its index's port when it runs one.
pub fn agent_version(index_port: Option<u16>) -> String {
    let agent = format!("peershare/{}", env!("CARGO_PKG_VERSION"));
    match index_port {
        Some(port) => format!("{agent}; index-port={port}"),
        None => agent,
    }
}

/// The index port a peer's agent version advertises, if it is a peershare peer running one.
pub fn advertised_index_port(agent: &str) -> Option<u16> {
    let rest = agent.strip_prefix("peershare/")?;
    rest.split(';')
        .filter_map(|part| part.trim().strip_prefix("index-port="))
        .find_map(|port| port.parse::<u16>().ok())
        .filter(|port| *port != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertised_port_reads_back_and_junk_advertises_nothing() {
        assert_eq!(
            advertised_index_port(&agent_version(Some(1099))),
            Some(1099)
        );
        assert_eq!(advertised_index_port(&agent_version(None)), None);
        assert_eq!(
            advertised_index_port("rust-libp2p/0.57; index-port=1099"),
            None
        );
        assert_eq!(
            advertised_index_port("peershare/9.9; index-port=99999"),
            None
        );
        assert_eq!(advertised_index_port("peershare/9.9; index-port=0"), None);
        assert_eq!(
            advertised_index_port("peershare/9.9;index-port=2000; x=y"),
            Some(2000)
        );
    }
}
