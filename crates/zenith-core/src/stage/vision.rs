//! The image stage: decode, crop, resize, flip and normalize each image of a column, in Rust,
//! on the decode threads, into one contiguous tensor per batch.
//!
//! Two recipes, as image training uses them:
//!
//! - **train**: torchvision's `RandomResizedCrop(size, scale, ratio)` (the same algorithm:
//!   ten tries of a random area and log-uniform aspect ratio, then the central crop of the
//!   nearest allowed ratio), `RandomHorizontalFlip(hflip)`, conversion to float and
//!   `Normalize(mean, std)`.
//! - **eval**: `Resize(resize)` of the shorter side, `CenterCrop(size)`, normalize.
//!
//! Every random number comes from the sample's generator ([`SampleContext::rng`]), so an
//! epoch is the same for any thread count and a resumed epoch continues with the same crops.
//!
//! Decoding does no more work than the output needs: a JPEG is decoded at 1/2, 1/4 or 1/8 of
//! its size in the DCT domain whenever the crop, at that scale, still has at least the output's
//! pixels in each direction, and decoding stops after the last row the crop covers. Resampling
//! is the antialiased bilinear (triangle) filter of `fast_image_resize`, the filter Pillow and
//! torchvision's `antialias=True` use: for a train crop only the crop's pixels are resampled
//! (torchvision crops, then resizes); for eval the resize-then-center-crop is one resampling
//! of the region the crop keeps, reading past its edge as a resize of the whole image would.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch, UInt8Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::Rng;

use super::{SampleContext, SampleStage};
use crate::error::{Error, Result};
use crate::source::image_decode::decode_general_rgb;
use crate::source::jpeg_scaled::{self, Request, Scaled};
use crate::source::npy;

/// ImageNet's channel means and standard deviations (torchvision's).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// See [`IMAGENET_MEAN`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A scaled decode must leave the crop at least this many times the output's size: the
/// antialiased resize then does half of the reduction or more. A DCT-domain reduction is
/// close to a box filter, so with no margin a crop decoded at 1/4 and hardly resized differs
/// from torchvision's antialiased bilinear by 3 to 5 levels of 255 (mean absolute error) on
/// finely textured images; with this margin by 1 to 3 (measured on 1/f-noise photos).
pub const DCT_MARGIN: f64 = 2.0;

/// How the crop is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Recipe {
    /// `RandomResizedCrop(size, scale, ratio)` then a horizontal flip with probability `hflip`.
    Train {
        /// Range of the crop's area as a share of the image's.
        scale: (f64, f64),
        /// Range of the crop's aspect ratio (width / height).
        ratio: (f64, f64),
        /// Probability of a horizontal flip.
        hflip: f64,
    },
    /// `Resize(resize)` of the shorter side, then `CenterCrop(size)`.
    Eval {
        /// The shorter side after the resize.
        resize: u32,
    },
}

/// The element type of the output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    /// Normalized `float32`.
    Float32,
    /// The resized RGB bytes, not normalized.
    UInt8,
}

/// The order of the output's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[B, 3, H, W]` (PyTorch's).
    Nchw,
    /// `[B, H, W, 3]`.
    Nhwc,
}

/// A declared image transform.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionTransform {
    /// The recipe.
    pub recipe: Recipe,
    /// Output height and width.
    pub size: (u32, u32),
    /// Channel means (of values in `[0, 1]`).
    pub mean: [f32; 3],
    /// Channel standard deviations.
    pub std: [f32; 3],
    /// Output element type.
    pub dtype: OutputType,
    /// Output layout.
    pub layout: Layout,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 scale where the crop allows it (see [`DCT_MARGIN`]);
    /// `false` decodes every image at full size, for results within a fraction of a level of
    /// torchvision's.
    pub dct_scaling: bool,
}

/// A crop box in the full image's pixels: rows `top..top + height`, columns
/// `left..left + width` (fractional for an eval crop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropBox {
    /// First row.
    pub top: f64,
    /// First column.
    pub left: f64,
    /// Rows.
    pub height: f64,
    /// Columns.
    pub width: f64,
}

