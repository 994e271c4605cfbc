//! Line-oriented files: plain text (`.txt`, one row per line in a `text` column, as Hugging
//! Face `datasets`' text loader reads it) and JSON Lines (`.jsonl`, `.ndjson`, `.json`: one
//! object per line, as `pyarrow.json.read_json` reads them).
//!
//! The file is memory-mapped (or fetched whole from object storage) and cut into byte ranges
//! of about 4 MiB that end after a newline; each range is one work unit, its rows counted when
//! the file is opened (lines for text, non-blank lines for JSON) so the plan knows every
//! unit's size before decoding. A line ends at `\n`, and a `\r` before it is dropped; the
//! other line breaks Python's `str.splitlines` knows (`\x0b`, `\x1c`, `\u2028`, ...) stay in
//! the text. JSON Lines are decoded by `arrow_json` against a schema inferred from the first
//! 1,000 objects of the first file (integers `int64`, numbers `float64`, strings, booleans,
//! lists and structs), or the schema given; a later object that does not fit it is a
//! `FormatError` naming the file and its lines.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;

use super::csv::RecordRange;
use super::{DecodeOptions, FileReader, Format, UnitMeta};
use crate::error::{Error, Result};

/// Bytes per work unit unless `DecodeOptions::csv_unit_bytes` says otherwise.
const DEFAULT_UNIT_BYTES: usize = 4 << 20;

/// Objects read to infer a JSON Lines schema.
const INFER_RECORDS: usize = 1000;

/// The column of a text file.
pub const TEXT_COLUMN: &str = "text";

/// An opened text or JSON Lines file.
pub struct LinesFile {
    path: PathBuf,
    format: Format,
    data: Bytes,
    schema: SchemaRef,
    ranges: Vec<RecordRange>,
    units: Vec<UnitMeta>,
}

/// Whether a line holds only whitespace (a blank line of JSON Lines is no row).
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Rows in `part` (whole lines, the last one maybe without its newline).
fn count_rows(part: &[u8], format: Format) -> (usize, usize) {
    let newlines = memchr::memchr_iter(b'\n', part).count();
    let lines = newlines + usize::from(part.last().is_some_and(|&b| b != b'\n'));
    let rows = match format {
        Format::JsonLines => part
            .split(|&b| b == b'\n')
            .filter(|line| !is_blank(line))
            .count(),
        _ => lines,
    };
    (rows, lines)
}

/// Cuts `data` into ranges of about `target` bytes that end after a newline (or at the end).
fn split_lines(data: &[u8], target: usize, format: Format) -> Vec<RecordRange> {
    let mut bounds = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let tentative = pos.saturating_add(target).min(data.len());
        let end = memchr::memchr(b'\n', &data[tentative.saturating_sub(1)..])
            .map_or(data.len(), |i| tentative.saturating_sub(1) + i + 1)
            .max(pos + 1)
            .min(data.len());
        bounds.push((pos, end));
        pos = end;
    }
    let counts = super::csv::count_bounds(data, &bounds, |&(s, e)| count_rows(&data[s..e], format));
    super::csv::ranges_of(bounds, counts, 1)
}

impl LinesFile {
    /// Maps the file and finds its units (and, for JSON Lines, its schema).
    pub fn open(path: &Path, format: Format, options: &DecodeOptions) -> Result<Self> {
        Self::from_bytes(path, super::map_file(path)?, format, options)
    }

    /// Like [`LinesFile::open`] over bytes already in memory (a fetched object); `path`
    /// names them in messages.
    pub fn from_bytes(
        path: &Path,
        data: Bytes,
        format: Format,
        options: &DecodeOptions,
    ) -> Result<Self> {
        let schema = match format {
            Format::JsonLines => match &options.csv_schema {
                Some(schema) => schema.clone(),
                None => infer_schema(path, &data)?,
            },
            _ => Arc::new(Schema::new(vec![Field::new(
                TEXT_COLUMN,
                DataType::Utf8,
                false,
            )])),
        };
        let target = options.csv_unit_bytes.unwrap_or(DEFAULT_UNIT_BYTES).max(1);
        let ranges = split_lines(&data, target, format);
        let units = super::csv::units_of(&ranges);
        // The split read the file through; its units fault in what they read.
        super::release_pages(&data);
        Ok(LinesFile {
            path: path.to_path_buf(),
            format,
            data,
            schema,
            ranges,
            units,
        })
    }

