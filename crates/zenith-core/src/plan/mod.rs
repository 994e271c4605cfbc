//! The planner: a pure function from (unit list, seed, epoch, rank, world size, resume history)
//! to the row slices a rank reads and the order it emits them in. Thread count and timing never
//! enter, so runs are reproducible and resumable.
//!
//! An epoch's plan for a rank is a list of [`Segment`]s. Each segment is a range of positions
//! inside a [`Window`]: a group of unit slices that are read together and, when shuffling,
//! emitted in one seeded random permutation. Unit order is permuted per epoch; windows mix rows
//! of many units, so batches mix the whole dataset while memory stays bounded by the window.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::UnitRef;
use crate::error::{Error, Result};

pub mod state;

pub use state::{PlanInputs, PlanState};

/// Rows `[start, end)` of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitSlice {
    /// The unit.
    pub unit: UnitRef,
    /// First row within the unit.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
}

impl UnitSlice {
    /// Rows in the slice.
    pub fn rows(&self) -> usize {
        self.end - self.start
    }
}

/// Unit slices read together and permuted together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Slices, concatenated in this order.
    pub slices: Vec<UnitSlice>,
    /// Total rows.
    pub rows: usize,
    /// Seed of the permutation; `None` keeps the read order.
    pub perm_seed: Option<u64>,
}

impl Window {
    /// The emission order: a seeded permutation of `0..rows`, or the identity.
    pub fn order(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.rows as u32).collect();
        self.permute(&mut order);
        order
    }

    /// Applies the window's permutation to `items` (one per row, in read order): afterwards
    /// `items[j]` is the row emitted at position `j`.
    pub fn permute<T>(&self, items: &mut [T]) {
        if let Some(seed) = self.perm_seed {
            items.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
    }
}

/// Positions `[from, to)` of a window's emission order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The window.
    pub window: Arc<Window>,
    /// First position emitted.
    pub from: usize,
    /// One past the last position emitted.
    pub to: usize,
}

impl Segment {
    /// Rows the segment emits.
    pub fn rows(&self) -> usize {
        self.to - self.from
    }
}

/// Everything the plan depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    /// Base seed.
    pub seed: u64,
    /// Epoch number.
    pub epoch: u64,
    /// Shuffle units and rows.
    pub shuffle: bool,
    /// Rows per shuffle window (at least 1).
    pub window_rows: usize,
    /// Rows of the first window of a rank; windows double from here up to `window_rows`, so
    /// the first batch arrives after a small read.
    pub first_window_rows: usize,
    /// World size at the start of the epoch.
    pub world_size: usize,
    /// Earlier interruptions of this epoch: (world size then, rows each rank had emitted).
    pub resumes: Vec<(usize, usize)>,
}

/// Mixes numbers into one well-spread seed (SplitMix64 finaliser).
pub fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h ^= p
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// The units in epoch order: file order, or a seeded permutation.
pub fn unit_order(units: &[UnitRef], seed: u64, epoch: u64, shuffle: bool) -> Vec<UnitRef> {
    let mut order: Vec<UnitRef> = units.iter().copied().filter(|u| u.rows > 0).collect();
    if shuffle {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(&[
            seed,
            epoch,
            0x756e_6974,
        ])));
    }
    order
}

/// Rows every rank gets at the start of an epoch: the same count for all ranks; the last
/// `total % world_size` rows of the epoch order are left out so that ranks stay in step.
pub fn rows_per_rank(total: usize, world_size: usize) -> usize {
    total / world_size.max(1)
}

