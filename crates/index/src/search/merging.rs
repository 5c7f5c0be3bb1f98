//! How the text index's segments are merged: tantivy's log-sized merges
//! ([`MERGE_FACTOR`] segments of a size at a time) while titles come and
//! go, and once the indexer has been idle for [`MERGE_SMALL_AFTER_IDLE`],
//! one more merge of the segments far smaller than the largest, so a
//! search visits a handful of segments.
//!
//! Every search looks each of its terms up in every segment, so its cost
//! grows with their number: after a 10M fill the log policy had left 5 to
//! 21 segments (up to fifteen of them under an eighth of the largest), and
//! exact names and words with an extension ran 1.3 to 3 times as fast on
//! 8 segments as on 21 (bench/README.md). Merging the small ones only
//! while nothing changes keeps that work off joins, and merging only those
//! under [`SMALL_FRACTION`] of the largest bounds it.
//!
//! It owns the merge policy and its idle flag; it never starts a merge
//! itself (tantivy asks the policy after each commit and each merge, and
//! passes only segments no other merge holds).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tantivy::merge_policy::{LogMergePolicy, MergeCandidate, MergePolicy};
use tantivy::SegmentMeta;

/// How long the indexer must have had no change before the small segments
/// are merged.
pub const MERGE_SMALL_AFTER_IDLE: Duration = Duration::from_secs(3);
/// A segment is small below the largest's documents over this.
const SMALL_FRACTION: u32 = 8;
/// Segments of a size merged at once by the log policy (tantivy's default
/// is 8). Each title is rewritten once per level it climbs: with commits
/// of about 16,000 titles, 8 at a time climbs to 1M and then 8M within a
/// 10M fill, 12 at a time to 1.7M only, and the text index's CPU per title
/// fell by a tenth at 10M (bench/README.md, eighth pass). Up to 11
/// segments of a size, not 7, are left while titles change; the idle
/// merge takes the small ones.
pub const MERGE_FACTOR: usize = 12;

/// Whether the indexer is idle, shared by it and the merge policy.
#[derive(Debug, Clone, Default)]
pub struct IdleFlag(Arc<AtomicBool>);

impl IdleFlag {
    /// Marks the indexer idle; true when it was busy until now.
    pub fn begin(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }

    /// Marks the indexer busy with changes.
    pub fn end(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    fn is_idle(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// tantivy's log merge policy ([`MERGE_FACTOR`] at a time), and the small
/// segments merged into one while the indexer is idle.
#[derive(Debug)]
pub struct MergeSmallWhenIdle {
    log: LogMergePolicy,
    idle: IdleFlag,
}

impl MergeSmallWhenIdle {
    /// The policy, merging small segments while `idle` says so.
    pub fn new(idle: IdleFlag) -> Self {
        Self {
            log: {
                let mut log = LogMergePolicy::default();
                log.set_min_num_segments(MERGE_FACTOR);
                log
            },
            idle,
        }
    }
}

impl MergePolicy for MergeSmallWhenIdle {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let candidates = self.log.compute_merge_candidates(segments);
        if !candidates.is_empty() || !self.idle.is_idle() {
            return candidates;
        }
        small_segments(segments).into_iter().collect()
    }
}

/// The segments under [`SMALL_FRACTION`] of the largest, when there are at
/// least two of them.
fn small_segments(segments: &[SegmentMeta]) -> Option<MergeCandidate> {
    let largest = segments.iter().map(SegmentMeta::num_docs).max()?;
    let small: Vec<_> = segments
        .iter()
        .filter(|s| s.num_docs() < largest / SMALL_FRACTION)
        .map(SegmentMeta::id)
        .collect();
    (small.len() >= 2).then_some(MergeCandidate(small))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::index::SegmentId;
    use tantivy::schema::Schema;
    use tantivy::Index;

    fn metas(sizes: &[u32]) -> Vec<SegmentMeta> {
        let index = Index::create_in_ram(Schema::builder().build());
        sizes
            .iter()
            .map(|&n| index.new_segment_meta(SegmentId::generate_random(), n))
            .collect()
    }

    fn merged(policy: &MergeSmallWhenIdle, segments: &[SegmentMeta]) -> Vec<u32> {
        let candidates = policy.compute_merge_candidates(segments);
        let mut sizes: Vec<u32> = candidates
            .iter()
            .flat_map(|c| &c.0)
            .map(|id| segments.iter().find(|s| s.id() == *id).unwrap().num_docs())
            .collect();
        sizes.sort_unstable();
        sizes
    }

    #[test]
    fn only_an_idle_indexer_merges_the_segments_far_below_the_largest() {
        // The layout a 10M fill left: five large segments (fewer than the
        // log policy merges at once) and fifteen small ones in several
        // log levels, none of them full.
        let sizes = [
            993, 1989, 3972, 7867, 21945, 32729, 50413, 88955, 91329, 186_419, 200_005, 200_010,
            200_119, 200_120, 200_352, 1_538_456, 1_602_753, 1_603_302, 1_603_762, 1_604_000,
        ];
        let segments = metas(&sizes);
        let idle = IdleFlag::default();
        let policy = MergeSmallWhenIdle::new(idle.clone());
        assert!(
            merged(&policy, &segments).is_empty(),
            "busy: log merges only"
        );

        assert!(idle.begin());
        assert!(!idle.begin(), "already idle");
        let small = merged(&policy, &segments);
        assert_eq!(small, sizes[..15].to_vec(), "every one under 200,500 docs");

        idle.end();
        assert!(merged(&policy, &segments).is_empty());
    }

    #[test]
    fn one_small_segment_or_equal_ones_are_left_alone() {
        let policy = MergeSmallWhenIdle::new(IdleFlag::default());
        policy.idle.begin();
        for sizes in [
            &[1000, 1_600_000, 1_600_000][..],
            &[1_600_000; 6],
            &[5],
            &[],
        ] {
            assert!(merged(&policy, &metas(sizes)).is_empty(), "{sizes:?}");
        }
        assert_eq!(merged(&policy, &metas(&[10, 20, 800])), vec![10, 20]);
    }
}