    /// The lines of a range, for messages: "line 7" or "lines 7-12".
    fn where_(&self, range: &RecordRange) -> String {
        let (_, lines) = count_rows(&self.data[range.start..range.end], Format::Text);
        match lines {
            0 | 1 => format!("line {}", range.first_line),
            n => format!("lines {}-{}", range.first_line, range.first_line + n - 1),
        }
    }

    /// A text range's lines as one string column.
    fn read_text(&self, range: &RecordRange) -> Result<RecordBatch> {
        let part = &self.data[range.start..range.end];
        if let Err(e) = std::str::from_utf8(part) {
            let line =
                range.first_line + memchr::memchr_iter(b'\n', &part[..e.valid_up_to()]).count();
            return Err(Error::format(
                &self.path,
                format!("line {line}"),
                format!(
                    "text is not UTF-8 (byte {} of the file)",
                    range.start + e.valid_up_to()
                ),
            ));
        }
        let mut values = Vec::with_capacity(part.len());
        let mut offsets = Vec::with_capacity(range.rows + 1);
        offsets.push(0i32);
        let long = || {
            Error::format(
                &self.path,
                self.where_(range),
                "a unit holds more than 2 GiB of text",
            )
        };
        for line in part.split_inclusive(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            values.extend_from_slice(line);
            offsets.push(i32::try_from(values.len()).map_err(|_| long())?);
        }
        // SAFETY: the range is UTF-8 (checked above) and every cut is at an ASCII byte
        // (`\n` or `\r`), so every row is UTF-8 too; the offsets grow from 0 to the length.
        let text = unsafe {
            StringArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                Buffer::from_vec(values),
                None,
            )
        };
        RecordBatch::try_new(self.schema.clone(), vec![Arc::new(text) as ArrayRef])
            .map_err(|e| Error::format(&self.path, self.where_(range), e))
    }

    /// A JSON Lines range decoded by `arrow_json` against the (projected) schema.
    fn read_json(&self, range: &RecordRange, schema: SchemaRef) -> Result<RecordBatch> {
        let part = &self.data[range.start..range.end];
        let error = |e: &dyn std::fmt::Display| Error::format(&self.path, self.where_(range), e);
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(range.rows.max(1))
            .build_decoder()
            .map_err(|e| error(&e))?;
        let mut pos = 0;
        while pos < part.len() {
            let used = decoder.decode(&part[pos..]).map_err(|e| error(&e))?;
            if used == 0 {
                break;
            }
            pos += used;
        }
        let batch = decoder
            .flush()
            .map_err(|e| error(&e))?
            .unwrap_or_else(|| RecordBatch::new_empty(schema));
        if batch.num_rows() != range.rows || pos < part.len() {
            return Err(error(&format!(
                "expected one JSON object per line ({} lines with text), decoded {}",
                range.rows,
                batch.num_rows()
            )));
        }
        Ok(batch)
    }
}

