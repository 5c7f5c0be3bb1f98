//! One download fed by every source that holds the file at once (the
//! swarm): which peers are asked, which piece each one fetches next, and
//! what happens when one is busy, stalls, dies or lies.
//!
//! The swarm is an event loop that reads like a table of cases: a source
//! reports (ready, a piece, ended), a worker reports a verdict, a lookup of
//! holders comes back, a retry falls due, or the download is stopped. Each
//! source is a task of its own ([`super::source`]) that fetches the pieces
//! it is ordered into buffers it is given; the swarm alone owns the
//! [`Assembly`] (verify, write, piece map) and the picker, so a piece is
//! counted only once it verified, whoever sent it.
//!
//! Each source says which pieces it has: a peer that is downloading the
//! file too (a partial source) has some and tells of more as they land, and
//! this download offers its own verified pieces the same way
//! ([`PartialFiles`]). Peers that a source names in its grant, and peers
//! that ask this peer for the file, become sources too, so downloaders of
//! one file find each other and trade pieces.
//!
//! A source that fails, stalls or disappears gives its pieces back to the
//! others at once; a busy one is asked again after a growing pause, and so
//! is a silent one (a step or a read timed out, or it stopped answering
//! pings); one that sends a piece that does not verify is dropped for this
//! file and named in the log. A source that has not answered the request
//! after [`ASK_NOTICE`] no longer counts against the limit of sources used
//! at once, so other candidates are asked meanwhile, and its note says
//! what the download waits for. Holders are looked up again every minute, when sources run low
//! and at once when they run out; the download fails only when none is
//! left and none turns up for its patience ([`DEFAULT_SOURCE_PATIENCE`]
//! unless configured), and then its verified pieces stay for a resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use peershare_core::{FileId, Outboard, PieceSet};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::assembly::{Applied, Assembly};
use super::piece_map::open_partial;
use super::piece_picker::PieceOrder;
use super::pipeline::{Pipeline, MAX_WINDOW};
use super::progress::Progress;
use super::source::{run_source, Failure, Order, Patience, Report, SourceTask};
use crate::backoff::Backoff;
use crate::discovery::search::holders_of;
use crate::discovery::Reach;
use crate::index_link::IndexLink;
use crate::net::deadlines::Deadlines;
use crate::net::host::{parse_peer_addr, Host};
use crate::transfer::data_channel::DataTls;
use crate::transfer::partial::{PartialFiles, PartialOffer};
use crate::transfer::rate_limit::RateLimit;
use crate::views::{SourceFound, SourcePhase};
use crate::NodeError;
use peershare_core::wire::control::MAX_SWARM_HINTS;

/// Sources used at once by one download unless configured otherwise.
pub const DEFAULT_MAX_SOURCES: usize = 8;
/// Memory for piece buffers of one download, whatever its sources.
const BUFFER_BUDGET: u64 = 64 * 1024 * 1024;
/// How long a download with no source waits for one to turn up before it
/// fails, unless configured otherwise.
pub const DEFAULT_SOURCE_PATIENCE: Duration = Duration::from_secs(10);
/// A source this many times slower than the fastest is asked only for
/// pieces no other source has.
const SLOW_FACTOR: f64 = 4.0;
/// In the endgame, a source this many times faster than those that have a
/// piece in hand is asked for a copy of it.
const ENDGAME_FACTOR: f64 = 2.0;
/// Running sources below which holders are looked up again.
const FEW_SOURCES: usize = 2;
/// Least time between two lookups while sources are few.
const LOOKUP_WHEN_FEW_EVERY: Duration = Duration::from_secs(10);
/// How often holders are looked up again during a download.
const LOOKUP_EVERY: Duration = Duration::from_secs(60);
/// Least time between two lookups when sources run out.
const LOOKUP_AT_MOST_EVERY: Duration = Duration::from_secs(3);
/// First pause before asking a busy source again; it doubles up to the ceiling.
const BUSY_RETRY_FLOOR: Duration = Duration::from_secs(2);
/// Longest pause between tries of a busy source.
const BUSY_RETRY_CEILING: Duration = Duration::from_secs(60);
/// Most peers one download keeps track of (a lookup may name many more).
const MAX_CANDIDATES: usize = 256;
/// Times a source that answers "not found" is asked again (it may be a
/// downloader that had no piece yet when it was first asked).
const NOT_FOUND_TRIES: u32 = 3;
/// Pause before asking again a source that answered "not found".
const NOT_FOUND_RETRY: Duration = Duration::from_secs(2);
/// Reports queued from the sources to the swarm.
const REPORT_QUEUE: usize = 64;
/// A source that has not answered the request this long is shown as
/// waited for, and no longer holds one of the download's source places.
const ASK_NOTICE: Duration = Duration::from_secs(10);

