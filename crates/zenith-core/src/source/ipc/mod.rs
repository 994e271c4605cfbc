//! Arrow IPC, file and stream formats. The file is memory-mapped and every record batch is
//! decoded in place: its buffers point into the mapping, so nothing is copied or read until a
//! column is touched (LZ4 or ZSTD compressed bodies, and big-endian files, which are swapped
//! to native order, are the exceptions). One unit per record batch. Streams are framed here
//! (`messages`), which reads pre-0.15 streams without continuation markers too.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::MessageHeader;
use arrow_schema::SchemaRef;
use rayon::prelude::*;

use super::{FileReader, Format, UnitMeta};
use crate::error::{Error, Result};
use messages::Next;
use schema::IpcSchema;

pub(crate) mod messages;
pub(crate) mod schema;

/// Whether a file block's record batch message declares body compression (LZ4 or ZSTD).
fn body_is_compressed(block: &[u8]) -> bool {
    matches!(
        messages::next_message(block, 0),
        Ok((_, Some(message)))
            if message
                .header_as_record_batch()
                .is_some_and(|b| b.compression().is_some())
    )
}

/// [`messages::check_body_buffers`] for the message of a file block (`data`: the
/// block's metadata and body), the message parsed as arrow-ipc's `FileDecoder` parses it: after
/// the prefix, over the rest of the block, whatever the length inside the prefix says; the body
/// starts at the block's metadata length.
fn check_block(data: &[u8], block: &arrow_ipc::Block) -> std::result::Result<(), String> {
    let Some(meta_len) = usize::try_from(block.metaDataLength())
        .ok()
        .filter(|&m| m <= data.len())
    else {
        return Ok(());
    };
    let prefix = if data.starts_with(&[0xff; 4]) { 8 } else { 4 };
    // arrow-ipc verifies the flatbuffer over the block's bytes from the prefix on, body
    // included, so its tables may lie past the metadata length: parsed the same way here.
    match data.get(prefix..).map(arrow_ipc::root_as_message) {
        Some(Ok(message)) => messages::check_body_buffers(&message, &data[meta_len..]),
        // The reader reports a message it cannot parse.
        _ => Ok(()),
    }
}

/// Rows per unit of an in-memory table (see [`MappedBatches::in_memory`]).
pub const MEMORY_UNIT_ROWS: usize = 65_536;

/// An IPC file or stream whose batches have been decoded zero-copy over the mapping, or record
/// batches handed over in memory.
pub struct MappedBatches {
    path: PathBuf,
    format: Format,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    units: Vec<UnitMeta>,
    file_bytes: u64,
}

/// Arrow IPC file format (random access; "Feather v2").
pub type IpcFile = MappedBatches;
/// Arrow IPC stream format.
pub type IpcStreamFile = MappedBatches;

impl MappedBatches {
    fn new(
        path: &Path,
        format: Format,
        schema: SchemaRef,
        batches: Vec<(RecordBatch, u64)>,
        file_bytes: u64,
    ) -> Self {
        let units = batches
            .iter()
            .map(|(b, bytes)| UnitMeta {
                rows: b.num_rows(),
                bytes: *bytes,
            })
            .collect();
        MappedBatches {
            path: path.to_path_buf(),
            format,
            schema,
            batches: batches.into_iter().map(|(b, _)| b).collect(),
            units,
            file_bytes,
        }
    }

    /// Record batches already in memory (a `pyarrow.Table`, a DataFrame's Arrow data) as a
    /// source named `name`, without a copy: batches longer than [`MEMORY_UNIT_ROWS`] are
    /// sliced into units of that many rows, so shuffle windows and threads have units to work
    /// with however the table was chunked. Batches must share `schema`.
    pub fn in_memory(name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        let path = Path::new(name);
        let mut units = Vec::new();
        let mut total = 0u64;
        for (i, batch) in batches.into_iter().enumerate() {
            if batch.schema().fields() != schema.fields() {
                return Err(Error::schema(
                    path,
                    format!(
                        "record batch {i} has schema {:?}, the table {:?}",
                        batch.schema(),
                        schema
                    ),
                ));
            }
            let bytes = batch.get_array_memory_size() as u64;
            total += bytes;
            let rows = batch.num_rows();
            let mut start = 0;
            while start < rows {
                let len = MEMORY_UNIT_ROWS.min(rows - start);
                let share = bytes * len as u64 / rows.max(1) as u64;
                units.push((batch.slice(start, len), share));
                start += len;
            }
        }
        Ok(Self::new(path, Format::Ipc, schema, units, total))
    }

