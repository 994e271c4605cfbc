//! Format detection: content first (magic bytes; a stream's leading schema message, which
//! pre-0.15 streams start with instead of a continuation marker), file extension second.

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
    /// A directory of class directories of images (`root/<class>/<image>`), as torchvision's
    /// `ImageFolder` reads it.
    ImageFolder,
    /// WebDataset tar shards (`.tar`, gzip-compressed `.tar.gz` / `.tgz`).
    WebDataset,
    /// Flat token files (`.bin`, with a Megatron-LM `.idx` beside it or without; `.npy`).
    Tokens,
    /// Plain text, one row per line in a `text` column (`.txt`).
    Text,
    /// JSON Lines, one object per line (`.jsonl`, `.ndjson`, `.json`).
    JsonLines,
}

impl Format {
    /// Every format, in the order `zenith.info()` lists them.
    pub const ALL: [Format; 9] = [
        Format::Parquet,
        Format::Csv,
        Format::Ipc,
        Format::IpcStream,
        Format::WebDataset,
        Format::ImageFolder,
        Format::Tokens,
        Format::Text,
        Format::JsonLines,
    ];

    /// Parses a user-given format name (`parquet`, `csv`, `arrow`/`ipc`/`feather`, `arrows`/`ipc_stream`,
    /// `webdataset`/`wds`/`tar`, `imagefolder`, `tokens`/`bin`, `text`/`txt`, `json`/`jsonl`).
    pub fn parse(name: &str) -> Result<Format> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" | "pq" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "arrow" | "ipc" | "feather" => Ok(Format::Ipc),
            "arrows" | "ipc_stream" | "stream" => Ok(Format::IpcStream),
            "webdataset" | "wds" | "tar" => Ok(Format::WebDataset),
            "imagefolder" | "image_folder" => Ok(Format::ImageFolder),
            "tokens" | "bin" | "megatron" => Ok(Format::Tokens),
            "text" | "txt" => Ok(Format::Text),
            "json" | "jsonl" | "ndjson" | "jsonlines" => Ok(Format::JsonLines),
            other => Err(Error::invalid(
                "format",
                format!(
                    "unknown format {other:?}; expected one of {}",
                    Format::ALL.map(|f| f.name()).join(", ")
                ),
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
            Format::WebDataset => "webdataset",
            Format::ImageFolder => "imagefolder",
            Format::Tokens => "tokens",
            Format::Text => "text",
            Format::JsonLines => "json",
        }
    }
}

const PARQUET_MAGIC: &[u8] = b"PAR1";
const IPC_FILE_MAGIC: &[u8] = b"ARROW1";
const IPC_CONTINUATION: &[u8] = &[0xff, 0xff, 0xff, 0xff];
/// POSIX (`ustar\0`) and GNU (`ustar `) tar headers carry this at byte 257.
const TAR_MAGIC: &[u8] = b"ustar";
const TAR_MAGIC_OFFSET: usize = 257;
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Detects the format of one file from its first bytes, falling back to its extension.
pub fn detect_format(path: &Path) -> Result<Format> {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| Error::io(path, e))?;
    if let Some(format) = detect_magic(&head[..n]) {
        return Ok(format);
    }
    if is_legacy_stream(path, &head[..n])? {
        return Ok(Format::IpcStream);
    }
    // A gzip stream is a tar shard only by name; other gzip files are not ours to guess.
    if head[..n].starts_with(GZIP_MAGIC) && super::webdataset::is_gzip_path(path) {
        return Ok(Format::WebDataset);
    }
    if let Some(format) = detect_extension(path) {
        return Ok(format);
    }
    Err(Error::format(
        path,
        "byte 0",
        "cannot detect the format (no Parquet, Arrow or tar magic bytes, no Arrow stream schema, unknown extension); pass format=",
    ))
}

/// Largest schema message read to recognise a stream without a continuation marker.
const MAX_SCHEMA_MESSAGE: usize = 16 << 20;