/// The schema of a JSON Lines file from its first objects.
fn infer_schema(path: &Path, data: &[u8]) -> Result<SchemaRef> {
    let first = data.iter().position(|b| !b.is_ascii_whitespace());
    if let Some(i) = first {
        if data[i] == b'[' {
            return Err(Error::format(
                path,
                "byte 0",
                "a JSON array; Zenith reads JSON Lines (one object per line)",
            ));
        }
    }
    let (schema, _) = arrow_json::reader::infer_json_schema(Cursor::new(data), Some(INFER_RECORDS))
        .map_err(|e| {
            Error::format(
                path,
                format!("the first {INFER_RECORDS} lines"),
                format!("not JSON Lines: {e}"),
            )
        })?;
    // arrow_json sorts the fields by name; pyarrow keeps the order they first appear in.
    let mut order = KeyOrder::default();
    for line in data
        .split(|&b| b == b'\n')
        .filter(|l| !is_blank(l))
        .take(INFER_RECORDS)
    {
        let mut de = serde_json::Deserializer::from_slice(line);
        // Lines that do not parse were reported by the inference above.
        let _ = serde::de::DeserializeSeed::deserialize(KeySeed(&mut order), &mut de);
    }
    Ok(Arc::new(Schema::new(order.arrange(schema.fields()))))
}

/// The keys of JSON objects in the order they are first seen, nested objects (and the
/// objects inside lists) under their key.
#[derive(Debug, Default)]
struct KeyOrder {
    keys: Vec<(String, KeyOrder)>,
}

impl KeyOrder {
    fn child(&mut self, key: String) -> &mut KeyOrder {
        let i = match self.keys.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.keys.push((key, KeyOrder::default()));
                self.keys.len() - 1
            }
        };
        &mut self.keys[i].1
    }

    /// `fields` in first-seen order (fields never seen keep their place after the others),
    /// struct fields arranged by their own keys.
    fn arrange(&self, fields: &arrow_schema::Fields) -> Vec<Field> {
        let mut out: Vec<(usize, Field)> = fields
            .iter()
            .map(|f| {
                let (rank, node) = match self.keys.iter().position(|(k, _)| k == f.name()) {
                    Some(i) => (i, Some(&self.keys[i].1)),
                    None => (usize::MAX, None),
                };
                let data_type =
                    node.map_or(f.data_type().clone(), |n| n.arrange_type(f.data_type()));
                (rank, f.as_ref().clone().with_data_type(data_type))
            })
            .collect();
        out.sort_by_key(|(rank, _)| *rank);
        out.into_iter().map(|(_, f)| f).collect()
    }

    fn arrange_type(&self, data_type: &DataType) -> DataType {
        match data_type {
            DataType::Struct(fields) => DataType::Struct(self.arrange(fields).into()),
            DataType::List(item) => DataType::List(Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(self.arrange_type(item.data_type())),
            )),
            other => other.clone(),
        }
    }
}

/// Walks one JSON value, recording object keys into a [`KeyOrder`].
struct KeySeed<'a>(&'a mut KeyOrder);

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(KeySeed(self.0.child(key)))?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(KeySeed(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }
}

impl FileReader for LinesFile {
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

    fn unit_location(&self, index: usize) -> String {
        match self.ranges.get(index) {
            Some(range) => format!("{} {}", self.path.display(), self.where_(range)),
            None => format!("{} unit {index}", self.path.display()),
        }
    }

