//! Framing of encapsulated IPC messages, shared by the stream reader and format detection: a
//! message is an optional `0xFFFFFFFF` continuation marker (absent in streams of writers before
//! Arrow 0.15), a little-endian `u32` metadata length, the flatbuffer `Message`, then its body.
//! A zero length is the end-of-stream marker. Every length is checked against the bytes there
//! before anything is sliced, so damaged input is an error and never a panic.

/// Where one message lies, in bytes from the start of the buffer it was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Start of the message (its marker or length prefix).
    pub start: usize,
    /// Prefix (marker and length) plus flatbuffer metadata, as an IPC `Block` counts it.
    pub meta_len: usize,
    /// Length of the body that follows the metadata.
    pub body_len: usize,
}

impl Frame {
    /// First byte after the body.
    pub fn end(&self) -> usize {
        self.start + self.meta_len + self.body_len
    }
}

/// What is found at a position of a stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A whole message.
    Message(Frame),
    /// The end-of-stream marker, or the end of the bytes.
    End,
}

const CONTINUATION: [u8; 4] = [0xff; 4];

/// Reads the prefix and metadata of the message at `start` (without the body bounds, which
/// need the parsed metadata): `(prefix length, metadata length)`, or `None` at the end.
fn prefix(data: &[u8], start: usize) -> Result<Option<(usize, usize)>, String> {
    let word = |at: usize| -> Option<[u8; 4]> { data.get(at..at + 4)?.try_into().ok() };
    if start == data.len() {
        return Ok(None);
    }
    let truncated = || format!("truncated message prefix at byte {start}");
    let first = word(start).ok_or_else(truncated)?;
    let (prefix_len, len) = if first == CONTINUATION {
        (
            8,
            u32::from_le_bytes(word(start + 4).ok_or_else(truncated)?),
        )
    } else {
        (4, u32::from_le_bytes(first))
    };
    if len == 0 {
        return Ok(None);
    }
    Ok(Some((prefix_len, len as usize)))
}

/// The message at `start` of `data`, its flatbuffer metadata parsed and verified.
pub(crate) fn next_message(
    data: &[u8],
    start: usize,
) -> Result<(Next, Option<arrow_ipc::Message<'_>>), String> {
    let Some((prefix_len, len)) = prefix(data, start)? else {
        return Ok((Next::End, None));
    };
    let meta_start = start + prefix_len;
    let meta = data
        .get(meta_start..meta_start.saturating_add(len))
        .ok_or_else(|| {
            format!(
                "message at byte {start}: metadata of {len} bytes runs past the end ({} bytes)",
                data.len()
            )
        })?;
    let message = arrow_ipc::root_as_message(meta)
        .map_err(|e| format!("message at byte {start}: invalid metadata: {e}"))?;
    let body_len = usize::try_from(message.bodyLength())
        .map_err(|_| format!("message at byte {start}: negative body length"))?;
    let frame = Frame {
        start,
        meta_len: prefix_len + len,
        body_len,
    };
    if frame.meta_len > i32::MAX as usize
        || meta_start
            .checked_add(len)
            .and_then(|e| e.checked_add(body_len))
            .is_none_or(|end| end > data.len())
    {
        return Err(format!(
            "message at byte {start}: body of {body_len} bytes runs past the end ({} bytes)",
            data.len()
        ));
    }
    Ok((Next::Message(frame), Some(message)))
}