/// Whether the file starts with a schema message without a continuation marker (the stream
/// framing of writers before Arrow 0.15).
fn is_legacy_stream(path: &Path, head: &[u8]) -> Result<bool> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    starts_with_stream_schema(head, len, |need| {
        let mut message = vec![0u8; need];
        let n = std::fs::File::open(path)
            .and_then(|mut f| read_up_to(&mut f, &mut message))
            .map_err(|e| Error::io(path, e))?;
        message.truncate(n);
        Ok(message)
    })
}

/// Whether a file of `len` bytes starting with `head` starts with a stream's schema message in
/// either framing; `read_head(n)` gives its first `n` bytes when `head` is too short to tell.
pub(crate) fn starts_with_stream_schema<B: AsRef<[u8]>>(
    head: &[u8],
    len: u64,
    read_head: impl FnOnce(usize) -> Result<B>,
) -> Result<bool> {
    match super::ipc::messages::starts_with_schema(head, len) {
        Ok(found) => Ok(found),
        Err(need) if need <= MAX_SCHEMA_MESSAGE => {
            let message = read_head(need)?;
            Ok(super::ipc::messages::starts_with_schema(message.as_ref(), len) == Ok(true))
        }
        Err(_) => Ok(false),
    }
}

/// Detection from magic bytes alone.
pub fn detect_magic(head: &[u8]) -> Option<Format> {
    if head.starts_with(PARQUET_MAGIC) {
        Some(Format::Parquet)
    } else if head.starts_with(IPC_FILE_MAGIC) {
        Some(Format::Ipc)
    } else if head.starts_with(IPC_CONTINUATION) {
        Some(Format::IpcStream)
    } else if head.starts_with(b"\x93NUMPY") {
        Some(Format::Tokens)
    } else if head.get(TAR_MAGIC_OFFSET..TAR_MAGIC_OFFSET + TAR_MAGIC.len()) == Some(TAR_MAGIC) {
        Some(Format::WebDataset)
    } else {
        None
    }
}

/// Detection from the file extension alone.
pub fn detect_extension(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => Some(Format::Parquet),
        "csv" | "tsv" => Some(Format::Csv),
        "txt" => Some(Format::Text),
        "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
        "arrow" | "feather" | "ipc" => Some(Format::Ipc),
        "arrows" | "stream" => Some(Format::IpcStream),
        "tar" | "tgz" => Some(Format::WebDataset),
        "bin" | "idx" | "npy" => Some(Format::Tokens),
        "gz" if super::webdataset::is_gzip_path(path) => Some(Format::WebDataset),
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
        assert_eq!(detect_magic(b"\x93NUMPY\x01\x00"), Some(Format::Tokens));
        let mut tar_head = vec![0u8; 512];
        tar_head[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(detect_magic(&tar_head), Some(Format::WebDataset));
        assert_eq!(detect_magic(&tar_head[..260]), None);
    }

    #[test]
    fn extension_fallback_and_names() {
        assert_eq!(detect_extension(Path::new("x/y.CSV")), Some(Format::Csv));
        assert_eq!(detect_extension(Path::new("y.feather")), Some(Format::Ipc));
        assert_eq!(detect_extension(Path::new("y.bin")), Some(Format::Tokens));
        assert_eq!(detect_extension(Path::new("y.idx")), Some(Format::Tokens));
        assert_eq!(detect_extension(Path::new("c.txt")), Some(Format::Text));
        assert_eq!(
            detect_extension(Path::new("c.JSONL")),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::parse("jsonl").unwrap().name(), "json");
        assert_eq!(
            detect_extension(Path::new("s/shard-0001.tar")),
            Some(Format::WebDataset)
        );
        assert_eq!(
            detect_extension(Path::new("shard-0001.TAR.GZ")),
            Some(Format::WebDataset)
        );
        assert_eq!(
            detect_extension(Path::new("shard.tgz")),
            Some(Format::WebDataset)
        );
        assert_eq!(detect_extension(Path::new("data.csv.gz")), None);
        assert_eq!(Format::parse("wds").unwrap().name(), "webdataset");
        assert_eq!(Format::parse("feather").unwrap(), Format::Ipc);
        assert!(Format::parse("xml").is_err());
    }
}
