//! Format detection: magic bytes first, file extension second.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The on-disk formats Zenith reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
    /// Arrow IPC file format (Feather v2), random access, memory-mapped.
    Ipc,
    /// Arrow IPC streaming format.
    IpcStream,
}

impl Format {
    /// Parses a user-given format name (`parquet`, `csv`, `arrow`/`ipc`/`feather`, `arrows`/`ipc_stream`).
    pub fn parse(name: &str) -> Result<Format> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" | "pq" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "arrow" | "ipc" | "feather" => Ok(Format::Ipc),
            "arrows" | "ipc_stream" | "stream" => Ok(Format::IpcStream),
            other => Err(Error::invalid(
                "format",
                format!("unknown format {other:?}; expected parquet, csv, arrow or arrows"),
            )),
        }
    }

    /// The canonical lowercase name.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Ipc => "arrow",
            Format::IpcStream => "arrows",
        }
    }
}

const PARQUET_MAGIC: &[u8] = b"PAR1";
const IPC_FILE_MAGIC: &[u8] = b"ARROW1";
const IPC_CONTINUATION: &[u8] = &[0xff, 0xff, 0xff, 0xff];

/// Detects the format of one file from its first bytes, falling back to its extension.
pub fn detect_format(path: &Path) -> Result<Format> {
    let mut head = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| Error::io(path, e))?;
    if let Some(format) = detect_magic(&head[..n]) {
        return Ok(format);
    }
    if let Some(format) = detect_extension(path) {
        return Ok(format);
    }
    Err(Error::format(
        path,
        "byte 0",
        "cannot detect the format (no Parquet or Arrow magic bytes, unknown extension); pass format=",
    ))
}

/// Detection from magic bytes alone.
pub fn detect_magic(head: &[u8]) -> Option<Format> {
    if head.starts_with(PARQUET_MAGIC) {
        Some(Format::Parquet)
    } else if head.starts_with(IPC_FILE_MAGIC) {
        Some(Format::Ipc)
    } else if head.starts_with(IPC_CONTINUATION) {
        Some(Format::IpcStream)
    } else {
        None
    }
}

/// Detection from the file extension alone.
pub fn detect_extension(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => Some(Format::Parquet),
        "csv" | "tsv" | "txt" => Some(Format::Csv),
        "arrow" | "feather" | "ipc" => Some(Format::Ipc),
        "arrows" => Some(Format::IpcStream),
        _ => None,
    }
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = f.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_wins_over_extension() {
        assert_eq!(detect_magic(b"PAR1xxxx"), Some(Format::Parquet));
        assert_eq!(detect_magic(b"ARROW1\0\0"), Some(Format::Ipc));
        assert_eq!(
            detect_magic(&[0xff, 0xff, 0xff, 0xff, 1]),
            Some(Format::IpcStream)
        );
        assert_eq!(detect_magic(b"a,b,c\n"), None);
    }

    #[test]
    fn extension_fallback_and_names() {
        assert_eq!(detect_extension(Path::new("x/y.CSV")), Some(Format::Csv));
        assert_eq!(detect_extension(Path::new("y.feather")), Some(Format::Ipc));
        assert_eq!(detect_extension(Path::new("y.bin")), None);
        assert_eq!(Format::parse("feather").unwrap(), Format::Ipc);
        assert!(Format::parse("xml").is_err());
    }
}