impl VisionTransform {
    /// Checks the values (positive sizes, ordered ranges, probabilities, positive std).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("image", m));
        if self.size.0 == 0 || self.size.1 == 0 || self.size.0 > 16384 || self.size.1 > 16384 {
            return bad(format!(
                "size must be between 1 and 16384 pixels per side, got {:?}",
                self.size
            ));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad(format!("std must be positive, got {:?}", self.std));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return bad(format!("mean must be finite, got {:?}", self.mean));
        }
        match self.recipe {
            Recipe::Train {
                scale,
                ratio,
                hflip,
            } => {
                if !(scale.0 > 0.0 && scale.0 <= scale.1 && scale.1.is_finite()) {
                    return bad(format!(
                        "scale must be (low, high) with 0 < low <= high, got {scale:?}"
                    ));
                }
                if !(ratio.0 > 0.0 && ratio.0 <= ratio.1 && ratio.1.is_finite()) {
                    return bad(format!(
                        "ratio must be (low, high) with 0 < low <= high, got {ratio:?}"
                    ));
                }
                if !(0.0..=1.0).contains(&hflip) {
                    return bad(format!(
                        "hflip must be a probability in [0, 1], got {hflip}"
                    ));
                }
            }
            Recipe::Eval { resize } => {
                if resize < self.size.0.min(self.size.1) {
                    return bad(format!(
                        "resize ({resize}) must be at least the crop size {:?}",
                        self.size
                    ));
                }
            }
        }
        Ok(())
    }

    /// The shape of one output image.
    pub fn shape(&self) -> [usize; 3] {
        let (h, w) = (self.size.0 as usize, self.size.1 as usize);
        match self.layout {
            Layout::Nchw => [3, h, w],
            Layout::Nhwc => [h, w, 3],
        }
    }

    /// Values in one output image.
    pub fn values_per_image(&self) -> usize {
        3 * self.size.0 as usize * self.size.1 as usize
    }

    /// The Arrow type of the output column.
    pub fn data_type(&self) -> DataType {
        let inner = match self.dtype {
            OutputType::Float32 => DataType::Float32,
            OutputType::UInt8 => DataType::UInt8,
        };
        npy::shaped_type(inner, &self.shape())
    }

    /// The crop of an image of `width x height` and whether it is flipped, drawn from `rng`
    /// (train) or fixed (eval).
    pub fn draw(&self, width: u32, height: u32, rng: &mut impl Rng) -> (CropBox, bool) {
        match self.recipe {
            Recipe::Train {
                scale,
                ratio,
                hflip,
            } => {
                let crop = random_resized_crop(width, height, scale, ratio, rng);
                let flip = hflip > 0.0 && rng.random::<f64>() < hflip;
                (crop, flip)
            }
            Recipe::Eval { resize } => (self.center_crop(width, height, resize), false),
        }
    }

    /// `Resize(resize)` then `CenterCrop(size)`, as the region of the full image it keeps.
    fn center_crop(&self, width: u32, height: u32, resize: u32) -> CropBox {
        let (w, h) = (f64::from(width), f64::from(height));
        // torchvision: the shorter side becomes `resize`, the longer `int(resize * long / short)`.
        let (rw, rh) = if width <= height {
            (
                f64::from(resize),
                (f64::from(resize) * h / w).floor().max(1.0),
            )
        } else {
            (
                (f64::from(resize) * w / h).floor().max(1.0),
                f64::from(resize),
            )
        };
        let (th, tw) = (f64::from(self.size.0), f64::from(self.size.1));
        let top = ((rh - th) / 2.0).round_ties_even().max(0.0);
        let left = ((rw - tw) / 2.0).round_ties_even().max(0.0);
        let (sy, sx) = (h / rh, w / rw);
        CropBox {
            top: top * sy,
            left: left * sx,
            height: th.min(rh) * sy,
            width: tw.min(rw) * sx,
        }
    }

    /// The DCT scale denominator (8, 4, 2 or 1) for a crop: the smallest decode that still
    /// leaves the crop [`DCT_MARGIN`] times the output's size in both directions.
    fn denominator(&self, crop: &CropBox) -> u32 {
        if !self.dct_scaling {
            return 1;
        }
        let (oh, ow) = (
            f64::from(self.size.0) * DCT_MARGIN,
            f64::from(self.size.1) * DCT_MARGIN,
        );
        [8u32, 4, 2]
            .into_iter()
            .find(|&d| crop.width / f64::from(d) >= ow && crop.height / f64::from(d) >= oh)
            .unwrap_or(1)
    }

    /// Decodes `bytes` and writes the transformed image into `out` (one image's values), with
    /// the crop and flip drawn from `rng`. `scratch` holds the resized RGB pixels between calls.
    pub fn apply_one<T: Element>(
        &self,
        bytes: &[u8],
        rng: &mut impl Rng,
        buffers: &mut Buffers,
        table: &LookupTable,
        out: &mut [T],
    ) -> std::result::Result<(), String> {
        self.apply_with(bytes, |w, h| self.draw(w, h, rng), buffers, table, out)
    }

    /// Like [`apply_one`](Self::apply_one) with the crop and flip `choose` gives for the full
    /// image's width and height.
    pub fn apply_with<T: Element>(
        &self,
        bytes: &[u8],
        choose: impl FnOnce(u32, u32) -> (CropBox, bool),
        buffers: &mut Buffers,
        table: &LookupTable,
        out: &mut [T],
    ) -> std::result::Result<(), String> {
        if out.len() != self.values_per_image() {
            return Err(format!(
                "the output holds {} values, an image {}",
                out.len(),
                self.values_per_image()
            ));
        }
        let mut choose = Some(choose);
        let mut drawn = None;
        let scaled = if bytes.starts_with(&[0xff, 0xd8]) {
            jpeg_scaled::decode(bytes, std::mem::take(&mut buffers.decoded), |w, h| {
                crate::source::image_decode::check_decoded_size(
                    w,
                    h,
                    u64::from(w) * u64::from(h) * 3,
                )?;
                let (crop, flip) = match choose.take() {
                    Some(f) => f(w, h),
                    None => return Err("the crop was drawn twice".into()),
                };
                drawn = Some((crop, flip));
                Ok(Request {
                    denominator: self.denominator(&crop),
                    rows: (crop.top + crop.height).ceil() as u32,
                })
            })?
        } else {
            None
        };
        let scaled = match scaled {
            Some(s) => s,
            None => {
                let (pixels, width, height) = decode_general_rgb(bytes)?;
                Scaled {
                    pixels,
                    width,
                    height,
                    rows: height,
                    full: (width, height),
                }
            }
        };
        let (crop, flip) = match (drawn, choose) {
            (Some(d), _) => d,
            (None, Some(f)) => f(scaled.full.0, scaled.full.1),
            (None, None) => return Err("the crop was not drawn".into()),
        };
        check_crop(&crop, scaled.full)?;
        self.resample(&scaled, &crop, &mut buffers.resizer, &mut buffers.pixels)?;
        write_output(&buffers.pixels, self, table, flip, out);
        buffers.decoded = scaled.pixels;
        Ok(())
    }

    /// Only the decoding [`apply_one`](Self::apply_one) does for this image and draw (the same
    /// crop, scale and rows), without resampling or writing: the decoder's share of the work,
    /// for measuring the pipeline against it.
    pub fn decode_only(
        &self,
        bytes: &[u8],
        rng: &mut impl Rng,
        buffers: &mut Buffers,
    ) -> std::result::Result<(), String> {
        let decoded = if bytes.starts_with(&[0xff, 0xd8]) {
            jpeg_scaled::decode(bytes, std::mem::take(&mut buffers.decoded), |w, h| {
                let (crop, _) = self.draw(w, h, rng);
                Ok(Request {
                    denominator: self.denominator(&crop),
                    rows: (crop.top + crop.height).ceil() as u32,
                })
            })?
        } else {
            None
        };
        match decoded {
            Some(s) => buffers.decoded = s.pixels,
            None => buffers.decoded = decode_general_rgb(bytes)?.0,
        }
        Ok(())
    }

    /// Crops and resizes the decoded pixels into `scratch` (RGB, output size).
    fn resample(
        &self,
        image: &Scaled,
        crop: &CropBox,
        resizer: &mut Resizer,
        scratch: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let (oh, ow) = self.size;
        scratch.clear();
        scratch.resize(3 * oh as usize * ow as usize, 0);
        let resize_error = |e: &dyn std::fmt::Display| format!("cannot resize image: {e}");
        let src = ImageRef::new(image.width, image.rows, &image.pixels, PixelType::U8x3)
            .map_err(|e| resize_error(&e))?;
        let mut dst =
            Image::from_slice_u8(ow, oh, scratch, PixelType::U8x3).map_err(|e| resize_error(&e))?;
        let alg = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        // The crop in the decoded image's pixels.
        let sx = f64::from(image.width) / f64::from(image.full.0);
        let sy = f64::from(image.height) / f64::from(image.full.1);
        let (left, top) = (crop.left * sx, crop.top * sy);
        let (width, height) = (crop.width * sx, crop.height * sy);
        let rows = f64::from(image.rows);
        let cols = f64::from(image.width);
        match self.recipe {
            Recipe::Train { .. } => {
                // Only the crop's pixels: a view of the whole pixels the crop touches, and
                // the fractional part of a scaled crop inside it.
                let x0 = left.floor().clamp(0.0, cols - 1.0);
                let y0 = top.floor().clamp(0.0, rows - 1.0);
                let x1 = (left + width).ceil().clamp(x0 + 1.0, cols);
                let y1 = (top + height).ceil().clamp(y0 + 1.0, rows);
                let view = CroppedImage::new(
                    &src,
                    x0 as u32,
                    y0 as u32,
                    (x1 - x0) as u32,
                    (y1 - y0) as u32,
                )
                .map_err(|e| resize_error(&e))?;
                // Rounding may put the crop's far edge a hair past the decoded pixels.
                let (dx, dy) = ((left - x0).max(0.0), (top - y0).max(0.0));
                let inner = alg.crop(
                    dx,
                    dy,
                    width.min(x1 - x0 - dx).max(f64::MIN_POSITIVE),
                    height.min(y1 - y0 - dy).max(f64::MIN_POSITIVE),
                );
                resizer
                    .resize(&view, &mut dst, &inner)
                    .map_err(|e| resize_error(&e))?;
            }
            Recipe::Eval { .. } => {
                let (left, top) = (left.clamp(0.0, cols - 1.0), top.clamp(0.0, rows - 1.0));
                let options = alg.crop(left, top, width.min(cols - left), height.min(rows - top));
                resizer
                    .resize(&src, &mut dst, &options)
                    .map_err(|e| resize_error(&e))?;
            }
        }
        Ok(())
    }
}