/// The base plan of one rank: its share of the epoch order cut into windows.
fn base_plan(units: &[UnitRef], spec: &PlanSpec, rank: usize) -> Vec<Segment> {
    let order = unit_order(units, spec.seed, spec.epoch, spec.shuffle);
    let total: usize = order.iter().map(|u| u.rows).sum();
    let per_rank = rows_per_rank(total, spec.world_size);
    let (lo, hi) = (rank * per_rank, (rank + 1) * per_rank);
    let mut slices = Vec::new();
    let mut offset = 0;
    for unit in order {
        let (s, e) = (offset, offset + unit.rows);
        offset = e;
        let (a, b) = (s.max(lo), e.min(hi));
        if a < b {
            slices.push(UnitSlice {
                unit,
                start: a - s,
                end: b - s,
            });
        }
        if offset >= hi {
            break;
        }
    }
    let mut segments = Vec::new();
    let mut current: Vec<UnitSlice> = Vec::new();
    let mut rows = 0;
    let flush = |current: &mut Vec<UnitSlice>, rows: &mut usize, segments: &mut Vec<Segment>| {
        if current.is_empty() {
            return;
        }
        let index = segments.len() as u64;
        let window = Window {
            slices: std::mem::take(current),
            rows: *rows,
            perm_seed: spec.shuffle.then(|| {
                mix(&[
                    spec.seed,
                    spec.epoch,
                    rank as u64,
                    spec.world_size as u64,
                    index,
                ])
            }),
        };
        segments.push(Segment {
            to: window.rows,
            from: 0,
            window: Arc::new(window),
        });
        *rows = 0;
    };
    let mut target = spec.first_window_rows.clamp(1, spec.window_rows.max(1));
    for slice in slices {
        rows += slice.rows();
        current.push(slice);
        if rows >= target {
            flush(&mut current, &mut rows, &mut segments);
            target = (target * 2).min(spec.window_rows.max(1));
        }
    }
    flush(&mut current, &mut rows, &mut segments);
    segments
}

/// Drops the first `rows` rows of a segment list.
pub fn skip_rows(segments: &[Segment], mut rows: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    for seg in segments {
        if rows >= seg.rows() {
            rows -= seg.rows();
            continue;
        }
        out.push(Segment {
            window: seg.window.clone(),
            from: seg.from + rows,
            to: seg.to,
        });
        rows = 0;
    }
    out
}

/// Takes rows `[lo, hi)` of a segment list.
fn take_range(segments: &[Segment], lo: usize, hi: usize) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut offset = 0;
    for seg in segments {
        let (s, e) = (offset, offset + seg.rows());
        offset = e;
        let (a, b) = (s.max(lo), e.min(hi));
        if a < b {
            out.push(Segment {
                window: seg.window.clone(),
                from: seg.from + (a - s),
                to: seg.from + (b - s),
            });
        }
    }
    out
}