/// What the swarm needs from the node.
pub struct SwarmParts {
    /// The libp2p host: transfer requests, DHT lookups.
    pub host: Host,
    /// The index, when there is one: holders of the file.
    pub index: Option<IndexLink>,
    /// TLS for data connections.
    pub tls: DataTls,
    /// Most sources used at once.
    pub max_sources: usize,
    /// The download rate limit every download shares.
    pub rate: Arc<RateLimit>,
    /// How long a download with no source left looks for one before it fails.
    pub source_patience: Duration,
    /// Where this download offers its verified pieces to others.
    pub partials: PartialFiles,
    /// This download's own rate limit.
    pub own_rate: Arc<RateLimit>,
}

/// The file a swarm fetches and where it goes.
pub struct SwarmTarget<'a> {
    /// The file.
    pub id: FileId,
    /// Its size.
    pub size: u64,
    /// The partial file.
    pub part_path: &'a Path,
    /// Its map of verified pieces.
    pub map_path: PathBuf,
    /// The source the person named (or the first holder found).
    pub first_source: &'a str,
    /// Other holders already found (full addresses), asked at once too.
    pub more_sources: Vec<String>,
    /// The file's name here, shown to peers that fetch it from this download.
    pub name: &'a str,
    /// Fetch pieces in file order (to preview media) instead of rarest first.
    pub sequential: bool,
}

/// Where one source stands in this download.
enum SourceState {
    /// Known, not asked yet.
    Untried,
    /// Its task runs; `ready` once it sent the tree.
    Running {
        orders: mpsc::Sender<Order>,
        cancels: mpsc::Sender<u64>,
        stop: CancellationToken,
        ready: bool,
        ordered: Pipeline,
        /// Asked more than [`ASK_NOTICE`] ago and no answer yet.
        overdue: bool,
    },
    /// Busy: asked again once its pause is over.
    Waiting,
    /// Did not offer the file yet (a downloader still fetching its tree):
    /// asked again a few times, never counted as busy.
    Resting,
    /// Not asked again in this download.
    Dropped,
}

/// A peer holding the file, and what it did in this download.
struct Source {
    addrs: Vec<Multiaddr>,
    state: SourceState,
    busy: Backoff,
    pieces: u64,
    /// The pieces it has, once it is ready (and counted by the picker).
    have: Option<PieceSet>,
    /// Times it answered "not found".
    not_found: u32,
    /// How this download came to know it.
    found: SourceFound,
}

/// Things that fall due.
enum Due {
    /// A busy source may be asked again.
    Retry(PeerId),
    /// The periodic look for more holders.
    Lookup,
    /// A look for holders while none is left, not sooner than allowed.
    LookupSoon,
    /// A source asked [`ASK_NOTICE`] ago may still have not answered.
    AskNotice(PeerId),
}

/// Fetches every missing piece of `target` from as many sources as it can
/// find; returns the file's tree once the partial file is whole.
pub async fn fetch_from_swarm(
    parts: &SwarmParts,
    target: SwarmTarget<'_>,
    progress: &Progress,
    stop: &CancellationToken,
) -> Result<Arc<Outboard>, NodeError> {
    let (reports_tx, reports) = mpsc::channel(REPORT_QUEUE);
    let mut swarm = Swarm {
        parts,
        target,
        progress,
        stop,
        sources: HashMap::new(),
        tasks: JoinSet::new(),
        lookups: JoinSet::new(),
        reports_tx,
        reports,
        due: Deadlines::default(),
        outboard: None,
        assembly: None,
        sent_by: HashMap::new(),
        last_error: None,
        sourceless_since: None,
        last_lookup: None,
        offer: None,
    };
    let (peer, addr) = parse_peer_addr(swarm.target.first_source)?;
    swarm.add_candidate(peer, vec![addr], SourceFound::Named);
    for full in std::mem::take(&mut swarm.target.more_sources) {
        if let Ok((peer, addr)) = parse_peer_addr(&full) {
            swarm.add_candidate(peer, vec![addr], SourceFound::Search);
        }
    }
    swarm.look_up_holders();
    swarm.due.insert(Due::Lookup, LOOKUP_EVERY);
    let outcome = swarm.run().await;
    swarm.end().await.and(outcome)
}