/// Reusable state of one thread's transforms: the resizer, the decoded and the resized pixels.
#[derive(Default)]
pub struct Buffers {
    resizer: Resizer,
    decoded: Vec<u8>,
    pixels: Vec<u8>,
}

impl std::fmt::Debug for Buffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffers").finish_non_exhaustive()
    }
}

/// A crop must be non-empty and inside the image.
fn check_crop(crop: &CropBox, (width, height): (u32, u32)) -> std::result::Result<(), String> {
    let inside = crop.top >= 0.0
        && crop.left >= 0.0
        && crop.height >= 1.0
        && crop.width >= 1.0
        && crop.top + crop.height <= f64::from(height) + 1e-6
        && crop.left + crop.width <= f64::from(width) + 1e-6;
    if inside {
        Ok(())
    } else {
        Err(format!(
            "crop (top {}, left {}, height {}, width {}) is not inside the {width}x{height} image",
            crop.top, crop.left, crop.height, crop.width
        ))
    }
}

/// torchvision's `RandomResizedCrop.get_params`.
fn random_resized_crop(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> CropBox {
    let (w, h) = (f64::from(width), f64::from(height));
    let area = w * h;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    let uniform = |rng: &mut dyn rand::RngCore, lo: f64, hi: f64| {
        if hi > lo {
            lo + (hi - lo) * rng.random::<f64>()
        } else {
            lo
        }
    };
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let cw = (target * aspect).sqrt().round_ties_even();
        let ch = (target / aspect).sqrt().round_ties_even();
        if cw > 0.0 && cw <= w && ch > 0.0 && ch <= h {
            let (cw, ch) = (cw as u32, ch as u32);
            let top = rng.random_range(0..=height - ch);
            let left = rng.random_range(0..=width - cw);
            return CropBox {
                top: f64::from(top),
                left: f64::from(left),
                height: f64::from(ch),
                width: f64::from(cw),
            };
        }
    }
    // The central crop of the nearest allowed aspect ratio.
    let in_ratio = w / h;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, (w / ratio.0).round_ties_even().clamp(1.0, h))
    } else if in_ratio > ratio.1 {
        ((h * ratio.1).round_ties_even().clamp(1.0, w), h)
    } else {
        (w, h)
    };
    CropBox {
        top: ((h - ch) / 2.0).floor(),
        left: ((w - cw) / 2.0).floor(),
        height: ch,
        width: cw,
    }
}

