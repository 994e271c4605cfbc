//! Arrow IPC, file and stream formats. The file is memory-mapped and every record batch is
//! decoded in place: its buffers point into the mapping, so nothing is copied or read until a
//! column is touched. One unit per record batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder, StreamDecoder};
use arrow_schema::SchemaRef;

use super::{FileReader, Format, UnitMeta};
use crate::error::{Error, Result};

/// An IPC file or stream whose batches have been decoded zero-copy over the mapping.
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
        let schema = Arc::new(arrow_ipc::convert::fb_to_schema(fb_schema));
        let mut decoder = FileDecoder::new(schema.clone(), footer.version());
        let block_buffer = |block: &arrow_ipc::Block, what: &str| -> Result<Buffer> {
            let start = usize::try_from(block.offset()).unwrap_or(usize::MAX);
            let len = block.metaDataLength() as usize + block.bodyLength() as usize;
            if start.checked_add(len).is_none_or(|end| end > buffer.len()) {
                return Err(fail(
                    &format!("{what} at byte {start}"),
                    &"block extends past the end of the file",
                ));
            }
            Ok(buffer.slice_with_length(start, len))
        };
        for (i, block) in footer.dictionaries().iter().flatten().enumerate() {
            let data = block_buffer(block, &format!("dictionary {i}"))?;
            decoder
                .read_dictionary(block, &data)
                .map_err(|e| fail(&format!("dictionary {i} at byte {}", block.offset()), &e))?;
        }
        let mut batches = Vec::new();
        for (i, block) in footer.recordBatches().iter().flatten().enumerate() {
            let location = format!("record batch {i} at byte {}", block.offset());
            let data = block_buffer(block, &location)?;
            let batch = decoder
                .read_record_batch(block, &data)
                .map_err(|e| fail(&location, &e))?
                .ok_or_else(|| fail(&location, &"block holds no record batch"))?;
            batches.push((batch, data.len() as u64));
        }
        Ok(Self::new(path, Format::Ipc, schema, batches, file_bytes))
    }

    /// Maps an IPC stream and decodes its messages in place.
    pub fn open_stream(path: &Path) -> Result<Self> {
        Self::from_stream_bytes(path, super::map_file(path)?)
    }

    /// Like [`IpcStreamFile::open_stream`] over bytes already in memory.
    pub fn from_stream_bytes(path: &Path, bytes: bytes::Bytes) -> Result<Self> {
        let file_bytes = bytes.len() as u64;
        let mut buffer = Buffer::from(bytes);
        let mut decoder = StreamDecoder::new();
        let mut batches = Vec::new();
        loop {
            let offset = file_bytes as usize - buffer.len();
            let before = buffer.len();
            match decoder.decode(&mut buffer) {
                Ok(Some(batch)) => batches.push((batch, (before - buffer.len()) as u64)),
                Ok(None) if buffer.is_empty() => break,
                Ok(None) => {
                    if buffer.len() == before {
                        return Err(Error::format(
                            path,
                            format!("byte {offset}"),
                            "stream decoder made no progress",
                        ));
                    }
                }
                Err(e) => return Err(Error::format(path, format!("message at byte {offset}"), e)),
            }
        }
        decoder.finish().map_err(|e| {
            Error::format(
                path,
                format!("byte {file_bytes}"),
                format!("truncated stream: {e}"),
            )
        })?;
        let schema = decoder
            .schema()
            .ok_or_else(|| Error::format(path, "byte 0", "stream has no schema message"))?;
        Ok(Self::new(
            path,
            Format::IpcStream,
            schema,
            batches,
            file_bytes,
        ))
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
}