struct Swarm<'a> {
    parts: &'a SwarmParts,
    target: SwarmTarget<'a>,
    progress: &'a Progress,
    stop: &'a CancellationToken,
    sources: HashMap<PeerId, Source>,
    tasks: JoinSet<()>,
    lookups: JoinSet<Result<Vec<String>, NodeError>>,
    reports_tx: mpsc::Sender<Report>,
    reports: mpsc::Receiver<Report>,
    due: Deadlines<Due>,
    outboard: Option<Arc<Outboard>>,
    assembly: Option<Assembly>,
    /// Which source sent each piece waiting for its verdict.
    sent_by: HashMap<u64, PeerId>,
    last_error: Option<NodeError>,
    /// Since when no source has been running or waiting to be asked.
    sourceless_since: Option<Instant>,
    last_lookup: Option<Instant>,
    /// This download's verified pieces, offered to other peers.
    offer: Option<PartialOffer>,
}

impl Swarm<'_> {
    async fn run(&mut self) -> Result<Arc<Outboard>, NodeError> {
        loop {
            if let Some(outboard) = self.finished() {
                return Ok(outboard);
            }
            self.start_sources();
            self.place_orders();
            self.look_again_if_few();
            self.give_up_if_sourceless()?;
            let queued = self.assembly.as_ref().is_some_and(|a| a.queued() > 0);
            tokio::select! {
                Some(report) = self.reports.recv() => self.on_report(report).await?,
                applied = next_verdict(&mut self.assembly), if queued => self.on_verdict(applied?),
                Some(found) = self.lookups.join_next(), if !self.lookups.is_empty() => {
                    self.on_holders_found(found.unwrap_or_else(|e| Err(NodeError::Transfer(e.to_string()))));
                }
                due = self.due.next() => self.on_due(due),
                Some(peer) = next_asker(&mut self.offer) => {
                    let addrs = self.parts.host.book().addrs(&peer);
                    self.add_candidate(peer, addrs, SourceFound::Asked);
                }
                _ = self.stop.cancelled() => return Err(NodeError::Stopped),
            }
        }
    }

    /// The tree, once every piece is verified.
    fn finished(&self) -> Option<Arc<Outboard>> {
        let complete = match &self.assembly {
            Some(assembly) => assembly.is_complete() && assembly.queued() == 0,
            // A partial file found whole when the tree came: nothing to fetch.
            None => self.outboard.is_some(),
        };
        complete.then(|| self.outboard.clone()).flatten()
    }

    fn add_candidate(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, found: SourceFound) {
        let full = !self.sources.contains_key(&peer) && self.sources.len() >= MAX_CANDIDATES;
        if peer == self.parts.host.peer_id() || full {
            return;
        }
        let source = self.sources.entry(peer).or_insert_with(|| Source {
            addrs: Vec::new(),
            state: SourceState::Untried,
            busy: Backoff::new(BUSY_RETRY_FLOOR, BUSY_RETRY_CEILING),
            pieces: 0,
            have: None,
            not_found: 0,
            found,
        });
        for addr in addrs {
            if !source.addrs.contains(&addr) {
                source.addrs.push(addr);
            }
        }
    }

    /// Sources that answered, or were asked lately (one that keeps the
    /// download waiting for an answer does not count).
    fn running(&self) -> usize {
        self.sources
            .values()
            .filter(|s| matches!(s.state, SourceState::Running { overdue: false, .. }))
            .count()
    }

    /// Starts untried sources while fewer than the limit run.
    fn start_sources(&mut self) {
        let mut free = self.parts.max_sources.max(1).saturating_sub(self.running());
        let untried: Vec<PeerId> = self
            .sources
            .iter()
            .filter(|(_, s)| matches!(s.state, SourceState::Untried))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in untried {
            if free == 0 {
                break;
            }
            self.start_source(peer);
            free -= 1;
        }
    }

    fn start_source(&mut self, peer: PeerId) {
        let Some(source) = self.sources.get_mut(&peer) else {
            return;
        };
        let (orders_tx, orders) = mpsc::channel(MAX_WINDOW);
        let (cancels_tx, cancels) = mpsc::channel(MAX_WINDOW);
        let stop = self.stop.child_token();
        let task = SourceTask {
            peer,
            addrs: source.addrs.clone(),
            id: self.target.id,
            size: self.target.size,
            host: self.parts.host.clone(),
            tls: self.parts.tls.clone(),
            orders,
            cancels,
            reports: self.reports_tx.clone(),
            stop: stop.clone(),
            rates: [self.parts.rate.clone(), self.parts.own_rate.clone()],
            patience: Patience::default(),
        };
        source.state = SourceState::Running {
            orders: orders_tx,
            cancels: cancels_tx,
            stop,
            ready: false,
            ordered: Pipeline::default(),
            overdue: false,
        };
        self.due.insert(Due::AskNotice(peer), ASK_NOTICE);
        self.sourceless_since = None;
        self.progress.source_phase(peer, SourcePhase::Asking, None);
        self.progress.source_found(peer, source.found);
        tracing::debug!(%peer, "asking a source");
        self.tasks.spawn(run_source(task));
    }

    /// Gives every ready source pieces to fetch, up to its window, the
    /// fastest first. A source far slower than the fastest is asked only
    /// for pieces no other ready source has: what it would bring, the
    /// others bring sooner. In the endgame a source is asked for a second
    /// copy of a piece only when it is much faster than every source that
    /// has the piece in hand.
    fn place_orders(&mut self) {
        let Some(assembly) = self.assembly.as_mut() else {
            return;
        };
        // Only the endgame asks for copies; until then this map is not needed.
        let in_hand = match assembly.picker().in_endgame() {
            true => fastest_holding(&self.sources),
            false => HashMap::new(),
        };
        let mut ready: Vec<(&mut Source, Option<f64>)> = self
            .sources
            .values_mut()
            .filter_map(|source| match &source.state {
                SourceState::Running {
                    ready: true,
                    ordered,
                    ..
                } if source.have.is_some() => {
                    let rate = ordered.rate();
                    Some((source, rate))
                }
                _ => None,
            })
            .collect();
        // Unmeasured sources first (they need pieces to be measured), then by rate.
        ready.sort_by(|a, b| {
            let key = |r: Option<f64>| r.unwrap_or(f64::INFINITY);
            key(b.1).total_cmp(&key(a.1))
        });
        let fastest = ready.iter().filter_map(|(_, r)| *r).fold(0.0, f64::max);
        for (source, rate) in ready {
            let slow = rate.is_some_and(|r| r * SLOW_FACTOR < fastest);
            let (
                SourceState::Running {
                    orders, ordered, ..
                },
                Some(have),
            ) = (&mut source.state, &source.have)
            else {
                continue;
            };
            // A slow source serves others too (a sharer many downloaders
            // share): one piece at a time keeps it busy, and every extra
            // piece asked of it is one another downloader may ask for too.
            let window = match slow {
                true => 1,
                false => ordered.window(assembly.piece_len()),
            };
            while ordered.len() < window {
                let picker = assembly.picker();
                let index = if slow {
                    picker.pick_held_by_at_most(have, 1)
                } else {
                    let worth_a_copy = |i: u64| {
                        let holder = in_hand.get(&i).copied().unwrap_or(f64::INFINITY);
                        rate.is_some_and(|r| r > ENDGAME_FACTOR * holder)
                    };
                    picker.pick(have).or_else(|| {
                        picker.pick_again(have, |i| ordered.contains(i) || !worth_a_copy(i))
                    })
                };
                let Some(index) = index else {
                    break;
                };
                let Some(buffer) = assembly.take_buffer() else {
                    assembly.picker().release(index);
                    break;
                };
                match orders.try_send(Order { index, buffer }) {
                    Ok(()) => {
                        tracing::trace!(index, slow, window, "piece asked");
                        ordered.asked(index, Instant::now());
                    }
                    Err(refused) => {
                        let order = refused.into_inner();
                        assembly.give_back(order.buffer);
                        assembly.picker().release(index);
                        break;
                    }
                }
            }
        }
    }

    /// Looks for more holders when few sources run and none waits to be asked.
    fn look_again_if_few(&mut self) {
        let untried = self
            .sources
            .values()
            .any(|s| matches!(s.state, SourceState::Untried));
        let few = (1..FEW_SOURCES).contains(&self.running());
        let looked_lately = self
            .last_lookup
            .is_some_and(|t| t.elapsed() < LOOKUP_WHEN_FEW_EVERY);
        if few && !untried && !looked_lately && self.lookups.is_empty() {
            self.look_up_holders();
        }
    }

    /// Fails the download once no source is left and none turned up in time;
    /// until then, looks for holders. When every source left is busy, the
    /// download is queued instead (its caller retries it later).
    fn give_up_if_sourceless(&mut self) -> Result<(), NodeError> {
        let working = self
            .sources
            .values()
            .any(|s| matches!(s.state, SourceState::Running { .. } | SourceState::Untried));
        if working {
            self.sourceless_since = None;
            return Ok(());
        }
        if self
            .sources
            .values()
            .any(|s| matches!(s.state, SourceState::Waiting))
        {
            let reason = match self.last_error.take() {
                Some(NodeError::Busy(reason)) => reason,
                _ => "every source is busy".into(),
            };
            return Err(NodeError::Busy(reason));
        }
        let since = *self.sourceless_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.parts.source_patience && self.lookups.is_empty() {
            return Err(self.no_source_left());
        }
        let looked_lately = self
            .last_lookup
            .is_some_and(|t| t.elapsed() < LOOKUP_AT_MOST_EVERY);
        if self.lookups.is_empty() {
            if looked_lately {
                self.due.insert(Due::LookupSoon, LOOKUP_AT_MOST_EVERY);
            } else {
                self.look_up_holders();
            }
        }
        Ok(())
    }

    fn no_source_left(&mut self) -> NodeError {
        let verified = self.progress.verified();
        let reason = match self.last_error.take() {
            Some(NodeError::Io(e)) => format!("connection lost ({e})"),
            Some(e) => e.to_string(),
            None => "no peer holding the file could be found".into(),
        };
        NodeError::Transfer(format!(
            "no source left after {verified} of {} bytes: {reason}. The verified pieces \
             are kept: run the same `peershare get` again to resume",
            self.target.size
        ))
    }

    async fn on_report(&mut self, report: Report) -> Result<(), NodeError> {
        match report {
            Report::Ready {
                peer,
                outboard,
                have,
                hints,
                path,
            } => {
                self.progress.source_path(peer, path);
                self.add_hinted(hints);
                self.on_ready(peer, outboard, have).await
            }
            Report::Skipped { peer, order } => {
                if let Some(SourceState::Running { ordered, .. }) =
                    self.sources.get_mut(&peer).map(|s| &mut s.state)
                {
                    ordered.forget(order.index);
                }
                if let Some(assembly) = self.assembly.as_mut() {
                    assembly.give_back(order.buffer);
                    assembly.picker().release(order.index);
                }
                Ok(())
            }
            Report::Have { peer, indices } => {
                self.on_have(peer, indices);
                Ok(())
            }
            Report::Piece {
                peer,
                index,
                buffer,
            } => {
                tracing::trace!(%peer, index, "piece arrived");
                self.cancel_copies(peer, index);
                self.progress.add_fetched(buffer.len() as u64);
                self.progress.source_piece(peer, buffer.len() as u64);
                let source = self.sources.get_mut(&peer);
                if let Some(source) = source {
                    source.pieces += 1;
                    if let SourceState::Running { ordered, .. } = &mut source.state {
                        ordered.arrived(index, buffer.len() as u64, Instant::now());
                    }
                }
                let assembly = self.assembly.as_mut().expect("pieces come after the tree");
                if assembly.has(index) || self.sent_by.contains_key(&index) {
                    // The other copy of an endgame piece.
                    assembly.give_back(buffer);
                    assembly.picker().release(index);
                    return Ok(());
                }
                self.sent_by.insert(index, peer);
                for applied in assembly.submit(index, buffer).await? {
                    self.on_verdict(applied);
                }
                Ok(())
            }
            Report::Ended {
                peer,
                error,
                unfilled,
            } => {
                if let Some(assembly) = self.assembly.as_mut() {
                    for order in unfilled {
                        assembly.give_back(order.buffer);
                        assembly.picker().release(order.index);
                    }
                }
                self.on_source_ended(peer, error);
                Ok(())
            }
        }
    }

    /// Piece `index` came from `from`: every other source asked for it is told to skip it.
    fn cancel_copies(&mut self, from: PeerId, index: u64) {
        for (peer, source) in &self.sources {
            if let SourceState::Running {
                cancels, ordered, ..
            } = &source.state
            {
                if *peer != from && ordered.contains(index) {
                    // A full queue only means the copy is fetched and discarded.
                    let _ = cancels.try_send(index);
                }
            }
        }
    }

    /// Peers a source named as fetching or holding the file: candidates too.
    fn add_hinted(&mut self, hints: Vec<String>) {
        for hint in hints.iter().take(MAX_SWARM_HINTS) {
            if let Ok((peer, addr)) = parse_peer_addr(hint) {
                self.add_candidate(peer, vec![addr], SourceFound::Hint);
            }
        }
    }

    /// A partial source has more pieces.
    fn on_have(&mut self, peer: PeerId, indices: Vec<u64>) {
        let Some(have) = self.sources.get_mut(&peer).and_then(|s| s.have.as_mut()) else {
            return;
        };
        let new: Vec<u64> = indices.into_iter().filter(|i| have.insert(*i)).collect();
        tracing::trace!(%peer, ?new, "source has more pieces");
        if let Some(assembly) = self.assembly.as_mut() {
            for index in new {
                assembly.picker().source_got(index);
            }
        }
    }

    /// A source sent a tree that matches the id: the first one starts the assembly.
    async fn on_ready(
        &mut self,
        peer: PeerId,
        outboard: Outboard,
        have: PieceSet,
    ) -> Result<(), NodeError> {
        if let Some(known) = &self.outboard {
            if known.layout() != outboard.layout() {
                self.drop_source(peer, "it cuts the file into pieces of another size");
                return Ok(());
            }
        } else {
            self.start_assembly(outboard).await?;
        }
        if let Some(source) = self.sources.get_mut(&peer) {
            if let SourceState::Running { ready, .. } = &mut source.state {
                if let Some(assembly) = self.assembly.as_mut() {
                    assembly.picker().add_source(&have);
                }
                source.have = Some(have);
                *ready = true;
                source.busy.reset();
                self.progress.source_changed(true);
                self.progress
                    .source_phase(peer, SourcePhase::Fetching, None);
            }
        }
        Ok(())
    }

    async fn start_assembly(&mut self, outboard: Outboard) -> Result<(), NodeError> {
        let outboard = Arc::new(outboard);
        let map = super::verify_inherited(
            self.target.part_path,
            self.target.map_path.clone(),
            outboard.clone(),
        )
        .await?;
        let layout = outboard.layout();
        self.progress
            .set_verified(super::verified_bytes(&map, layout));
        self.outboard = Some(outboard.clone());
        if map.is_complete() {
            return Ok(());
        }
        let part = open_partial(self.target.part_path, self.target.size)?;
        let buffers = (BUFFER_BUDGET / layout.piece_len()).max(1) as usize;
        let order = match self.target.sequential {
            true => PieceOrder::Sequential,
            false => PieceOrder::Shuffled(rand::random()),
        };
        let assembly = Assembly::start(
            outboard.clone(),
            self.target.part_path,
            part,
            (map, order),
            buffers,
        )?;
        self.offer = Some(self.parts.partials.offer(
            self.target.name.to_string(),
            self.target.part_path.to_path_buf(),
            outboard,
            assembly.verified_pieces(),
        ));
        self.assembly = Some(assembly);
        Ok(())
    }

    fn on_source_ended(&mut self, peer: PeerId, error: Option<Failure>) {
        self.forget_pieces_of(peer);
        let Some(source) = self.sources.get_mut(&peer) else {
            return;
        };
        if let SourceState::Running { ready: true, .. } = source.state {
            self.progress.source_changed(false);
        }
        let was_dropped = matches!(source.state, SourceState::Dropped);
        if let Some(Failure {
            error,
            silent: true,
        }) = error
        {
            if was_dropped {
                return;
            }
            // Silence is not refusal: the peer may be frozen for a while, or
            // its network down; it is asked again after a growing pause, and
            // with no other source the download is queued with this reason.
            let pause = source.busy.next_pause();
            let reason = format!("{peer} stopped answering: {error}");
            tracing::info!(%peer, ?pause, "source silent: {error}");
            source.state = SourceState::Waiting;
            let note = format!("{error}; asking again in {} s", pause.as_secs());
            self.progress
                .source_phase(peer, SourcePhase::Silent, Some(note));
            self.last_error = Some(NodeError::Busy(reason));
            self.due.insert(Due::Retry(peer), pause);
            return;
        }
        match error.map(|f| f.error) {
            Some(NodeError::Busy(reason)) => {
                let pause = source.busy.next_pause();
                tracing::info!(%peer, ?pause, "source busy; asking again later");
                source.state = SourceState::Waiting;
                self.progress
                    .source_phase(peer, SourcePhase::Busy, Some(reason.clone()));
                self.last_error = Some(NodeError::Busy(reason));
                self.due.insert(Due::Retry(peer), pause);
            }
            Some(NodeError::NotFound(reason)) if source.not_found < NOT_FOUND_TRIES => {
                source.not_found += 1;
                let pause = NOT_FOUND_RETRY * source.not_found;
                tracing::debug!(%peer, ?pause, "source does not offer the file yet: {reason}");
                source.state = SourceState::Resting;
                self.progress
                    .source_phase(peer, SourcePhase::Busy, Some(reason.clone()));
                self.last_error = Some(NodeError::NotFound(reason));
                self.due.insert(Due::Retry(peer), pause);
            }
            Some(NodeError::Stopped) | None => {
                if !was_dropped {
                    source.state = SourceState::Dropped;
                    self.progress.source_phase(peer, SourcePhase::Done, None);
                }
            }
            Some(error) => {
                tracing::info!(%peer, "source ended: {error}");
                source.state = SourceState::Dropped;
                self.progress
                    .source_phase(peer, SourcePhase::Dropped, Some(error.to_string()));
                if !was_dropped {
                    self.last_error = Some(error);
                }
            }
        }
    }

    fn on_verdict(&mut self, applied: Applied) {
        match applied {
            Applied::Verified { index, bytes } => {
                self.progress.add_verified(bytes);
                if let Some(offer) = &self.offer {
                    offer.landed(index);
                }
            }
            Applied::Corrupt { index, error } => {
                let Some(peer) = self.sent_by.remove(&index) else {
                    return;
                };
                let reason = format!("it sent corrupt data ({error})");
                self.last_error = Some(NodeError::Transfer(format!(
                    "source {peer} was dropped: {error}"
                )));
                self.drop_source(peer, &reason);
                return;
            }
        }
        // A verified piece's sender is no longer in question.
        let assembly = self.assembly.as_ref();
        self.sent_by
            .retain(|index, _| assembly.is_some_and(|a| !a.has(*index)));
    }

    /// A source is gone: the pieces it has no longer count as available.
    fn forget_pieces_of(&mut self, peer: PeerId) {
        let have = self.sources.get_mut(&peer).and_then(|s| s.have.take());
        if let (Some(have), Some(assembly)) = (have, self.assembly.as_mut()) {
            assembly.picker().remove_source(&have);
        }
    }

    /// Stops asking `peer` for this file, saying why in the log.
    fn drop_source(&mut self, peer: PeerId, why: &str) {
        self.forget_pieces_of(peer);
        let Some(source) = self.sources.get_mut(&peer) else {
            return;
        };
        tracing::warn!(%peer, "dropping a source of {}: {why}", self.target.id);
        self.progress
            .source_phase(peer, SourcePhase::Dropped, Some(why.to_string()));
        if let SourceState::Running { stop, .. } = &source.state {
            stop.cancel();
        }
        if let SourceState::Running { ready: true, .. } = source.state {
            self.progress.source_changed(false);
        }
        source.state = SourceState::Dropped;
    }

    fn on_holders_found(&mut self, found: Result<Vec<String>, NodeError>) {
        match found {
            Ok(addrs) => {
                let mut holders: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for full in addrs {
                    if let Ok((peer, addr)) = parse_peer_addr(&full) {
                        holders.entry(peer).or_default().push(addr);
                    }
                }
                let new = holders
                    .keys()
                    .filter(|p| !self.sources.contains_key(p))
                    .count();
                if new > 0 {
                    tracing::info!(new, "more holders of {} found", self.target.id);
                }
                for (peer, addrs) in holders {
                    self.add_candidate(peer, addrs, SourceFound::Lookup);
                }
            }
            Err(e) => tracing::debug!("looking up holders of {}: {e}", self.target.id),
        }
    }

    fn on_due(&mut self, due: Due) {
        match due {
            Due::Retry(peer) => {
                if let Some(source) = self.sources.get_mut(&peer) {
                    if matches!(source.state, SourceState::Waiting | SourceState::Resting) {
                        source.state = SourceState::Untried;
                    }
                }
            }
            Due::Lookup => {
                if self.lookups.is_empty() {
                    self.look_up_holders();
                }
                self.due.insert(Due::Lookup, LOOKUP_EVERY);
            }
            Due::LookupSoon => {
                if self.lookups.is_empty() {
                    self.look_up_holders();
                }
            }
            Due::AskNotice(peer) => self.on_ask_overdue(peer),
        }
    }

    /// A source asked [`ASK_NOTICE`] ago: if it has not answered, the
    /// download says what it waits for and frees its place for another
    /// source (a sharer that asks its person may hold the request a
    /// minute or two; a frozen one is caught by ping sooner).
    fn on_ask_overdue(&mut self, peer: PeerId) {
        let Some(SourceState::Running {
            ready: false,
            overdue,
            ..
        }) = self.sources.get_mut(&peer).map(|s| &mut s.state)
        else {
            return;
        };
        *overdue = true;
        let others = self
            .sources
            .iter()
            .any(|(p, s)| *p != peer && !matches!(s.state, SourceState::Dropped));
        let note = format!(
            "no answer after {} s: waiting for it to accept{}",
            ASK_NOTICE.as_secs(),
            match others {
                true => "; trying the other sources meanwhile",
                false => " (a sharer that asks its person may take a minute or two)",
            }
        );
        tracing::info!(%peer, "source has not answered yet: {note}");
        self.progress
            .source_phase(peer, SourcePhase::Asking, Some(note));
    }

    /// Asks the index and the DHT for holders of the file, in the background.
    fn look_up_holders(&mut self) {
        self.last_lookup = Some(Instant::now());
        let host = self.parts.host.clone();
        let index = self.parts.index.clone();
        let id = self.target.id;
        self.lookups.spawn(async move {
            let reach = Reach {
                host: &host,
                index: index.as_ref(),
            };
            holders_of(reach, &id).await
        });
    }

    /// Stops every source and lookup, and lets the assembly record what it verified.
    async fn end(mut self) -> Result<(), NodeError> {
        for (peer, source) in &self.sources {
            if let SourceState::Running { stop, .. } = &source.state {
                stop.cancel();
                self.progress.source_phase(*peer, SourcePhase::Done, None);
            }
        }
        self.lookups.shutdown().await;
        self.tasks.shutdown().await;
        if let Some(assembly) = self.assembly.take() {
            assembly.finish().await?;
        }
        let served: Vec<String> = self
            .sources
            .iter()
            .filter(|(_, s)| s.pieces > 0)
            .map(|(peer, s)| format!("{peer}: {}", s.pieces))
            .collect();
        if !served.is_empty() {
            tracing::info!(
                "pieces of {} by source: {}",
                self.target.id,
                served.join(", ")
            );
        }
        Ok(())
    }
}

/// For each piece asked of some source, the best measured rate among the
/// sources that have it in hand (unmeasured ones count as fast).
fn fastest_holding(sources: &HashMap<PeerId, Source>) -> HashMap<u64, f64> {
    let mut best: HashMap<u64, f64> = HashMap::new();
    for source in sources.values() {
        if let SourceState::Running { ordered, .. } = &source.state {
            let rate = ordered.rate().unwrap_or(f64::INFINITY);
            for index in ordered.pieces() {
                let slot = best.entry(index).or_insert(0.0);
                *slot = slot.max(rate);
            }
        }
    }
    best
}

/// The next peer that asked for the file this download offers; never
/// completes while nothing is offered.
async fn next_asker(offer: &mut Option<PartialOffer>) -> Option<PeerId> {
    match offer {
        Some(offer) => offer.next_asker().await,
        None => std::future::pending().await,
    }
}

/// The next verdict of the assembly; never completes without one.
async fn next_verdict(assembly: &mut Option<Assembly>) -> Result<Applied, NodeError> {
    match assembly {
        Some(assembly) => assembly.next_verdict().await,
        None => std::future::pending().await,
    }
}