/// An output element: `f32` (normalized) or `u8` (the pixel).
pub trait Element: Copy + Default + Send {
    /// The value of channel `c` for pixel byte `v`, through the channel's lookup table.
    fn from_pixel(table: &LookupTable, c: usize, v: u8) -> Self;
}

impl Element for f32 {
    #[inline]
    fn from_pixel(table: &LookupTable, c: usize, v: u8) -> f32 {
        table[c][v as usize]
    }
}

impl Element for u8 {
    #[inline]
    fn from_pixel(_: &LookupTable, _: usize, v: u8) -> u8 {
        v
    }
}

/// `(v / 255 - mean) / std` for every byte and channel.
pub fn lookup_table(t: &VisionTransform) -> LookupTable {
    let mut table = [[0f32; 256]; 3];
    for (c, row) in table.iter_mut().enumerate() {
        for (v, slot) in row.iter_mut().enumerate() {
            *slot = (v as f32 / 255.0 - t.mean[c]) / t.std[c];
        }
    }
    table
}

/// Per channel, the output value of each pixel byte: `(v / 255 - mean) / std`.
pub type LookupTable = [[f32; 256]; 3];

/// Writes the resized RGB `pixels` into `out` in the transform's layout, flipped if asked.
fn write_output<T: Element>(
    pixels: &[u8],
    t: &VisionTransform,
    table: &LookupTable,
    flip: bool,
    out: &mut [T],
) {
    let (h, w) = (t.size.0 as usize, t.size.1 as usize);
    let plane = h * w;
    for (y, row) in pixels.chunks_exact(w * 3).take(h).enumerate() {
        for x in 0..w {
            let sx = if flip { w - 1 - x } else { x };
            let px = &row[sx * 3..sx * 3 + 3];
            match t.layout {
                Layout::Nchw => {
                    for c in 0..3 {
                        out[c * plane + y * w + x] = T::from_pixel(table, c, px[c]);
                    }
                }
                Layout::Nhwc => {
                    let o = (y * w + x) * 3;
                    for c in 0..3 {
                        out[o + c] = T::from_pixel(table, c, px[c]);
                    }
                }
            }
        }
    }
}

