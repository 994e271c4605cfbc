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
    /// Earlier interruptions of this epoch, oldest first.
    pub resumes: Vec<Resume>,
}

/// Where one rank of an interrupted run stopped: the planned rows it consumed and, when it
/// stopped inside a run of rows it had partly delivered (a packer's document or buffer), that
/// run. The planner moves such a run whole to one rank of the next world size; what `skip`
/// and `key` mean is the packer's business (see [`crate::stage::pack`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stop {
    /// Planned rows consumed (for a packer: up to the first row not wholly delivered).
    pub rows: usize,
    /// How much of the run at `rows` was delivered; 0: none, and there is no run.
    #[serde(default)]
    pub skip: u64,
    /// Rows in the run at `rows` (at least 1 when `skip` is set).
    #[serde(default)]
    pub span: usize,
    /// What the run needs to be laid out again as it was (a packer's buffer seed).
    #[serde(default)]
    pub key: u64,
}

/// One interruption of an epoch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Resume {
    /// Every rank of `world_size` had consumed the same rows (batches of rows keep ranks in
    /// step, so one rank's state says where all are). Written as `[world_size, rows]`.
    Lockstep(usize, usize),
    /// Each rank's own stop (a packer's ranks consume documents at their own pace), merged
    /// from the states of all of them.
    Ranks {
        /// World size then.
        world_size: usize,
        /// One stop per rank, in rank order.
        stops: Vec<Stop>,
    },
}

impl Resume {
    /// The world size of the interrupted run.
    pub fn world_size(&self) -> usize {
        match self {
            Resume::Lockstep(w, _) => *w,
            Resume::Ranks { world_size, .. } => *world_size,
        }
    }

    /// Where rank `rank` stopped.
    fn stop(&self, rank: usize) -> Stop {
        match self {
            Resume::Lockstep(_, rows) => Stop {
                rows: *rows,
                ..Stop::default()
            },
            Resume::Ranks { stops, .. } => stops[rank],
        }
    }
}

/// A run of rows of a rank's plan that an interrupted rank had partly delivered: the rank
/// that now reads it continues it from `skip` (see [`Stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its first row, counted in the rank's plan.
    pub at: usize,
    /// Rows in it.
    pub rows: usize,
    /// How much of it was delivered.
    pub skip: u64,
    /// What lays it out again as it was.
    pub key: u64,
}

/// What one rank reads in an epoch: its segments and the partly delivered runs among them
/// (none unless the epoch was resumed from the stops of a packer's ranks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RankPlan {
    /// The segments, in emission order.
    pub segments: Vec<Segment>,
    /// The partly delivered runs, by position.
    pub heads: Vec<Head>,
}

impl RankPlan {
    /// Rows the plan emits.
    pub fn rows(&self) -> usize {
        self.segments.iter().map(Segment::rows).sum()
    }

