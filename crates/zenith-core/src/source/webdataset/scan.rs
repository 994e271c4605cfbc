//! The header walk of a tar shard: which members it holds, where their data lies, the first
//! bytes of the first `.npy` member of each field (its dtype and shape), and where and why the
//! walk stopped early. No member data is read otherwise.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Bytes of the first member of an `.npy` field read at open to learn its dtype and shape.
const NPY_HEADER_PREFIX: u64 = 64 * 1024;

/// True when the path names a gzip-compressed shard (`.tar.gz`, `.tgz`).
pub fn is_gzip_path(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// Splits a member path into (key, field): the key runs up to the first dot of the file name.
/// Paths without a dot in the file name, or with an empty key or field, belong to no sample.
pub fn split_key(path: &str) -> Option<(&str, &str)> {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let dot = name_start + path[name_start..].find('.')?;
    let (key, field) = (&path[..dot], &path[dot + 1..]);
    if dot == name_start || field.is_empty() {
        return None;
    }
    Some((key, field))
}

/// The last dot-separated part of a field (`seg.png` → `png`).
pub(super) fn last_extension(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// Where one member's data lies in the (decompressed) tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Member {
    /// Offset of the member's header block.
    pub(super) header: u64,
    /// Offset of its first data byte.
    pub(super) data: u64,
    /// Data bytes.
    pub(super) size: u64,
}

impl Member {
    /// Where the entry's header and data lie.
    fn of<R: Read>(entry: &tar::Entry<'_, R>) -> Member {
        Member {
            header: entry.raw_header_position(),
            data: entry.raw_file_position(),
            size: entry.size(),
        }
    }

    /// Offset of the next header: the data is padded to whole 512-byte blocks.
    fn next_header(&self) -> u64 {
        self.data.saturating_add(self.size.div_ceil(512) * 512)
    }

    /// One past its last data byte.
    fn end(&self) -> u64 {
        self.data.saturating_add(self.size)
    }
}

/// A member as the header walk found it.
#[derive(Debug)]
pub(super) struct RawMember {
    /// The sample key.
    pub(super) key: String,
    /// The field (lowercased extension).
    pub(super) field: String,
    /// Where its data lies.
    pub(super) member: Member,
}

/// Where (byte offset) and why the header walk stopped early.
type Stop = (u64, String);

/// The result of walking a shard's headers.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Regular-file members with a sample key, in tar order.
    pub(super) members: Vec<RawMember>,
    /// First bytes of the first member of each `.npy` field.
    pub(super) npy_prefixes: HashMap<String, Vec<u8>>,
    /// Where and why the walk stopped early.
    pub(super) error: Option<Stop>,
    /// One past the last byte the members use.
    pub(super) end: u64,
}

/// Walks tar entries, recording regular-file members; stops at the first unreadable entry.
/// `stream_len` is the length of the tar when known (a plain tar), to catch truncated members;
/// `tar` is a plain tar's bytes, whose pages behind the walk are handed back as it goes (empty
/// for a stream).
pub(super) fn scan_entries<R: Read>(
    entries: tar::Entries<'_, R>,
    stream_len: Option<u64>,
    tar: &[u8],
) -> Scan {
    /// Bytes scanned between two hand-backs of the pages behind the walk.
    const RELEASE_EVERY: u64 = 8 << 20;
    let mut scan = Scan::default();
    let mut position = 0u64;
    let mut released = 0u64;
    for entry in entries {
        if position >= released + RELEASE_EVERY && position <= tar.len() as u64 {
            // The headers read so far (and the pages around them) of a mapped tar.
            crate::source::release_pages(&tar[released as usize..position as usize]);
            released = position;
        }
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                scan.error = Some((position, format!("unreadable tar header: {e}")));
                break;
            }
        };
        let member = Member::of(&entry);
        position = member.next_header();
        if let Err(stop) = scan.record(&mut entry, member, stream_len) {
            scan.error = Some(stop);
            break;
        }
    }
    scan
}

impl Scan {
    /// Records one entry if it is a regular file named `KEY.FIELD`; `Err` ends the walk (the
    /// member is still recorded, so its sample is the one reported).
    fn record<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        member: Member,
        stream_len: Option<u64>,
    ) -> Result<(), Stop> {
        if !entry.header().entry_type().is_file() {
            return Ok(());
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some((key, field)) = split_key(&path) else {
            tracing::debug!(path, "tar member outside any sample (no extension)");
            return Ok(());
        };
        let raw = RawMember {
            key: key.to_string(),
            field: field.to_ascii_lowercase(),
            member,
        };
        if stream_len.is_some_and(|len| member.end() > len) {
            self.members.push(raw);
            return Err((
                member.header,
                format!(
                    "truncated tar member {path:?}: {} data bytes announced, the shard ends first",
                    member.size
                ),
            ));
        }
        if last_extension(&raw.field) == "npy" && !self.npy_prefixes.contains_key(&raw.field) {
            match read_prefix(entry) {
                Ok(prefix) => {
                    self.npy_prefixes.insert(raw.field.clone(), prefix);
                }
                Err(e) => {
                    self.members.push(raw);
                    return Err((
                        member.header,
                        format!("cannot read tar member {path:?}: {e}"),
                    ));
                }
            }
        }
        self.end = self.end.max(member.end());
        self.members.push(raw);
        Ok(())
    }
}

/// The first [`NPY_HEADER_PREFIX`] bytes of a member's data.
fn read_prefix<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Vec<u8>> {
    let mut prefix = Vec::new();
    entry.take(NPY_HEADER_PREFIX).read_to_end(&mut prefix)?;
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_field_split_like_webdataset() {
        assert_eq!(split_key("a/b/000.jpg"), Some(("a/b/000", "jpg")));
        assert_eq!(split_key("x.seg.png"), Some(("x", "seg.png")));
        assert_eq!(split_key("dir.v2/s1.cls"), Some(("dir.v2/s1", "cls")));
        assert_eq!(split_key("README"), None);
        assert_eq!(split_key("dir/.hidden"), None);
        assert_eq!(split_key("s1."), None);
    }
}