/// The stage: transforms one image column of every unit.
pub struct ImageStage {
    column: Option<String>,
    transform: VisionTransform,
    table: Box<LookupTable>,
}

/// Names a column is taken as the image column by, when the stage is not told which.
const IMAGE_COLUMN_NAMES: [&str; 6] = ["image", "img", "jpg", "jpeg", "png", "webp"];

/// True for the column types an image can be read from: binary, or the Hugging Face
/// `datasets` layout `struct<bytes: binary, path: string>`.
fn is_image_type(dt: &DataType) -> bool {
    match dt {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        DataType::Struct(fields) => fields
            .iter()
            .any(|f| f.name() == "bytes" && is_image_type(f.data_type())),
        _ => false,
    }
}

impl ImageStage {
    /// A stage applying `transform` to `column` (when `None`: the one binary column named
    /// `image`, `img`, `jpg`, `jpeg`, `png` or `webp`).
    pub fn new(column: Option<String>, transform: VisionTransform) -> Result<ImageStage> {
        transform.validate()?;
        let table = Box::new(lookup_table(&transform));
        Ok(ImageStage {
            column,
            transform,
            table,
        })
    }

    /// The index of the image column in `schema`.
    fn column_index(&self, schema: &Schema) -> Result<usize> {
        let named = |name: &str| {
            schema.index_of(name).map_err(|_| {
                Error::invalid(
                    "image",
                    format!(
                        "no column {name:?} to transform; columns: {}",
                        column_names(schema)
                    ),
                )
            })
        };
        let index = match &self.column {
            Some(name) => named(name)?,
            None => {
                let found: Vec<usize> = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| {
                        IMAGE_COLUMN_NAMES.contains(&f.name().to_ascii_lowercase().as_str())
                            && is_image_type(f.data_type())
                    })
                    .map(|(i, _)| i)
                    .collect();
                match found.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(Error::invalid(
                            "image",
                            format!(
                                "no image column (a binary column named one of {IMAGE_COLUMN_NAMES:?}); \
                                 name it with column=...; columns: {}",
                                column_names(schema)
                            ),
                        ))
                    }
                    many => {
                        let names: Vec<&str> =
                            many.iter().map(|&i| schema.field(i).name().as_str()).collect();
                        return Err(Error::invalid(
                            "image",
                            format!("several image columns {names:?}: name one with column=..."),
                        ));
                    }
                }
            }
        };
        let field = schema.field(index);
        if !is_image_type(field.data_type()) {
            return Err(Error::invalid(
                "image",
                format!(
                    "column {:?} is {}, not binary image bytes (binary, or struct<bytes: binary, path: string>)",
                    field.name(),
                    field.data_type()
                ),
            ));
        }
        Ok(index)
    }

    fn transform_column<T: Element>(
        &self,
        images: &dyn Array,
        first: u64,
        context: &SampleContext,
    ) -> Result<Vec<T>> {
        let per = self.transform.values_per_image();
        let rows = images.len();
        thread_local! {
            // One set per decode thread, reused by every unit it transforms (an ImageFolder's
            // unit is one image).
            static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
        }
        let mut out = vec![T::default(); per * rows];
        BUFFERS.with(|cell| {
            let mut fresh = Buffers::default();
            let mut guard = cell.try_borrow_mut();
            let buffers = match guard.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut fresh,
            };
            for (i, chunk) in out.chunks_mut(per).enumerate() {
                let sample = first + i as u64;
                let fail = |why: String| Error::format("", format!("sample {sample}"), why);
                let bytes = image_bytes(images, i).map_err(fail)?;
                let mut rng = context.rng(sample);
                self.transform
                    .apply_one(bytes, &mut rng, buffers, &self.table, chunk)
                    .map_err(fail)?;
            }
            Ok(())
        })?;
        Ok(out)
    }
}

