//! Turns a user's path spec (file, directory, glob) into a sorted list of data files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Expands one path spec: a file is itself; a directory is every non-hidden file below it,
/// recursively, sorted; a pattern with `*`, `?` or `[` is a glob (sorted, hidden files skipped).
pub fn list_files(spec: &str) -> Result<Vec<PathBuf>> {
    if spec.is_empty() {
        return Err(Error::invalid("path", "empty path"));
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