    fn file_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let range = self.ranges.get(index).ok_or_else(|| {
            Error::format(
                &self.path,
                format!("unit {index}"),
                "unit index out of range",
            )
        })?;
        let schema = super::project_schema(&self.path, &self.schema, projection)?;
        match self.format {
            Format::JsonLines => self.read_json(range, schema),
            _ => {
                let batch = self.read_text(range)?;
                Ok(if schema.fields().is_empty() {
                    RecordBatch::try_new_with_options(
                        schema,
                        vec![],
                        &arrow_array::RecordBatchOptions::new().with_row_count(Some(range.rows)),
                    )
                    .map_err(|e| Error::format(&self.path, self.where_(range), e))?
                } else {
                    batch
                })
            }
        }
    }

    fn release_unit(&self, index: usize) {
        if let Some(r) = self.ranges.get(index) {
            super::release_pages(&self.data[r.start..r.end]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    fn options(unit: usize) -> DecodeOptions {
        DecodeOptions {
            csv_unit_bytes: Some(unit),
            ..DecodeOptions::default()
        }
    }

    fn all_rows(file: &LinesFile, column: usize) -> Vec<String> {
        (0..file.units().len())
            .flat_map(|u| {
                let batch = file.read_unit(u, None).unwrap();
                assert_eq!(batch.num_rows(), file.units()[u].rows);
                let col = arrow_cast::cast(batch.column(column), &DataType::Utf8).unwrap();
                let col = col.as_string::<i32>();
                (0..col.len())
                    .map(|i| col.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn text_lines_are_rows_in_units_of_any_size() {
        let text = "first\r\nsecond\n\nfourth é\nlast without newline";
        for unit in [1, 3, 7, 100] {
            let file = LinesFile::from_bytes(
                Path::new("t.txt"),
                Bytes::from(text),
                Format::Text,
                &options(unit),
            )
            .unwrap();
            assert_eq!(
                all_rows(&file, 0),
                ["first", "second", "", "fourth é", "last without newline"],
                "unit {unit}"
            );
        }
        let empty =
            LinesFile::from_bytes(Path::new("e.txt"), Bytes::new(), Format::Text, &options(4))
                .unwrap();
        assert!(empty.units().is_empty());
    }

    #[test]
    fn text_that_is_not_utf8_names_its_line() {
        let file = LinesFile::from_bytes(
            Path::new("bad.txt"),
            Bytes::from(&b"ok\nok\nbad \xff\n"[..]),
            Format::Text,
            &options(100),
        )
        .unwrap();
        let e = file.read_unit(0, None).unwrap_err().to_string();
        assert!(
            e.contains("bad.txt") && e.contains("line 3") && e.contains("byte 10"),
            "{e}"
        );
    }

    #[test]
    fn json_lines_skip_blank_lines_and_keep_types() {
        let text = "{\"text\": \"a\", \"n\": 1}\n\n  \n{\"text\": \"b\\nc\", \"n\": 2}\n{\"n\": 3}";
        for unit in [1, 10, 1000] {
            let file = LinesFile::from_bytes(
                Path::new("t.jsonl"),
                Bytes::from(text),
                Format::JsonLines,
                &options(unit),
            )
            .unwrap();
            let schema = file.schema();
            assert_eq!(
                schema.field_with_name("n").unwrap().data_type(),
                &DataType::Int64
            );
            // First-seen order, as pyarrow keeps it (arrow_json sorts by name).
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, ["text", "n"]);
            let text_col = schema.index_of("text").unwrap();
            assert_eq!(file.units().iter().map(|u| u.rows).sum::<usize>(), 3);
            let rows: Vec<RecordBatch> = (0..file.units().len())
                .map(|u| file.read_unit(u, Some(&[text_col])).unwrap())
                .collect();
            let texts: Vec<Option<String>> = rows
                .iter()
                .flat_map(|b| {
                    let c = b.column(0).as_string::<i32>();
                    (0..c.len())
                        .map(|i| c.is_valid(i).then(|| c.value(i).to_string()))
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(
                texts,
                [Some("a".into()), Some("b\nc".into()), None],
                "unit {unit}"
            );
        }
    }

    #[test]
    fn bad_json_is_a_format_error_naming_the_lines() {
        let e = LinesFile::from_bytes(
            Path::new("a.json"),
            Bytes::from("[{\"a\": 1}]"),
            Format::JsonLines,
            &options(100),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("a JSON array; Zenith reads JSON Lines"), "{e}");
        let mut text = "{\"a\": 1}\n".repeat(1000);
        text.push_str("{\"a\": }\n");
        let file = LinesFile::from_bytes(
            Path::new("b.jsonl"),
            Bytes::from(text),
            Format::JsonLines,
            &options(4500),
        )
        .unwrap();
        assert_eq!(file.units().len(), 3);
        assert_eq!(file.read_unit(1, None).unwrap().num_rows(), 500);
        let e = file.read_unit(2, None).unwrap_err().to_string();
        assert!(e.contains("b.jsonl") && e.contains("line 1001"), "{e}");
        assert_eq!(file.unit_location(1), "b.jsonl lines 501-1000");
    }
}