    /// The decoded (zero-copy) record batches.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }
}

impl IpcFile {
    /// Maps an IPC file and decodes its footer and batches in place.
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_bytes(path, super::map_file(path)?)
    }

    /// Like [`IpcFile::open`] over bytes already in memory (e.g. a fetched object).
    pub fn from_bytes(path: &Path, bytes: bytes::Bytes) -> Result<Self> {
        let file_bytes = bytes.len() as u64;
        let buffer = Buffer::from(bytes);
        let fail = |loc: &str, e: &dyn std::fmt::Display| Error::format(path, loc, e.to_string());
        if buffer.len() < 16 || &buffer[..6] != b"ARROW1" {
            return Err(fail(
                "byte 0",
                &"not an Arrow IPC file (missing ARROW1 magic)",
            ));
        }
        let trailer_start = buffer.len() - 10;
        let mut trailer = [0u8; 10];
        trailer.copy_from_slice(&buffer[trailer_start..]);
        let footer_len = read_footer_length(trailer).map_err(|e| fail("footer", &e))?;
        if footer_len > trailer_start {
            return Err(fail(
                "footer",
                &format!("footer length {footer_len} exceeds the file"),
            ));
        }
        let footer = arrow_ipc::root_as_footer(&buffer[trailer_start - footer_len..trailer_start])
            .map_err(|e| fail("footer", &e))?;
        let fb_schema = footer
            .schema()
            .ok_or_else(|| fail("footer", &"footer has no schema"))?;
        let IpcSchema { schema, swap } =
            schema::convert(fb_schema).map_err(|e| fail("schema", &e))?;
        let mut decoder = FileDecoder::new(schema.clone(), footer.version());
        let block_buffer = |block: &arrow_ipc::Block, what: &str| -> Result<Buffer> {
            let start = usize::try_from(block.offset()).unwrap_or(usize::MAX);
            let meta = usize::try_from(block.metaDataLength()).unwrap_or(usize::MAX);
            let body = usize::try_from(block.bodyLength()).unwrap_or(usize::MAX);
            let end = start.checked_add(meta).and_then(|e| e.checked_add(body));
            if meta < 8 || end.is_none_or(|end| end > buffer.len()) {
                return Err(fail(
                    &format!("{what} at byte {start}"),
                    &"block extends past the end of the file",
                ));
            }
            Ok(buffer.slice_with_length(start, meta + body))
        };
        for (i, block) in footer.dictionaries().iter().flatten().enumerate() {
            let data = block_buffer(block, &format!("dictionary {i}"))?;
            check_block(&data, block)
                .map_err(|e| fail(&format!("dictionary {i} at byte {}", block.offset()), &e))?;
            decoder
                .read_dictionary(block, &data)
                .map_err(|e| fail(&format!("dictionary {i} at byte {}", block.offset()), &e))?;
        }
        // Record batches are independent once the dictionaries are read: decoded in parallel,
        // which matters when bodies are compressed (each buffer is decompressed here).
        let blocks: Vec<arrow_ipc::Block> =
            footer.recordBatches().iter().flatten().copied().collect();
        let decoder = &decoder;
        let decode = |(i, block): (usize, &arrow_ipc::Block)| -> Result<(RecordBatch, u64)> {
            let location = format!("record batch {i} at byte {}", block.offset());
            let data = block_buffer(block, &location)?;
            check_block(&data, block).map_err(|e| fail(&location, &e))?;
            let batch = decoder
                .read_record_batch(block, &data)
                .map_err(|e| fail(&location, &e))?
                .ok_or_else(|| fail(&location, &"block holds no record batch"))?;
            let batch = native_order(batch, swap).map_err(|e| fail(&location, &e))?;
            Ok((batch, data.len() as u64))
        };
        // Uncompressed blocks decode zero-copy in microseconds: threads would only add their
        // start-up. Collected per block, then in order: the error reported is the first block's.
        let compressed = blocks
            .first()
            .and_then(|b| block_buffer(b, "record batch 0").ok())
            .is_some_and(|data| body_is_compressed(&data));
        let decoded: Vec<Result<(RecordBatch, u64)>> = if compressed && blocks.len() > 1 {
            crate::pool::global()?.install(|| blocks.par_iter().enumerate().map(decode).collect())
        } else {
            blocks.iter().enumerate().map(decode).collect()
        };
        let batches = decoded.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(Self::new(path, Format::Ipc, schema, batches, file_bytes))
    }

    /// Maps an IPC stream and decodes its messages in place.
    pub fn open_stream(path: &Path) -> Result<Self> {
        Self::from_stream_bytes(path, super::map_file(path)?)
    }

    /// Like [`IpcStreamFile::open_stream`] over bytes already in memory. Reads both framings
    /// (with and without continuation markers), dictionary replacements and deltas; the
    /// end-of-stream marker is optional.
    pub fn from_stream_bytes(path: &Path, bytes: bytes::Bytes) -> Result<Self> {
        let file_bytes = bytes.len() as u64;
        let buffer = Buffer::from(bytes);
        let fail = |at: usize, e: &dyn std::fmt::Display| {
            Error::format(path, format!("message at byte {at}"), e.to_string())
        };
        let mut stream: Option<(FileDecoder, IpcSchema)> = None;
        let mut batches = Vec::new();
        let mut unit_start = 0;
        let mut pos = 0;
        loop {
            let (next, message) = messages::next_message(&buffer, pos)
                .map_err(|e| Error::format(path, format!("byte {pos}"), e))?;
            let (Next::Message(frame), Some(message)) = (next, message) else {
                break;
            };
            let block = arrow_ipc::Block::new(0, frame.meta_len as i32, frame.body_len as i64);
            let data = buffer.slice_with_length(frame.start, frame.meta_len + frame.body_len);
            messages::check_body_buffers(&message, &data[frame.meta_len..])
                .map_err(|e| fail(pos, &e))?;
            match (message.header_type(), &mut stream) {
                (MessageHeader::Schema, None) => {
                    let fb = message
                        .header_as_schema()
                        .ok_or_else(|| fail(pos, &"schema message without a schema"))?;
                    let converted = schema::convert(fb).map_err(|e| fail(pos, &e))?;
                    let decoder = FileDecoder::new(converted.schema.clone(), message.version());
                    stream = Some((decoder, converted));
                }
                (MessageHeader::Schema, Some(_)) => {
                    return Err(fail(pos, &"a second schema message"));
                }
                (MessageHeader::DictionaryBatch, Some((decoder, _))) => {
                    decoder
                        .read_dictionary(&block, &data)
                        .map_err(|e| fail(pos, &e))?;
                }
                (MessageHeader::RecordBatch, Some((decoder, converted))) => {
                    let batch = decoder
                        .read_record_batch(&block, &data)
                        .map_err(|e| fail(pos, &e))?
                        .ok_or_else(|| fail(pos, &"message holds no record batch"))?;
                    let batch = native_order(batch, converted.swap).map_err(|e| fail(pos, &e))?;
                    batches.push((batch, (frame.end() - unit_start) as u64));
                    unit_start = frame.end();
                }
                (MessageHeader::NONE, _) => {}
                (_, None) => return Err(fail(pos, &"the stream does not start with a schema")),
                (other, Some(_)) => {
                    return Err(fail(pos, &format!("unexpected {other:?} message")));
                }
            }
            pos = frame.end();
        }
        let (_, IpcSchema { schema, .. }) =
            stream.ok_or_else(|| Error::format(path, "byte 0", "stream has no schema message"))?;
        Ok(Self::new(
            path,
            Format::IpcStream,
            schema,
            batches,
            file_bytes,
        ))
    }
}

/// `batch` in native byte order: swapped when its file was written in the other.
fn native_order(batch: RecordBatch, swap: bool) -> std::result::Result<RecordBatch, String> {
    if swap {
        schema::swap_batch(batch)
    } else {
        Ok(batch)
    }
}

impl FileReader for MappedBatches {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> Format {
        self.format
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn units(&self) -> &[UnitMeta] {
        &self.units
    }

    fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let batch = self.batches.get(index).ok_or_else(|| {
            Error::format(
                &self.path,
                format!("record batch {index}"),
                "index out of range",
            )
        })?;
        match projection {
            Some(cols) => batch
                .project(cols)
                .map_err(|e| Error::format(&self.path, format!("record batch {index}"), e)),
            None => Ok(batch.clone()),
        }
    }

    fn release_unit(&self, index: usize) {
        if let Some(batch) = self.batches.get(index) {
            super::release_batch_pages(batch);
        }
    }
}
