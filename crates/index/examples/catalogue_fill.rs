//! The search structure's share of a join, alone: peers of 1,000 files
//! join the online catalogue from closed-loop clients, each waiting until
//! its files are searchable (as the index's join handler does), with no
//! HTTP and no durable store. Prints files/s, the process's CPU per file
//! while joining, and the CPU per file once the text index's merges have
//! ended. Not a test; run by hand when changing how titles are indexed
//! (bench/README.md says what it showed).
//!
//! Usage: `catalogue_fill PEERS [CLIENTS]` (defaults: 16 clients). Names
//! follow bench/index_load.py's mix (music, lectures, episodes, photos,
//! documents, images; a fifth from a pool of popular files).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use peershare_index::search::catalogue::{Catalogue, OnlinePeer};
use peershare_index::store::FileRow;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The same allocator as the `peershare` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FILES_PER_PEER: usize = 1000;
const POPULAR_FILES: u64 = 5000;

const FIRST: &[&str] = &[
    "Anna", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Gloria", "Hugo", "Irene", "Jonas",
    "Karin", "Luca", "Marta", "Nico", "Olga", "Pedro", "Rita", "Sven",
];
const LAST: &[&str] = &[
    "Almeida", "Berg", "Costa", "Duarte", "Eriksen", "Ferraz", "Gomez", "Hansen", "Jensen",
    "Klein", "Lopes", "Moreau", "Nunes", "Olsen", "Pereira", "Ramos", "Silva", "Weber",
];
const TITLE: &[&str] = &[
    "Love", "Night", "Summer", "River", "Blue", "Morning", "Dance", "Heart", "City", "Rain",
    "Fire", "Golden", "Dream", "Midnight", "Ocean", "Shadow", "Light", "Road", "Home", "Wild",
    "Silver", "Winter", "Echo", "Paper", "Stone", "Sky", "Garden", "Train", "Letter", "Storm",
];
const SUBJECT: &[&str] = &[
    "Calculus",
    "Algebra",
    "Physics",
    "Chemistry",
    "Biology",
    "History",
    "Economics",
    "Statistics",
    "Programming",
    "Databases",
    "Networks",
    "Philosophy",
];
const TOPIC: &[&str] = &[
    "introduction",
    "limits",
    "derivatives",
    "integrals",
    "vectors",
    "matrices",
    "entropy",
    "evolution",
    "cells",
    "markets",
    "inflation",
    "regression",
    "sorting",
    "graphs",
    "recursion",
    "transactions",
    "indexing",
    "routing",
    "ethics",
    "poetry",
    "climate",
];
const SHOW: &[&str] = &[
    "Dark Harbor",
    "Silent Valley",
    "The Last Orbit",
    "Blue Lanterns",
    "Northern Line",
    "Paper Kings",
    "Iron Meadow",
    "Glass Cities",
    "The Quiet Room",
    "Red Canyon",
];
const PLACE: &[&str] = &[
    "lisbon", "porto", "berlin", "paris", "rome", "madrid", "oslo", "prague", "vienna", "dublin",
];
const DOC: &[&str] = &[
    "report", "invoice", "manual", "thesis", "slides", "notes", "contract", "budget",
];
const DISTRO: &[&str] = &["debian", "ubuntu", "fedora", "arch", "alpine", "mint"];

fn pick<'a>(rng: &mut StdRng, words: &[&'a str]) -> &'a str {
    words[rng.gen_range(0..words.len())]
}

