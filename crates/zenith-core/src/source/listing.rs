//! Turns a user's path spec (file, directory, glob, brace pattern) into a sorted list of data files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Most paths one brace pattern may expand to.
const MAX_BRACE_EXPANSION: usize = 1_000_000;

/// Expands one path spec: a file is itself; a directory is every non-hidden file below it,
/// recursively, sorted; a pattern with `*`, `?` or `[` is a glob (sorted, hidden files skipped);
/// a brace pattern (`shard-{0000..0127}.tar`, `{train,val}/*.tar`) is each of its expansions in
/// order, every one of which must exist.
pub fn list_files(spec: &str) -> Result<Vec<PathBuf>> {
    if spec.is_empty() {
        return Err(Error::invalid("path", "empty path"));
    }
    let expanded = expand_braces(spec)?;
    if expanded.len() != 1 || expanded[0] != spec {
        let mut files = Vec::new();
        for part in &expanded {
            for f in list_files(part)? {
                if !files.contains(&f) {
                    files.push(f);
                }
            }
        }
        return Ok(files);
    }
    if spec.contains(['*', '?', '[']) {
        let paths = glob::glob(spec)
            .map_err(|e| Error::invalid("path", format!("bad glob {spec:?}: {e}")))?;
        let mut files = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
            if path.is_file() && !is_hidden(&path) {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(Error::EmptySource {
                path: spec.to_string(),
            });
        }
        return Ok(files);
    }
    let path = Path::new(spec);
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            path: spec.to_string(),
        },
        _ => Error::io(path, e),
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    walk(path, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(Error::EmptySource {
            path: spec.to_string(),
        });
    }
    Ok(files)
}

/// Expands several specs in order, keeping duplicates out.
pub fn list_all(specs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for spec in specs {
        for f in list_files(spec)? {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Expands shell-style brace groups, left to right: `{a,b,c}` gives each alternative and
/// `{M..N}` each integer from M to N (descending when N < M), zero-padded to the longer bound
/// when either bound has a leading zero. A brace without a valid group stays literal.
pub fn expand_braces(spec: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    expand_into(spec, 0, &mut out)?;
    Ok(out)
}

fn expand_into(spec: &str, from: usize, out: &mut Vec<String>) -> Result<()> {
    let Some((open, close, options)) = first_group(spec, from) else {
        out.push(spec.to_string());
        return Ok(());
    };
    let (head, tail) = (&spec[..open], &spec[close + 1..]);
    let Some(options) = options else {
        // Not a group: keep the brace and look further right.
        return expand_into(spec, open + 1, out);
    };
    for option in options {
        let candidate = format!("{head}{option}{tail}");
        expand_into(&candidate, head.len() + option.len(), out)?;
        if out.len() > MAX_BRACE_EXPANSION {
            return Err(Error::invalid(
                "path",
                format!("brace pattern {spec:?} expands to more than {MAX_BRACE_EXPANSION} paths"),
            ));
        }
    }
    Ok(())
}

/// The first `{...}` at or after `from` without a nested `{`: its bounds and, when it is a
/// valid group, its alternatives.
fn first_group(spec: &str, from: usize) -> Option<(usize, usize, Option<Vec<String>>)> {
    let open = from + spec.get(from..)?.find('{')?;
    let close = open + spec[open..].find('}')?;
    let body = &spec[open + 1..close];
    if body.contains('{') {
        return Some((open, close, None));
    }
    if let Some((a, b)) = body.split_once("..") {
        return Some((open, close, numeric_range(a, b)));
    }
    if body.contains(',') {
        return Some((
            open,
            close,
            Some(body.split(',').map(str::to_string).collect()),
        ));
    }
    Some((open, close, None))
}

fn numeric_range(a: &str, b: &str) -> Option<Vec<String>> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    let (lo, hi): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    let padded = (a.len() > 1 && a.starts_with('0')) || (b.len() > 1 && b.starts_with('0'));
    let width = if padded { a.len().max(b.len()) } else { 0 };
    if lo.abs_diff(hi) >= MAX_BRACE_EXPANSION as u64 {
        return None;
    }
    let values: Vec<u64> = if lo <= hi {
        (lo..=hi).collect()
    } else {
        (hi..=lo).rev().collect()
    };
    Some(values.into_iter().map(|v| format!("{v:0width$}")).collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if is_hidden(&path) {
            continue;
        }
        let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_recursive_sorted_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["b.csv", "a.csv", ".hidden.csv", "sub/c.csv", "_SUCCESS"] {
            std::fs::write(dir.path().join(name), "x\n1\n").unwrap();
        }
        let files = list_files(dir.path().to_str().unwrap()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(names, vec!["a.csv", "b.csv", "sub/c.csv"]);
    }

    #[test]
    fn brace_patterns_expand_in_order() {
        assert_eq!(
            expand_braces("s-{0008..0011}.tar").unwrap(),
            vec!["s-0008.tar", "s-0009.tar", "s-0010.tar", "s-0011.tar"]
        );
        assert_eq!(expand_braces("{3..1}").unwrap(), vec!["3", "2", "1"]);
        assert_eq!(expand_braces("{8..10}").unwrap(), vec!["8", "9", "10"]);
        assert_eq!(
            expand_braces("{a,b}/{0..1}.tar").unwrap(),
            vec!["a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar"]
        );
        assert_eq!(expand_braces("x{}y{1..2}").unwrap(), vec!["x{}y1", "x{}y2"]);
        assert_eq!(expand_braces("plain.tar").unwrap(), vec!["plain.tar"]);
        assert_eq!(expand_braces("{a..z}").unwrap(), vec!["{a..z}"]);
        assert_eq!(expand_braces("{0..9999999}").unwrap(), vec!["{0..9999999}"]);

        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            std::fs::write(dir.path().join(format!("shard-{i:04}.tar")), "x").unwrap();
        }
        let pattern = format!("{}/shard-{{0000..0002}}.tar", dir.path().display());
        let names: Vec<_> = list_files(&pattern)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            vec!["shard-0000.tar", "shard-0001.tar", "shard-0002.tar"]
        );
        let missing = format!("{}/shard-{{0000..0003}}.tar", dir.path().display());
        assert!(
            matches!(list_files(&missing), Err(Error::NotFound { path }) if path.ends_with("shard-0003.tar"))
        );
    }

    #[test]
    fn missing_and_empty() {
        assert!(matches!(
            list_files("/nonexistent/zz"),
            Err(Error::NotFound { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            list_files(dir.path().to_str().unwrap()),
            Err(Error::EmptySource { .. })
        ));
        let pattern = format!("{}/*.parquet", dir.path().display());
        assert!(matches!(
            list_files(&pattern),
            Err(Error::EmptySource { .. })
        ));
    }
}
