//! Request planning for ranged reads: which wanted byte ranges are fetched together
//! (coalescing) and how large requests are cut so several run in parallel. Pure functions of
//! the ranges, so they are tested without a store.

use std::ops::Range;

/// Gap below which two wanted ranges are fetched as one request (the bytes between are cheap
/// next to a request's latency, and few enough to keep fetched bytes close to wanted bytes).
pub const COALESCE_GAP: u64 = 64 << 10;
/// Largest single request; bigger ranges are split so that several requests run in parallel.
pub const MAX_REQUEST_BYTES: u64 = 8 << 20;

/// Merges ranges (in any order) that overlap, or that lie within `max_gap` bytes of each other
/// when the gap adds at most a tenth to the wanted bytes of the merged request, so that the
/// bytes fetched stay within 1.1x of the bytes wanted. Empty ranges are dropped; the result is
/// sorted and disjoint.
pub fn coalesce_ranges(ranges: &[Range<u64>], max_gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    // (merged range, wanted bytes inside it)
    let mut out: Vec<(Range<u64>, u64)> = Vec::with_capacity(sorted.len());
    for r in sorted {
        if let Some((last, wanted)) = out.last_mut() {
            if r.start <= last.end {
                *wanted += r.end.saturating_sub(last.end);
                last.end = last.end.max(r.end);
                continue;
            }
            let gap = r.start - last.end;
            let new_wanted = *wanted + (r.end - r.start);
            if gap <= max_gap && gap.saturating_mul(10) <= new_wanted {
                *wanted = new_wanted;
                last.end = r.end;
                continue;
            }
        }
        let len = r.end - r.start;
        out.push((r, len));
    }
    out.into_iter().map(|(r, _)| r).collect()
}

/// Splits a range into consecutive pieces of near-equal size: at most `max_len` bytes each,
/// (requests of a few MiB cost the server least per byte; parallelism comes from several units
/// being read at once).
pub fn split_range(range: &Range<u64>, max_len: u64) -> Vec<Range<u64>> {
    let len = range.end.saturating_sub(range.start);
    if len == 0 {
        return Vec::new();
    }
    let pieces = len.div_ceil(max_len.max(1));
    let at = |i: u64| range.start + (u128::from(len) * u128::from(i) / u128::from(pieces)) as u64;
    (0..pieces).map(|i| at(i)..at(i + 1)).collect()
}

/// Splits `merged` like [`split_range`], but moves each cut to the nearest point where one of
/// `wanted` starts and none of them crosses, so no wanted range is split; a range with no such
/// point inside stays whole.
pub fn split_at_boundaries(
    merged: &Range<u64>,
    wanted: &[Range<u64>],
    max_len: u64,
) -> Vec<Range<u64>> {
    let mut sorted: Vec<&Range<u64>> = wanted
        .iter()
        .filter(|r| r.start < r.end && r.start < merged.end && r.end > merged.start)
        .collect();
    sorted.sort_by_key(|r| r.start);
    let mut safe = Vec::new();
    let mut reach = merged.start;
    for r in sorted {
        if r.start >= reach && r.start > merged.start && r.start < merged.end {
            safe.push(r.start);
        }
        reach = reach.max(r.end);
    }
    let mut cuts: Vec<u64> = split_range(merged, max_len)
        .iter()
        .skip(1)
        .filter_map(|p| {
            let i = safe.partition_point(|&c| c < p.start);
            let below = i.checked_sub(1).map(|j| safe[j]);
            let above = safe.get(i).copied();
            match (below, above) {
                (Some(b), Some(a)) => Some(if p.start - b <= a - p.start { b } else { a }),
                (b, a) => b.or(a),
            }
        })
        .collect();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = merged.start;
    for cut in cuts {
        if cut > start {
            out.push(start..cut);
            start = cut;
        }
    }
    if merged.end > start {
        out.push(start..merged.end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_splits_ranges() {
        let merged = coalesce_ranges(&[210..300, 0..50, 1000..1100, 100..200, 40..60, 7..7], 20);
        assert_eq!(merged, vec![0..60, 100..300, 1000..1100]);
        // A gap that would add more than a tenth to the wanted bytes is not fetched.
        assert_eq!(coalesce_ranges(&[0..10, 15..25], 100), vec![0..10, 15..25]);
        assert_eq!(coalesce_ranges(&[0..100, 110..200], 100), vec![0..200]);
        assert_eq!(coalesce_ranges(&[0..10, 2..4], 0), vec![0..10]);
        assert_eq!(
            coalesce_ranges(&[0..10, 10..12, 13..14], 0),
            vec![0..12, 13..14]
        );
        assert!(coalesce_ranges(&[], 5).is_empty());
        assert_eq!(split_range(&(0..10), 4), vec![0..3, 3..6, 6..10]);
        // Cuts move to where a wanted range starts; none splits a wanted range.
        let mib = 1u64 << 20;
        let chunks: Vec<Range<u64>> = (0..8).map(|i| i * mib / 2..(i + 1) * mib / 2).collect();
        let pieces = split_at_boundaries(&(0..4 * mib), &chunks, mib);
        assert_eq!(
            pieces,
            vec![0..mib, mib..2 * mib, 2 * mib..3 * mib, 3 * mib..4 * mib]
        );
        assert_eq!(
            split_at_boundaries(&(0..4 * mib), &chunks, 8 * mib),
            vec![0..4 * mib]
        );
        let odd = [0..mib + 100, mib + 100..3 * mib, 3 * mib..4 * mib];
        let pieces = split_at_boundaries(&(0..4 * mib), &odd, mib);
        assert_eq!(
            pieces,
            vec![0..mib + 100, mib + 100..3 * mib, 3 * mib..4 * mib]
        );
        // One wanted range: no cut inside it.
        assert_eq!(
            split_at_boundaries(&(0..4 * mib), std::slice::from_ref(&(0..4 * mib)), mib),
            vec![0..4 * mib]
        );
        // Overlapping wanted ranges are never cut apart.
        let overlap = [0..3 * mib, 2 * mib..4 * mib];
        assert_eq!(
            split_at_boundaries(&(0..4 * mib), &overlap, mib),
            vec![0..4 * mib]
        );
        assert_eq!(split_range(&(0..9), 4), vec![0..3, 3..6, 6..9]);
        assert_eq!(split_range(&(0..3 * mib), 8 * mib), vec![0..3 * mib]);
        assert_eq!(
            split_range(&(0..3 * mib), mib),
            vec![0..mib, mib..2 * mib, 2 * mib..3 * mib]
        );
        assert_eq!(split_range(&(0..64 * mib), 8 * mib).len(), 8);
        assert_eq!(split_range(&(5..9), 100), vec![5..9]);
        assert!(split_range(&(3..3), 4).is_empty());
        let pieces = split_range(&(7..1_000_003), 1 << 16);
        assert_eq!(pieces.first().map(|r| r.start), Some(7));
        assert_eq!(pieces.last().map(|r| r.end), Some(1_000_003));
        assert!(pieces.windows(2).all(|w| w[0].end == w[1].start));
        assert!(pieces.iter().all(|r| r.end - r.start <= 1 << 16));
    }
}
