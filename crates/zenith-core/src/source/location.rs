//! Where a data file lives: on local disk (memory-mapped) or in object storage (read through
//! [`crate::store`]). Listing, format detection and opening dispatch on it, so the format
//! readers only ever see bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{detect, listing, DecodeOptions, FileReader, Format};
use crate::error::{Error, Result};
use crate::store::{self, ObjectRef};

/// One data file of a dataset.
#[derive(Debug, Clone)]
pub enum Location {
    /// A file on local disk.
    Local(PathBuf),
    /// An object in a bucket.
    Object(ObjectRef),
}

impl Location {
    /// The path used in messages: the local path or the object's URL.
    pub fn path(&self) -> PathBuf {
        match self {
            Location::Local(p) => p.clone(),
            Location::Object(o) => PathBuf::from(o.url()),
        }
    }

    /// Detects the format. Local files: magic bytes, then extension. Objects: extension
    /// first (no request needed), then the first bytes with one ranged GET.
    pub fn detect_format(&self) -> Result<Format> {
        match self {
            Location::Local(p) => detect::detect_format(p),
            Location::Object(o) => {
                if let Some(format) = detect::detect_extension(Path::new(o.key())) {
                    return Ok(format);
                }
                let head = o.get_range(0..o.size().min(8))?;
                if let Some(format) = detect::detect_magic(&head) {
                    return Ok(format);
                }
                if detect::starts_with_stream_schema(&head, o.size(), |n| o.get_range(0..n as u64))?
                {
                    return Ok(Format::IpcStream);
                }
                Err(Error::format(
                    o.url(),
                    "byte 0",
                    "cannot detect the format (no Parquet or Arrow magic bytes, no Arrow stream schema, unknown extension); pass format=",
                ))
            }
        }
    }

    /// Opens the file as `format`: local files are mapped; Parquet objects read their footer
    /// with one ranged GET and fetch column chunks per unit; other objects are fetched whole.
    pub fn open(&self, format: Format, options: &DecodeOptions) -> Result<Arc<dyn FileReader>> {
        super::guard(
            &self.path(),
            || "opening".to_string(),
            || self.open_unguarded(format, options),
        )
    }

    /// Opens a token file with its Megatron index: the `.idx` beside a local file, or the
    /// `index` object listed with it.
    pub fn open_tokens(
        &self,
        index: Option<&Location>,
        options: &DecodeOptions,
    ) -> Result<Arc<dyn FileReader>> {
        let (Location::Object(o), Some(Location::Object(idx))) = (self, index) else {
            return self.open(Format::Tokens, options);
        };
        super::guard(
            &self.path(),
            || "opening".to_string(),
            || {
                let idx_path = PathBuf::from(idx.url());
                let file = super::tokens::TokenFile::from_parts(
                    &self.path(),
                    o.get_all()?,
                    Some((idx_path.as_path(), idx.get_all()?)),
                    options.token_dtype,
                    options.token_chunk,
                )?;
                Ok(Arc::new(file) as Arc<dyn FileReader>)
            },
        )
    }

    fn open_unguarded(
        &self,
        format: Format,
        options: &DecodeOptions,
    ) -> Result<Arc<dyn FileReader>> {
        match self {
            Location::Local(p) => super::open_file(p, format, options),
            Location::Object(o) => Ok(match format {
                Format::Parquet => Arc::new(super::parquet::ParquetFile::open_object(o.clone())?),
                Format::Csv => Arc::new(super::csv::CsvFile::from_bytes(
                    &self.path(),
                    o.get_all()?,
                    options,
                )?),
                Format::Ipc => {
                    Arc::new(super::ipc::IpcFile::from_bytes(&self.path(), o.get_all()?)?)
                }
                Format::IpcStream => Arc::new(super::ipc::IpcStreamFile::from_stream_bytes(
                    &self.path(),
                    o.get_all()?,
                )?),
                Format::WebDataset => Arc::new(super::webdataset::TarShard::from_bytes(
                    &self.path(),
                    o.get_all()?,
                    options,
                )?),
                Format::Tokens => Arc::new(super::tokens::TokenFile::from_parts(
                    &self.path(),
                    o.get_all()?,
                    None,
                    options.token_dtype,
                    options.token_chunk,
                )?),
                Format::Text | Format::JsonLines => Arc::new(super::lines::LinesFile::from_bytes(
                    &self.path(),
                    o.get_all()?,
                    format,
                    options,
                )?),
                Format::ImageFolder => {
                    return Err(Error::invalid(
                        "format",
                        format!(
                        "{}: an ImageFolder is read from a local directory; for object storage, \
                             write it as WebDataset shards or a Parquet image column",
                        self.path().display()
                    ),
                    ))
                }
            }),
        }
    }
}