fn column_names(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}

/// The bytes of image `i` of a column [`is_image_type`] accepts.
fn image_bytes(column: &dyn Array, i: usize) -> std::result::Result<&[u8], String> {
    if column.is_null(i) {
        return Err("the image is null".into());
    }
    if let Some(a) = column.as_binary_opt::<i32>() {
        return Ok(a.value(i));
    }
    if let Some(a) = column.as_binary_opt::<i64>() {
        return Ok(a.value(i));
    }
    if let Some(a) = column.as_binary_view_opt() {
        return Ok(a.value(i));
    }
    if let Some(s) = column.as_struct_opt() {
        let bytes = s
            .column_by_name("bytes")
            .ok_or_else(|| "the image struct has no `bytes` field".to_string())?;
        if bytes.is_null(i) {
            let path = s
                .column_by_name("path")
                .and_then(|p| p.as_string_opt::<i32>().map(|p| p.value(i).to_string()));
            return Err(match path {
                Some(p) if !p.is_empty() => format!(
                    "the image has no bytes, only a path ({p:?}); images stored by path are not read"
                ),
                _ => "the image's bytes are null".into(),
            });
        }
        return image_bytes(bytes.as_ref(), i);
    }
    Err(format!("not image bytes: {}", column.data_type()))
}

impl SampleStage for ImageStage {
    fn name(&self) -> &str {
        "image"
    }