/// One file name and its extension, in bench/index_load.py's proportions.
fn make_name(rng: &mut StdRng) -> (String, &'static str) {
    match rng.gen_range(0..100) {
        0..=35 => {
            let ext = if rng.gen_range(0..6) == 0 {
                "flac"
            } else {
                "mp3"
            };
            let words = rng.gen_range(1..=3);
            let title: Vec<&str> = (0..words).map(|_| pick(rng, TITLE)).collect();
            let extra =
                ["", "", "", " (Live)", " (Remastered)", " (Acoustic)"][rng.gen_range(0..6)];
            let (first, last) = (pick(rng, FIRST), pick(rng, LAST));
            (
                format!("{first} {last} - {}{extra}.{ext}", title.join(" ")),
                ext,
            )
        }
        36..=53 => {
            let (subject, topic) = (pick(rng, SUBJECT), pick(rng, TOPIC));
            let n = rng.gen_range(1..=40);
            (format!("{subject} Lecture {n:02} - {topic}.mp4"), "mp4")
        }
        54..=65 => {
            let (show, quality) = (pick(rng, SHOW), pick(rng, &["720p", "1080p", "2160p"]));
            let (s, e) = (rng.gen_range(1..=8), rng.gen_range(1..=24));
            (format!("{show} S{s:02}E{e:02} {quality}.mkv"), "mkv")
        }
        66..=83 => {
            let (n, place, year) = (
                rng.gen_range(1..=99999),
                pick(rng, PLACE),
                rng.gen_range(2005..=2026),
            );
            (format!("IMG_{n:05} {place} {year}.jpg"), "jpg")
        }
        84..=95 => {
            let (topic, doc, year) = (pick(rng, TOPIC), pick(rng, DOC), rng.gen_range(2010..=2026));
            (format!("{topic} {doc} {year}.pdf"), "pdf")
        }
        _ => {
            let (distro, major, minor) = (
                pick(rng, DISTRO),
                rng.gen_range(9..=42),
                rng.gen_range(0..=9),
            );
            (format!("{distro}-{major}.{minor}-amd64.iso"), "iso")
        }
    }
}

fn make_file(rng: &mut StdRng) -> FileRow {
    let (name, ext) = make_name(rng);
    let id: [u8; 32] = rng.gen();
    FileRow {
        file_id: id.iter().map(|b| format!("{b:02x}")).collect(),
        name,
        size: rng.gen_range(10_000..4_000_000_000),
        ext: ext.to_string(),
    }
}

fn peer_files(peer: u64) -> Vec<FileRow> {
    let mut rng = StdRng::seed_from_u64(1_000_003 * (peer + 1));
    (0..FILES_PER_PEER)
        .map(|_| {
            if rng.gen_range(0..5) == 0 {
                make_file(&mut StdRng::seed_from_u64(rng.gen_range(0..POPULAR_FILES)))
            } else {
                make_file(&mut rng)
            }
        })
        .collect()
}

/// This process's user and system CPU so far, in seconds.
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let peers: u64 = args
        .get(1)
        .ok_or("usage: catalogue_fill PEERS [CLIENTS]")?
        .parse()?;
    let clients: usize = args.get(2).map_or(Ok(16), |c| c.parse())?;
    let lists: Arc<Vec<std::sync::Mutex<Vec<FileRow>>>> = Arc::new(
        (0..peers)
            .map(|p| std::sync::Mutex::new(peer_files(p)))
            .collect(),
    );
    let folder = tempfile::tempdir()?;
    let catalogue = Arc::new(Catalogue::open(folder.path(), u64::from(u32::MAX))?);

    let next = Arc::new(AtomicUsize::new(0));
    let (began, cpu_before) = (Instant::now(), process_cpu());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (catalogue, lists, next) = (catalogue.clone(), lists.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let peer = next.fetch_add(1, Ordering::Relaxed);
                let Some(list) = lists.get(peer) else { break };
                let files = std::mem::take(&mut *list.lock().unwrap_or_else(|p| p.into_inner()));
                let online = OnlinePeer {
                    peer_id: format!("peer-{peer}"),
                    user: format!("user-{peer}"),
                    addrs: vec!["/ip4/127.0.0.1/tcp/4001".to_string()],
                    last_seen: 0,
                };
                if let Err(e) = catalogue.join(online, &files).searchable().await {
                    eprintln!("join failed: {e}");
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let joining = began.elapsed().as_secs_f64();
    let cpu_joining = process_cpu() - cpu_before;
    catalogue.close();
    let with_merges = process_cpu() - cpu_before;
    let files = (peers as usize * FILES_PER_PEER) as f64;
    println!(
        "{{\"files\": {files}, \"files_per_sec\": {:.0}, \"cores\": {:.2}, \
         \"us_per_file_joining\": {:.2}, \"us_per_file_with_merges\": {:.2}, \
         \"merge_wait_secs\": {:.1}}}",
        files / joining,
        cpu_joining / joining,
        cpu_joining * 1e6 / files,
        with_merges * 1e6 / files,
        began.elapsed().as_secs_f64() - joining,
    );
    Ok(())
}
