//! Replays every committed fuzz input on stable, as CI does: each file of
//! `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/` goes through its
//! target, which panics on a decoder crash or a broken property. A target
//! with an empty or missing corpus fails the test, so deleting one is seen.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files directly inside `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable corpus folder").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` on every file of `files`, naming the file that fails.
fn replay(target: &str, files: &[PathBuf]) {
    for file in files {
        let data = fs::read(file).expect("a readable corpus file");
        let outcome = std::panic::catch_unwind(|| peershare_fuzz::run(target, &data));
        match outcome {
            Ok(Some(())) => {}
            Ok(None) => panic!("no target named {target}"),
            Err(_) => panic!("{target} failed on {}", file.display()),
        }
    }
}

/// Replays every target's corpus and regressions under `root`; panics on
/// a failing input or on a target without corpus entries.
fn replay_all(root: &Path) {
    let started = Instant::now();
    let mut total = 0;
    for target in peershare_fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{target} is empty or missing: every target keeps a corpus"
        );
        let regressions = inputs(&root.join("regressions").join(target));
        replay(target, &corpus);
        replay(target, &regressions);
        total += corpus.len() + regressions.len();
        println!(
            "{target}: {} corpus entries, {} regressions",
            corpus.len(),
            regressions.len()
        );
    }
    println!("{total} inputs in {:?}", started.elapsed());
}

#[test]
fn every_corpus_entry_decodes_without_a_panic() {
    replay_all(&fuzz_dir());
    // The file_name target's scratch folder (made once per process) goes too.
    let names = std::env::temp_dir().join(format!("peershare-fuzz-names-{}", std::process::id()));
    let _ = fs::remove_dir_all(names);
}

#[test]
fn every_target_directory_names_a_target() {
    for kind in ["corpus", "regressions", "fuzz_targets"] {
        let Ok(entries) = fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable folder").path();
            let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
            assert!(
                peershare_fuzz::TARGETS.contains(&name),
                "fuzz/{kind}/{name} matches no target in peershare_fuzz::TARGETS"
            );
        }
    }
}

#[test]
fn a_missing_corpus_fails_the_replay() {
    // A copy of the real corpora with one target's folder left out must fail.
    let root = std::env::temp_dir().join(format!("peershare-fuzz-missing-{}", std::process::id()));
    for target in &peershare_fuzz::TARGETS[1..] {
        let dir = root.join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        for file in inputs(&fuzz_dir().join("corpus").join(target))
            .iter()
            .take(3)
        {
            fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
        }
    }
    let outcome = std::panic::catch_unwind(|| replay_all(&root));
    fs::remove_dir_all(&root).unwrap();
    assert!(outcome.is_err(), "a target without a corpus passed");
    assert!(peershare_fuzz::run("no_such_target", b"").is_none());
}