/// Checks the buffers that a record batch or dictionary message lays out in its body before
/// arrow-ipc reads them: each must lie inside the body (arrow-ipc slices the body with the
/// message's offsets and lengths as they are, and panics past its end), and in a compressed
/// body the uncompressed length declared before each buffer (a little-endian `i64`; -1 for a
/// buffer stored as is) must fit this machine's memory, all buffers of the message together:
/// arrow-ipc allocates that many bytes before decompressing, and a failed allocation aborts the
/// process, which no error handling can catch.
pub(crate) fn check_body_buffers(
    message: &arrow_ipc::Message<'_>,
    body: &[u8],
) -> Result<(), String> {
    let batch = match message.header_type() {
        arrow_ipc::MessageHeader::RecordBatch => message.header_as_record_batch(),
        // arrow-ipc unwraps a dictionary batch's record batch.
        arrow_ipc::MessageHeader::DictionaryBatch => Some(
            message
                .header_as_dictionary_batch()
                .and_then(|d| d.data())
                .ok_or("a dictionary batch without its record batch")?,
        ),
        _ => None,
    };
    let Some(batch) = batch else {
        return Ok(());
    };
    let compressed = batch.compression().is_some();
    let limit = physical_memory();
    let mut total = 0u64;
    for (i, buffer) in batch.buffers().iter().flatten().enumerate() {
        // Empty buffers are sliced too, so their offset must lie inside the body as well.
        let (offset, length) = (buffer.offset(), buffer.length());
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(length).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|r| r.end <= body.len());
        let Some(range) = range else {
            return Err(format!(
                "buffer {i} (offset {offset}, length {length}) lies outside the message body \
                 of {} bytes",
                body.len()
            ));
        };
        if !compressed || range.len() < 8 {
            continue;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&body[range.start..range.start + 8]);
        let declared = i64::from_le_bytes(word);
        if declared <= 0 {
            continue;
        }
        total = total.saturating_add(declared as u64);
        if total > limit {
            return Err(format!(
                "compressed buffer {i} declares {declared} bytes uncompressed: the message's \
                 buffers would take more than this machine's {limit} bytes of memory"
            ));
        }
    }
    Ok(())
}

/// Physical memory in bytes (`u64::MAX` where it cannot be read).
fn physical_memory() -> u64 {
    static MEMORY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: sysconf only reads system configuration.
            let (pages, size) = unsafe {
                (
                    libc::sysconf(libc::_SC_PHYS_PAGES),
                    libc::sysconf(libc::_SC_PAGESIZE),
                )
            };
            if pages > 0 && size > 0 {
                return (pages as u64).saturating_mul(size as u64);
            }
        }
        u64::MAX
    })
}

/// Whether `head` (the first bytes of a file, `file_len` long in all) starts with a schema
/// message in either framing; `None` when more bytes are needed to tell: how many.
pub(crate) fn starts_with_schema(head: &[u8], file_len: u64) -> Result<bool, usize> {
    let Some(first) = head.get(..4) else {
        return Ok(false);
    };
    let (prefix_len, len) = if first == CONTINUATION {
        match head.get(4..8) {
            Some(w) => (8, u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            None => return Ok(false),
        }
    } else {
        (
            4,
            u32::from_le_bytes([first[0], first[1], first[2], first[3]]),
        )
    };
    let need = prefix_len + len as usize;
    if len < 8 || need as u64 > file_len {
        return Ok(false);
    }
    let Some(meta) = head.get(prefix_len..need) else {
        return Err(need);
    };
    Ok(arrow_ipc::root_as_message(meta)
        .is_ok_and(|m| m.header_type() == arrow_ipc::MessageHeader::Schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_both_framings_and_their_ends() {
        assert_eq!(prefix(&[], 0), Ok(None));
        assert_eq!(prefix(&[0, 0, 0, 0], 0), Ok(None));
        assert_eq!(prefix(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 0), Ok(None));
        assert_eq!(prefix(&[16, 0, 0, 0, 9], 0), Ok(Some((4, 16))));
        assert_eq!(
            prefix(&[0xff, 0xff, 0xff, 0xff, 16, 1, 0, 0], 0),
            Ok(Some((8, 272)))
        );
        assert_eq!(
            prefix(&[1, 2, 0xff, 0xff, 0xff, 0xff, 3], 2),
            Err("truncated message prefix at byte 2".to_string())
        );
        assert_eq!(
            next_message(&[200, 0, 0, 0, 1, 2, 3], 0).map(|(n, _)| n),
            Err("message at byte 0: metadata of 200 bytes runs past the end (7 bytes)".to_string())
        );
    }

    #[test]
    fn schema_detection_asks_for_more_bytes() {
        assert_eq!(starts_with_schema(b"a,b\n1,2\n", 8), Ok(false));
        assert_eq!(starts_with_schema(&[64, 0, 0, 0, 1], 1000), Err(68));
        assert_eq!(starts_with_schema(&[64, 0, 0, 0, 1], 50), Ok(false));
        assert_eq!(starts_with_schema(&[0; 80], 80), Ok(false));
    }
}