/// Expands path specs (local files, directories, globs, object URLs, prefixes and globs over
/// objects) into locations, in order, without duplicates.
pub fn list_locations(specs: &[String], options: &DecodeOptions) -> Result<Vec<Location>> {
    if !specs.iter().any(|s| store::is_url(s)) {
        let locals: Vec<String> = specs
            .iter()
            .map(|s| store::local_path(s).to_string())
            .collect();
        return Ok(listing::list_all(&locals)?
            .into_iter()
            .map(Location::Local)
            .collect());
    }
    let mut out: Vec<Location> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        let found: Vec<Location> = if store::is_url(spec) {
            store::list_objects(spec, &options.storage)?
                .into_iter()
                .map(Location::Object)
                .collect()
        } else {
            listing::list_files(store::local_path(spec))?
                .into_iter()
                .map(Location::Local)
                .collect()
        };
        for loc in found {
            if seen.insert(loc.path()) {
                out.push(loc);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    use object_store::{path::Path as ObjectPath, ObjectStoreExt};

    use super::*;

    fn batch(n: i64) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
        let xs: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| i as f64 / 8.0),
        ));
        let other: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * 3)));
        RecordBatch::try_from_iter([("id", ids), ("x", xs), ("other", other)]).unwrap()
    }

    fn encode(format: Format, b: &RecordBatch) -> Vec<u8> {
        let mut out = Vec::new();
        match format {
            Format::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_max_row_group_row_count(Some(100))
                    .build();
                let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, b.schema(), Some(props))
                    .unwrap();
                w.write(b).unwrap();
                w.close().unwrap();
            }
            Format::Csv => arrow_csv::Writer::new(&mut out).write(b).unwrap(),
            Format::Ipc => {
                let mut w = arrow_ipc::writer::FileWriter::try_new(&mut out, &b.schema()).unwrap();
                w.write(&b.slice(0, 300)).unwrap();
                w.write(&b.slice(300, b.num_rows() - 300)).unwrap();
                w.finish().unwrap();
            }
            Format::IpcStream => {
                let mut w =
                    arrow_ipc::writer::StreamWriter::try_new(&mut out, &b.schema()).unwrap();
                w.write(b).unwrap();
                w.finish().unwrap();
            }
            Format::JsonLines => {
                let mut w = arrow_json::LineDelimitedWriter::new(&mut out);
                w.write(b).unwrap();
                w.finish().unwrap();
            }
            Format::WebDataset | Format::ImageFolder | Format::Tokens | Format::Text => {
                unreachable!("tar shards and image folders are written by their own tests")
            }
        }
        out
    }

    /// Lists the specs, detects each file's format and opens it.
    fn open_all(specs: &[String], options: &DecodeOptions) -> Vec<Arc<dyn FileReader>> {
        list_locations(specs, options)
            .unwrap()
            .iter()
            .map(|loc| loc.open(loc.detect_format().unwrap(), options).unwrap())
            .collect()
    }

    /// Every unit of every file, in order, with the projection.
    fn read_all(files: &[Arc<dyn FileReader>], projection: Option<&[usize]>) -> Vec<RecordBatch> {
        files
            .iter()
            .flat_map(|f| (0..f.units().len()).map(move |i| f.read_unit(i, projection).unwrap()))
            .collect()
    }

    /// Every format read from the in-memory object store decodes to the same values as the
    /// same bytes read from disk, with and without a projection.
    #[test]
    fn objects_read_like_local_files() {
        let bucket = store::memory_bucket("location-test");
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (format, ext) in [
            (Format::Parquet, "parquet"),
            (Format::Csv, "csv"),
            (Format::Ipc, "arrow"),
            (Format::IpcStream, "arrows"),
            (Format::JsonLines, "jsonl"),
        ] {
            let mut local_specs = Vec::new();
            for (i, n) in [(0, 1000), (1, 450)] {
                let bytes = encode(format, &batch(n));
                let name = format!("{ext}/part-{i}.{ext}");
                std::fs::create_dir_all(dir.path().join(ext)).unwrap();
                std::fs::write(dir.path().join(&name), &bytes).unwrap();
                rt.block_on(bucket.put(&ObjectPath::from(name.as_str()), bytes.into()))
                    .unwrap();
                local_specs.push(dir.path().join(&name).to_string_lossy().to_string());
            }
            let options = DecodeOptions::default();
            let remote = open_all(&[format!("memory://location-test/{ext}")], &options);
            let local = open_all(&local_specs, &options);
            assert_eq!(remote.len(), 2);
            for (r, l) in remote.iter().zip(&local) {
                assert_eq!(r.format(), format);
                assert_eq!(r.schema(), l.schema());
                assert_eq!(r.units(), l.units());
            }
            let rows: usize = remote.iter().flat_map(|f| f.units()).map(|u| u.rows).sum();
            assert_eq!(rows, 1450);
            for projection in [None, Some(&[2, 0][..])] {
                assert_eq!(
                    read_all(&remote, projection),
                    read_all(&local, projection),
                    "{ext} {projection:?}"
                );
            }
            let path = remote[1].path().to_string_lossy().to_string();
            assert_eq!(path, format!("memory://location-test/{ext}/part-1.{ext}"));
        }
    }
}
