//! The ImageFolder layout: `root/<class>/<image>`, as torchvision's `ImageFolder` reads it.
//!
//! Classes are the subdirectories of the root, sorted by name; labels are their positions
//! (`int64`). The images of a class are the files under its directory (recursively, symlinks
//! followed) whose extension torchvision takes as an image, in torchvision's order: the
//! directories sorted by path, the files of each sorted by name. So sample `i` and its label
//! are torchvision's `ImageFolder(root).samples[i]`.
//!
//! Each image is one work unit (a row of `image: binary` with the file's bytes and
//! `label: int64`), so the plan permutes the images themselves and a corrupt image skipped
//! under `on_error="skip"` is one sample. The class names travel in the schema's metadata
//! under [`CLASSES_KEY`] (a JSON list).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::{FileReader, Format, UnitMeta};
use crate::error::{Error, Result};

/// Schema metadata key holding the class names, a JSON list in label order.
pub const CLASSES_KEY: &str = "zenith.classes";

/// The extensions torchvision's `ImageFolder` takes as images (compared lowercased).
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The images of an ImageFolder root.
pub struct ImageFolder {
    root: PathBuf,
    /// Per image: its path and label.
    images: Vec<(PathBuf, i64)>,
    classes: Vec<String>,
    units: Vec<UnitMeta>,
    schema: SchemaRef,
    bytes: u64,
}

/// A directory's subdirectories and its files with their sizes.
type Entries = (Vec<PathBuf>, Vec<(PathBuf, u64)>);

/// Entries of `dir` (following symlinks), sorted by name: (subdirectories, files).
fn entries(dir: &Path) -> Result<Entries> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for entry in read {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        // `metadata` follows symlinks, as `os.walk(followlinks=True)` and `is_dir` do.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a dangling link: torchvision's walk skips it too
        };
        if meta.is_dir() {
            dirs.push(path);
        } else if meta.is_file() {
            files.push((path, meta.len()));
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

/// Image files under `dir`, in torchvision's order: every directory of the tree sorted by
/// path, the files of each sorted by name.
fn walk(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut found: Vec<(PathBuf, Vec<(PathBuf, u64)>)> = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = pending.pop() {
        seen += 1;
        if seen > 1_000_000 {
            return Err(Error::invalid(
                "imagefolder",
                format!(
                    "{}: more than a million directories (a symlink loop?)",
                    dir.display()
                ),
            ));
        }
        let (dirs, files) = entries(&d)?;
        found.push((
            d,
            files
                .into_iter()
                .filter(|(p, _)| is_image_file(p))
                .collect(),
        ));
        pending.extend(dirs);
    }
    // Python sorts the walk's (dirpath, ...) tuples by the path string.
    found.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    Ok(found.into_iter().flat_map(|(_, files)| files).collect())
}

impl ImageFolder {
    /// Lists `root`'s classes and images.
    pub fn open(root: &Path) -> Result<ImageFolder> {
        let meta = std::fs::metadata(root).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                path: root.display().to_string(),
            },
            _ => Error::io(root, e),
        })?;
        if !meta.is_dir() {
            return Err(Error::invalid(
                "imagefolder",
                format!(
                    "{} is not a directory; an ImageFolder is a directory of class directories",
                    root.display()
                ),
            ));
        }
        let (class_dirs, _) = entries(root)?;
        if class_dirs.is_empty() {
            return Err(Error::EmptySource {
                path: format!(
                    "{} (an ImageFolder needs one directory per class)",
                    root.display()
                ),
            });
        }
        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut images = Vec::new();
        let mut units = Vec::new();
        let mut bytes = 0u64;
        for (label, dir) in class_dirs.iter().enumerate() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let files = walk(dir)?;
            if files.is_empty() {
                return Err(Error::EmptySource {
                    path: format!(
                        "{} (class {name:?} has no image files: {})",
                        dir.display(),
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                });
            }
            for (path, size) in files {
                bytes += size;
                units.push(UnitMeta {
                    rows: 1,
                    bytes: size,
                });
                images.push((path, label as i64));
            }
            classes.push(name);
        }
        let classes_json =
            serde_json::to_string(&classes).map_err(|e| Error::invalid("imagefolder", e))?;
        let schema = Arc::new(Schema::new_with_metadata(
            vec![
                Field::new("image", DataType::Binary, false),
                Field::new("label", DataType::Int64, false),
            ],
            [(CLASSES_KEY.to_string(), classes_json)].into(),
        ));
        Ok(ImageFolder {
            root: root.to_path_buf(),
            images,
            classes,
            units,
            schema,
            bytes,
        })
    }

    /// True when `dir` looks like an ImageFolder: it has subdirectories, no files of a data
    /// format at its top, and the first class directory holds an image file.
    pub fn looks_like(dir: &Path) -> bool {
        let Ok((dirs, files)) = entries(dir) else {
            return false;
        };
        let data_file = files
            .iter()
            .any(|(p, _)| super::detect::detect_extension(p).is_some() || is_image_file(p));
        if dirs.is_empty() || data_file {
            return false;
        }
        dirs.iter().take(1).all(|d| {
            entries(d).is_ok_and(|(sub, files)| {
                files.iter().any(|(p, _)| is_image_file(p))
                    || sub.iter().any(|s| walk(s).is_ok_and(|f| !f.is_empty()))
            })
        })
    }

    /// The class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}

