//! Record boundaries of a CSV file: cutting the data after the header into work units of
//! about a target size that end on whole records (newlines inside quoted fields do not count),
//! with the number of records and the first line number of each, so units can be decoded and
//! reported on independently.

use rayon::prelude::*;

/// A byte range of records, `[start, end)`, with the number of records in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRange {
    /// First byte of the first record.
    pub start: usize,
    /// One past the last byte of the last record.
    pub end: usize,
    /// Records in the range.
    pub rows: usize,
    /// 1-based line number of the first record in the file (the header is line 1).
    pub first_line: usize,
}

/// End (one past the newline) of the record starting at `start`, quote-aware; `None` when the
/// record runs to the end of the data without a newline.
pub(super) fn find_record_end(data: &[u8], start: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut pos = start;
    while let Some(off) = memchr::memchr2(b'"', b'\n', &data[pos..]) {
        let i = pos + off;
        if data[i] == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            return Some(i + 1);
        }
        pos = i + 1;
    }
    None
}

/// Splits `data[start..]` into ranges of about `target` bytes ending on record boundaries.
/// Newlines inside quoted fields are not boundaries. The boundaries are first found by seeking
/// (a range ends at the first newline at or after `start + target`); the ranges are then
/// checked for quotes and their newlines counted in parallel. Only when a quote turns up is
/// the data scanned again, serially and quote-aware.
pub fn split_records(data: &[u8], start: usize, target: usize) -> Vec<RecordRange> {
    let mut bounds = Vec::new();
    let mut pos = start;
    while pos < data.len() {
        let tentative = pos.saturating_add(target).min(data.len());
        let end = if tentative >= data.len() {
            data.len()
        } else {
            memchr::memchr(b'\n', &data[tentative..]).map_or(data.len(), |i| tentative + i + 1)
        };
        bounds.push((pos, end));
        pos = end;
    }
    let count = |&(s, e): &(usize, usize)| -> Option<usize> {
        let part = &data[s..e];
        if memchr::memchr(b'"', part).is_some() {
            return None;
        }
        let unterminated = e == data.len() && data[e - 1] != b'\n';
        Some(memchr::memchr_iter(b'\n', part).count() + usize::from(unterminated))
    };
    let counts: Option<Vec<usize>> = count_bounds(data, &bounds, count).into_iter().collect();
    let Some(counts) = counts else {
        return split_quoted(data, start, target);
    };
    // A CSV record is one line here (no quotes); the header is line 1.
    ranges_of(bounds, counts.into_iter().map(|r| (r, r)).collect(), 2)
}

/// `count` of every byte range of `data`, in parallel on the shared pool when there are
/// several (serially when no pool can be had: the same answer). Each range's pages are handed
/// back once counted, so that opening a mapped file does not make it all resident at once.
pub(crate) fn count_bounds<T: Send>(
    data: &[u8],
    bounds: &[(usize, usize)],
    count: impl Fn(&(usize, usize)) -> T + Sync + Send,
) -> Vec<T> {
    let count_and_release = |b: &(usize, usize)| {
        let out = count(b);
        crate::source::release_pages(&data[b.0..b.1]);
        out
    };
    let pool = (bounds.len() > 1)
        .then(crate::pool::global)
        .and_then(Result::ok);
    match pool {
        Some(pool) => pool.install(|| bounds.par_iter().map(count_and_release).collect()),
        None => bounds.iter().map(count_and_release).collect(),
    }
}

/// The record ranges of byte ranges whose (records, lines) are `counts`; ranges without a
/// record are left out, and lines are numbered from `first_line`.
pub(crate) fn ranges_of(
    bounds: Vec<(usize, usize)>,
    counts: Vec<(usize, usize)>,
    first_line: usize,
) -> Vec<RecordRange> {
    let mut line = first_line;
    let mut ranges = Vec::with_capacity(bounds.len());
    for ((start, end), (rows, lines)) in bounds.into_iter().zip(counts) {
        if rows > 0 {
            ranges.push(RecordRange {
                start,
                end,
                rows,
                first_line: line,
            });
        }
        line += lines;
    }
    ranges
}

/// [`split_records`] over data with quotes: one serial quote-aware pass.
fn split_quoted(data: &[u8], start: usize, target: usize) -> Vec<RecordRange> {
    let mut ranges = Vec::new();
    let mut pos = start;
    let mut line = 2usize;
    while pos < data.len() {
        let tentative = pos.saturating_add(target).min(data.len());
        let (end, rows) = scan_quoted(data, pos, tentative);
        if rows > 0 {
            ranges.push(RecordRange {
                start: pos,
                end,
                rows,
                first_line: line,
            });
        }
        line += rows;
        pos = end;
    }
    ranges
}

/// Quote-aware scan from `pos`: returns the first record end at or after `min_end` and the
/// number of records between.
pub(super) fn scan_quoted(data: &[u8], pos: usize, min_end: usize) -> (usize, usize) {
    let mut rows = 0;
    let mut in_quotes = false;
    let mut i = pos;
    while let Some(off) = memchr::memchr2(b'"', b'\n', &data[i..]) {
        let at = i + off;
        i = at + 1;
        if data[at] == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            rows += 1;
            if i >= min_end {
                return (i, rows);
            }
        }
    }
    if i <= data.len() && data.len() > pos && data[data.len() - 1] != b'\n' {
        rows += 1;
    }
    (data.len(), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_counts_lines_per_range() {
        let text: String = (0..1000).map(|i| format!("{i},{}\n", i * 7)).collect();
        let ranges = split_records(text.as_bytes(), 0, 100);
        assert!(ranges.len() > 10);
        let mut line = 2;
        let mut pos = 0;
        for r in &ranges {
            assert_eq!(r.start, pos);
            assert_eq!(r.first_line, line);
            assert_eq!(
                r.rows,
                text.as_bytes()[r.start..r.end]
                    .iter()
                    .filter(|&&c| c == b'\n')
                    .count()
            );
            line += r.rows;
            pos = r.end;
        }
        assert_eq!(pos, text.len());
        assert_eq!(line - 2, 1000);
    }

    fn rows_of(data: &[u8], target: usize) -> Vec<(usize, usize, usize)> {
        split_records(data, 0, target)
            .iter()
            .map(|r| (r.start, r.end, r.rows))
            .collect()
    }

    #[test]
    fn split_plain_lines() {
        let data = b"1,a\n2,b\n3,c\n";
        assert_eq!(rows_of(data, 1), vec![(0, 4, 1), (4, 8, 1), (8, 12, 1)]);
        assert_eq!(rows_of(data, 5), vec![(0, 8, 2), (8, 12, 1)]);
        assert_eq!(rows_of(b"1,a\n2,b", 100), vec![(0, 7, 2)]);
    }

    #[test]
    fn quoted_newlines_are_not_boundaries() {
        let data = b"1,\"x\ny\"\n2,\"z\"\n";
        let ranges = rows_of(data, 1);
        assert_eq!(ranges, vec![(0, 8, 1), (8, 14, 1)]);
        assert_eq!(find_record_end(data, 0), Some(8));
    }
}