    /// What is left after `stop`: the rows from `stop.rows` on, the runs among them, and the
    /// run `stop` was inside (merged with a run already starting there).
    fn rest(&self, stop: &Stop) -> Result<RankPlan> {
        let segments = skip_rows(&self.segments, stop.rows);
        let left: usize = segments.iter().map(Segment::rows).sum();
        let mut heads = Vec::new();
        for h in &self.heads {
            if h.at + h.rows <= stop.rows {
                continue;
            }
            if h.at < stop.rows {
                return Err(Error::invalid(
                    "state",
                    format!(
                        "a rank stopped at row {} inside a run of rows {}..{} another rank had begun",
                        stop.rows,
                        h.at,
                        h.at + h.rows
                    ),
                ));
            }
            heads.push(Head {
                at: h.at - stop.rows,
                ..*h
            });
        }
        if stop.skip > 0 && left > 0 {
            match heads.first_mut() {
                // The run was begun before: `skip` counts from its start.
                Some(h) if h.at == 0 => h.skip = h.skip.max(stop.skip),
                _ => heads.insert(
                    0,
                    Head {
                        at: 0,
                        rows: stop.span.clamp(1, left),
                        skip: stop.skip,
                        key: stop.key,
                    },
                ),
            }
        }
        Ok(RankPlan { segments, heads })
    }
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

/// Splits the rows of `rests` (rank 0's, then rank 1's, ...) into `ranks` contiguous, nearly
/// equal shares (the first `total % ranks` take one more row); a cut never falls inside a
/// partly delivered run, which goes whole to the share it starts in.
fn split(rests: Vec<RankPlan>, ranks: usize) -> Vec<RankPlan> {
    let mut pooled = RankPlan::default();
    let mut offset = 0;
    for rest in rests {
        let rows = rest.rows();
        pooled.heads.extend(rest.heads.iter().map(|h| Head {
            at: h.at + offset,
            ..*h
        }));
        pooled.segments.extend(rest.segments);
        offset += rows;
    }
    let total = offset;
    let (base, extra) = (total / ranks, total % ranks);
    let mut cuts = vec![0];
    for r in 1..ranks {
        let mut cut = (r * base + r.min(extra)).max(cuts[r - 1]);
        if let Some(h) = pooled
            .heads
            .iter()
            .find(|h| h.at < cut && cut < h.at + h.rows)
        {
            cut = h.at + h.rows;
        }
        cuts.push(cut);
    }
    cuts.push(total);
    (0..ranks)
        .map(|r| {
            let (lo, hi) = (cuts[r], cuts[r + 1]);
            RankPlan {
                segments: take_range(&pooled.segments, lo, hi),
                heads: pooled
                    .heads
                    .iter()
                    .filter(|h| h.at >= lo && h.at < hi)
                    .map(|h| Head {
                        at: h.at - lo,
                        ..*h
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The plan of `rank` for this epoch, after replaying every earlier resume.
///
/// Resume rule: when an epoch was interrupted with world size `w`, the rows not yet consumed
/// by any rank (rank 0's rest, then rank 1's, ...) are split into contiguous, nearly equal
/// shares for the next world size (see [`split`]). No row is lost or repeated, and a run a
/// rank had partly delivered is continued by exactly one rank.
pub fn plan_rank(
    units: &[UnitRef],
    spec: &PlanSpec,
    rank: usize,
    world_size: usize,
) -> Result<RankPlan> {
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
        return Ok(RankPlan {
            segments: base_plan(units, spec, rank),
            heads: Vec::new(),
        });
    }
    // Ranks of the current generation (start of epoch).
    let mut generation: Vec<RankPlan> = (0..spec.world_size)
        .map(|r| RankPlan {
            segments: base_plan(units, spec, r),
            heads: Vec::new(),
        })
        .collect();
    for (i, resume) in spec.resumes.iter().enumerate() {
        let w = resume.world_size();
        let stops_fit = match resume {
            Resume::Lockstep(..) => true,
            Resume::Ranks { stops, .. } => stops.len() == w,
        };
        if w != generation.len() || !stops_fit {
            return Err(Error::invalid(
                "state",
                "resume history does not match its world sizes",
            ));
        }
        let rests = generation
            .iter()
            .enumerate()
            .map(|(r, plan)| plan.rest(&resume.stop(r)))
            .collect::<Result<Vec<_>>>()?;
        let next_world = spec
            .resumes
            .get(i + 1)
            .map_or(world_size, Resume::world_size);
        generation = split(rests, next_world);
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

    /// Global row ids (unit index * 1000 + row) emitted by a plan.
    fn emitted(plan: &RankPlan) -> Vec<usize> {
        let mut out = Vec::new();
        for seg in &plan.segments {
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
            s1.resumes = vec![Resume::Lockstep(w0, k0)];
            let gen1: Vec<Vec<usize>> = (0..w1).map(|r| emitted(&plan_rank(&u, &s1, r, w1).unwrap())).collect();
            let k1 = (gen1.iter().map(Vec::len).min().unwrap() as f64 * f1) as usize;
            for g in &gen1 { seen.extend_from_slice(&g[..k1]); }
            let mut s2 = s1.clone();
            s2.resumes.push(Resume::Lockstep(w1, k1));
            for r in 0..w2 { seen.extend(emitted(&plan_rank(&u, &s2, r, w2).unwrap())); }
            let mut a = uninterrupted.clone();
            a.sort();
            seen.sort();
            prop_assert_eq!(a, seen);
        }

        #[test]
        fn ranks_stopped_apart_resume_with_every_row_once_and_each_run_whole(
            sizes in proptest::collection::vec(0usize..40, 1..12),
            w0 in 1usize..5, w1 in 1usize..5, w2 in 1usize..5,
            stops0 in proptest::collection::vec((0.0f64..1.0, 0u64..3, 1usize..4), 4),
            stops1 in proptest::collection::vec((0.0f64..1.0, 0u64..3, 1usize..4), 4),
            shuffle: bool,
        ) {
            let u = units(&sizes);
            let base = spec(w0, shuffle);
            let mut all: Vec<usize> = (0..w0).flat_map(|r| emitted(&plan_rank(&u, &base, r, w0).unwrap())).collect();
            all.sort();
            // Each rank stops where it likes, some inside a run of `span` rows begun with `skip`.
            let stop_of = |plan: &RankPlan, (f, skip, span): (f64, u64, usize), key: u64| {
                let n = plan.rows();
                let mut rows = (n as f64 * f) as usize;
                if let Some(h) = plan.heads.iter().find(|h| h.at < rows && rows < h.at + h.rows) {
                    rows = h.at; // a packer stops at the start of a run it is inside
                }
                let skip = if rows < n { skip } else { 0 };
                Stop { rows, skip, span: if skip > 0 { span.min(n - rows) } else { 0 }, key }
            };
            let gen0: Vec<RankPlan> = (0..w0).map(|r| plan_rank(&u, &base, r, w0).unwrap()).collect();
            let stops: Vec<Stop> = gen0.iter().enumerate().map(|(r, p)| stop_of(p, stops0[r], r as u64)).collect();
            let mut seen: Vec<usize> = gen0.iter().zip(&stops).flat_map(|(p, s)| emitted(p)[..s.rows].to_vec()).collect();
            let mut s1 = base.clone();
            s1.resumes = vec![Resume::Ranks { world_size: w0, stops: stops.clone() }];
            let gen1: Vec<RankPlan> = (0..w1).map(|r| plan_rank(&u, &s1, r, w1).unwrap()).collect();
            // Each run begun in generation 0 is a head of exactly one rank, whole, with its skip.
            let begun: Vec<(u64, u64, usize)> = stops.iter().filter(|s| s.skip > 0).map(|s| (s.key, s.skip, s.span)).collect();
            let mut heads: Vec<(u64, u64, usize)> = gen1.iter().flat_map(|p| p.heads.iter().map(|h| (h.key, h.skip, h.rows))).collect();
            heads.sort();
            let mut want = begun.clone();
            want.sort();
            prop_assert_eq!(heads, want);
            for p in &gen1 {
                for h in &p.heads {
                    prop_assert!(h.at + h.rows <= p.rows());
                }
            }
            let stops: Vec<Stop> = gen1.iter().enumerate().map(|(r, p)| stop_of(p, stops1[r], 10 + r as u64)).collect();
            for (p, s) in gen1.iter().zip(&stops) {
                seen.extend_from_slice(&emitted(p)[..s.rows]);
            }
            let mut s2 = s1.clone();
            s2.resumes.push(Resume::Ranks { world_size: w1, stops });
            for r in 0..w2 {
                seen.extend(emitted(&plan_rank(&u, &s2, r, w2).unwrap()));
            }
            seen.sort();
            prop_assert_eq!(all, seen);
        }
    }
}