/// The segments of `rank` for this epoch, after replaying every earlier resume.
///
/// Resume rule: when an epoch was interrupted with world size `w` after each rank had emitted
/// `k` rows, the rows not yet emitted by any rank (rank 0's rest, then rank 1's, ...) are split
/// into contiguous, nearly equal shares (the first `rest % new_world` ranks take one more row)
/// for the new world size. No row is lost or repeated.
pub fn plan_rank(
    units: &[UnitRef],
    spec: &PlanSpec,
    rank: usize,
    world_size: usize,
) -> Result<Vec<Segment>> {
    if world_size == 0 || rank >= world_size {
        return Err(Error::invalid(
            "rank",
            format!("rank {rank} is not below world_size {world_size}"),
        ));
    }
    if spec.resumes.is_empty() {
        if world_size != spec.world_size {
            return Err(Error::invalid(
                "world_size",
                "plan world size differs without a resume",
            ));
        }
        return Ok(base_plan(units, spec, rank));
    }
    // Ranks of the current generation (start of epoch), as segment lists.
    let mut generation: Vec<Vec<Segment>> = (0..spec.world_size)
        .map(|r| base_plan(units, spec, r))
        .collect();
    for (i, &(w, emitted)) in spec.resumes.iter().enumerate() {
        if w != generation.len() {
            return Err(Error::invalid(
                "state",
                "resume history does not match its world sizes",
            ));
        }
        let rest: Vec<Segment> = generation
            .iter()
            .flat_map(|segs| skip_rows(segs, emitted))
            .collect();
        let total: usize = rest.iter().map(Segment::rows).sum();
        let next_world = spec.resumes.get(i + 1).map_or(world_size, |r| r.0);
        let (base, extra) = (total / next_world, total % next_world);
        let mut start = 0;
        generation = (0..next_world)
            .map(|r| {
                let len = base + usize::from(r < extra);
                let part = take_range(&rest, start, start + len);
                start += len;
                part
            })
            .collect();
    }
    Ok(generation.swap_remove(rank))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn units(sizes: &[usize]) -> Vec<UnitRef> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &rows)| UnitRef {
                file: 0,
                unit: i,
                rows,
            })
            .collect()
    }

    /// Global row ids (unit index * 1000 + row) emitted by a segment list.
    fn emitted(segs: &[Segment]) -> Vec<usize> {
        let mut out = Vec::new();
        for seg in segs {
            let mut rows = Vec::new();
            for s in &seg.window.slices {
                rows.extend((s.start..s.end).map(|r| s.unit.unit * 1000 + r));
            }
            let order = seg.window.order();
            out.extend(order[seg.from..seg.to].iter().map(|&p| rows[p as usize]));
        }
        out
    }

    fn spec(world: usize, shuffle: bool) -> PlanSpec {
        PlanSpec {
            seed: 7,
            epoch: 1,
            shuffle,
            window_rows: 25,
            first_window_rows: 5,
            world_size: world,
            resumes: vec![],
        }
    }

    #[test]
    fn no_shuffle_is_file_order() {
        let u = units(&[3, 0, 2]);
        let segs = plan_rank(&u, &spec(1, false), 0, 1).unwrap();
        assert_eq!(emitted(&segs), vec![0, 1, 2, 2000, 2001]);
    }

    #[test]
    fn ranks_partition_and_are_equal() {
        let u = units(&[10, 7, 13, 1, 30]);
        let mut all = Vec::new();
        for r in 0..3 {
            let e = emitted(&plan_rank(&u, &spec(3, true), r, 3).unwrap());
            assert_eq!(e.len(), 61 / 3);
            all.extend(e);
        }
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }

    #[test]
    fn epochs_and_seeds_change_order() {
        let u = units(&[50, 50, 50]);
        let a = emitted(&plan_rank(&u, &spec(1, true), 0, 1).unwrap());
        let mut s = spec(1, true);
        s.epoch = 2;
        let b = emitted(&plan_rank(&u, &s, 0, 1).unwrap());
        s.seed = 8;
        let c = emitted(&plan_rank(&u, &s, 0, 1).unwrap());
        assert_ne!(a, b);
        assert_ne!(b, c);
        let (mut sa, mut sb) = (a.clone(), b.clone());
        sa.sort();
        sb.sort();
        assert_eq!(sa, sb);
    }

    proptest! {
        #[test]
        fn resume_loses_and_repeats_nothing(
            sizes in proptest::collection::vec(0usize..40, 1..12),
            w0 in 1usize..5, w1 in 1usize..5, w2 in 1usize..5,
            f0 in 0.0f64..1.0, f1 in 0.0f64..1.0, shuffle: bool,
        ) {
            let u = units(&sizes);
            let base = spec(w0, shuffle);
            let uninterrupted: Vec<usize> = (0..w0).flat_map(|r| emitted(&plan_rank(&u, &base, r, w0).unwrap())).collect();
            let per0 = rows_per_rank(u.iter().map(|x| x.rows).sum(), w0);
            let k0 = (per0 as f64 * f0) as usize;
            let mut seen: Vec<usize> = (0..w0).flat_map(|r| emitted(&plan_rank(&u, &base, r, w0).unwrap())[..k0].to_vec()).collect();
            let mut s1 = base.clone();
            s1.resumes = vec![(w0, k0)];
            let gen1: Vec<Vec<usize>> = (0..w1).map(|r| emitted(&plan_rank(&u, &s1, r, w1).unwrap())).collect();
            let k1 = (gen1.iter().map(Vec::len).min().unwrap() as f64 * f1) as usize;
            for g in &gen1 { seen.extend_from_slice(&g[..k1]); }
            let mut s2 = s1.clone();
            s2.resumes.push((w1, k1));
            for r in 0..w2 { seen.extend(emitted(&plan_rank(&u, &s2, r, w2).unwrap())); }
            let mut a = uninterrupted.clone();
            a.sort();
            seen.sort();
            prop_assert_eq!(a, seen);
        }
    }
}