    fn required_columns(&self) -> Vec<String> {
        self.column.iter().cloned().collect()
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let index = self.column_index(input)?;
        let fields: Vec<Field> = input
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i == index {
                    Field::new(f.name(), self.transform.data_type(), false)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Ok(Arc::new(Schema::new_with_metadata(
            fields,
            input.metadata().clone(),
        )))
    }

    fn apply(
        &self,
        batch: RecordBatch,
        first_sample: u64,
        context: &SampleContext,
    ) -> Result<RecordBatch> {
        let schema = batch.schema();
        let index = self.column_index(&schema)?;
        let images = batch.column(index);
        let rows = batch.num_rows();
        let values: ArrayRef = match self.transform.dtype {
            OutputType::Float32 => Arc::new(Float32Array::from(self.transform_column::<f32>(
                images.as_ref(),
                first_sample,
                context,
            )?)),
            OutputType::UInt8 => Arc::new(UInt8Array::from(self.transform_column::<u8>(
                images.as_ref(),
                first_sample,
                context,
            )?)),
        };
        let column = npy::wrap_shape(values, &self.transform.shape(), rows)
            .map_err(|e| Error::invalid("image", e))?;
        let out_schema = self.output_schema(&schema)?;
        let mut columns = batch.columns().to_vec();
        columns[index] = column;
        RecordBatch::try_new(out_schema, columns).map_err(|e| Error::invalid("image", e))
    }
}

/// Times `transform` over `images` on `threads` threads, twice: decoding alone (the same crops
/// at the same scales and rows, [`VisionTransform::decode_only`]) and the whole transform.
/// Returns the seconds of each: the decoder's ceiling for the pipeline, as the image benchmark
/// reports it.
pub fn time_decode_and_transform(
    transform: &VisionTransform,
    images: &[Vec<u8>],
    seed: u64,
    threads: usize,
) -> Result<(f64, f64)> {
    use rand::SeedableRng;
    use rayon::prelude::*;

    let table = lookup_table(transform);
    let pool = crate::pool::build(threads.max(1), "zenith-vision-bench")?;
    let run = |full: bool| -> Result<f64> {
        let start = std::time::Instant::now();
        pool.install(|| {
            images
                .par_iter()
                .enumerate()
                .map_init(
                    || (Buffers::default(), vec![0f32; transform.values_per_image()]),
                    |(buffers, out), (i, bytes)| {
                        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::plan::mix(&[
                            seed, i as u64,
                        ]));
                        if full {
                            transform.apply_one(bytes, &mut rng, buffers, &table, out)
                        } else {
                            transform.decode_only(bytes, &mut rng, buffers)
                        }
                    },
                )
                .collect::<std::result::Result<Vec<()>, String>>()
                .map_err(|e| Error::format("<bytes>", "image", e))
        })?;
        Ok(start.elapsed().as_secs_f64())
    };
    Ok((run(false)?, run(true)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn train(size: u32) -> VisionTransform {
        VisionTransform {
            recipe: Recipe::Train {
                scale: (0.08, 1.0),
                ratio: (3.0 / 4.0, 4.0 / 3.0),
                hflip: 0.5,
            },
            size: (size, size),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            dtype: OutputType::Float32,
            layout: Layout::Nchw,
            dct_scaling: true,
        }
    }

    #[test]
    fn random_crops_lie_inside_the_image_with_allowed_area_and_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (w, h) in [(500u32, 375u32), (300, 600), (64, 64), (2000, 100)] {
            for _ in 0..500 {
                let c = random_resized_crop(w, h, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
                assert!(c.top >= 0.0 && c.left >= 0.0);
                assert!(c.top + c.height <= f64::from(h) && c.left + c.width <= f64::from(w));
                assert!(c.height >= 1.0 && c.width >= 1.0);
                assert_eq!(c.top.fract() + c.left.fract() + c.width.fract(), 0.0);
            }
        }
        // A 2000x100 strip rarely fits a random crop: the fallback is the central crop of
        // the widest allowed ratio.
        let c = random_resized_crop(2000, 100, (0.9, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(
            (c.width, c.height, c.left, c.top),
            (133.0, 100.0, 933.0, 0.0)
        );
    }

    #[test]
    fn eval_crop_is_the_center_of_the_resized_image() {
        let mut t = train(224);
        t.recipe = Recipe::Eval { resize: 256 };
        // 512x384: resized to 341x256, the centre 224x224 starts at (16, 58.5 -> 58 or 59).
        let c = t.center_crop(512, 384, 256);
        let (sx, sy) = (512.0 / 341.0, 384.0 / 256.0);
        assert_eq!(c.top, 16.0 * sy);
        assert_eq!(c.left, ((341.0f64 - 224.0) / 2.0).round_ties_even() * sx);
        assert_eq!((c.height, c.width), (224.0 * sy, 224.0 * sx));
    }

    #[test]
    fn the_dct_scale_keeps_at_least_the_output_size() {
        let t = train(224);
        let crop = |w: f64, h: f64| CropBox {
            top: 0.0,
            left: 0.0,
            height: h,
            width: w,
        };
        assert_eq!(t.denominator(&crop(895.0, 2000.0)), 1);
        assert_eq!(t.denominator(&crop(896.0, 896.0)), 2);
        assert_eq!(t.denominator(&crop(2000.0, 1800.0)), 4);
        assert_eq!(t.denominator(&crop(3584.0, 3600.0)), 8);
        let exact = VisionTransform {
            dct_scaling: false,
            ..t
        };
        assert_eq!(exact.denominator(&crop(3584.0, 3600.0)), 1);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let mut t = train(224);
        t.std = [0.2, 0.0, 0.2];
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("std must be positive"));
        let mut t = train(224);
        t.recipe = Recipe::Train {
            scale: (0.5, 0.1),
            ratio: (0.75, 1.33),
            hflip: 0.5,
        };
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("scale must be"));
        let mut t = train(224);
        t.recipe = Recipe::Eval { resize: 100 };
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("resize (100)"));
    }

    #[test]
    fn flip_and_layout_place_each_channel() {
        let mut t = train(2);
        t.dtype = OutputType::UInt8;
        // 2x2 RGB: pixel (y, x) = [10y + x, 100 + 10y + x, 200 + x].
        let px: Vec<u8> = (0..2)
            .flat_map(|y| (0..2).flat_map(move |x| [10 * y + x, 100 + 10 * y + x, 200 + x]))
            .collect();
        let table = lookup_table(&t);
        let mut out = vec![0u8; 12];
        write_output(&px, &t, &table, false, &mut out);
        assert_eq!(out, [0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 200, 201]);
        write_output(&px, &t, &table, true, &mut out);
        assert_eq!(out, [1, 0, 11, 10, 101, 100, 111, 110, 201, 200, 201, 200]);
        t.layout = Layout::Nhwc;
        write_output(&px, &t, &table, false, &mut out);
        assert_eq!(out, px);
        let t = train(2);
        let table = lookup_table(&t);
        let mut f = vec![0f32; 12];
        write_output(&px, &t, &table, false, &mut f);
        assert!((f[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((f[8] - (200.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }
}