impl FileReader for ImageFolder {
    fn path(&self) -> &Path {
        &self.root
    }

    fn format(&self) -> Format {
        Format::ImageFolder
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn units(&self) -> &[UnitMeta] {
        &self.units
    }

    fn unit_location(&self, index: usize) -> String {
        match self.images.get(index) {
            Some((path, _)) => path.display().to_string(),
            None => format!("{} unit {index}", self.root.display()),
        }
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let (path, label) = self.images.get(index).ok_or_else(|| {
            Error::invalid(
                "unit",
                format!("{} has no image {index}", self.root.display()),
            )
        })?;
        let all = [0usize, 1];
        let wanted = projection.unwrap_or(&all);
        let mut fields = Vec::with_capacity(wanted.len());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(wanted.len());
        for &c in wanted {
            let column: ArrayRef = match c {
                0 => {
                    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                    Arc::new(BinaryArray::from_vec(vec![data.as_slice()]))
                }
                1 => Arc::new(Int64Array::from(vec![*label])),
                _ => {
                    return Err(Error::invalid(
                        "columns",
                        format!("an ImageFolder has 2 columns, not column {c}"),
                    ))
                }
            };
            fields.push(self.schema.field(c).clone());
            columns.push(column);
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        ));
        RecordBatch::try_new(schema, columns).map_err(|e| Error::invalid("imagefolder", e))
    }

    fn file_bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn classes_and_images_in_torchvisions_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("dog/b.jpg"), b"1");
        touch(&root.join("dog/A.PNG"), b"22");
        touch(&root.join("dog/notes.txt"), b"x");
        touch(&root.join("dog/sub/c.webp"), b"333");
        touch(&root.join("cat/z.jpeg"), b"4444");
        std::fs::create_dir_all(root.join("cat/empty")).unwrap();
        assert!(ImageFolder::looks_like(root));
        let f = ImageFolder::open(root).unwrap();
        assert_eq!(f.classes(), ["cat", "dog"]);
        let names: Vec<(String, i64)> = f
            .images
            .iter()
            .map(|(p, l)| (p.strip_prefix(root).unwrap().display().to_string(), *l))
            .collect();
        assert_eq!(
            names,
            [
                ("cat/z.jpeg".to_string(), 0),
                ("dog/A.PNG".to_string(), 1),
                ("dog/b.jpg".to_string(), 1),
                ("dog/sub/c.webp".to_string(), 1),
            ]
        );
        assert_eq!(f.file_bytes(), 10);
        let b = f.read_unit(3, None).unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(
            b.column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0),
            1
        );
        let only_label = f.read_unit(0, Some(&[1])).unwrap();
        assert_eq!(only_label.schema().field(0).name(), "label");
        assert_eq!(f.schema().metadata()[CLASSES_KEY], r#"["cat","dog"]"#);
    }

    #[test]
    fn an_empty_class_or_root_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ImageFolder::open(dir.path()),
            Err(Error::EmptySource { .. })
        ));
        touch(&dir.path().join("a/x.jpg"), b"1");
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let e = ImageFolder::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("class \"b\" has no image files"), "{e}");
        assert!(!ImageFolder::looks_like(&dir.path().join("a")));
    }
}
