//! `zenith.vision`'s transforms, as the engine runs them: the spec a Python `ImageTransform`
//! carries, and the functional form `resized_crop` that applies one crop to one image.

use pyo3::prelude::*;
use zenith_core::stage::vision::{
    self, Buffers, CropBox, Layout, OutputType, Recipe, VisionTransform,
};
use zenith_core::stage::ImageStage;
use zenith_core::{Error, TensorData};

use crate::errors::BindingResult;

/// The attributes of a `zenith.vision.ImageTransform`.
#[derive(FromPyObject)]
pub(crate) struct ImageSpec {
    recipe: String,
    size: (u32, u32),
    scale: (f64, f64),
    ratio: (f64, f64),
    hflip: f64,
    resize: u32,
    mean: Vec<f32>,
    std: Vec<f32>,
    dtype: String,
    layout: String,
    column: Option<String>,
    dct_scaling: bool,
}

fn three(name: &str, values: &[f32]) -> zenith_core::Result<[f32; 3]> {
    <[f32; 3]>::try_from(values).map_err(|_| {
        Error::invalid(
            "image",
            format!(
                "{name} needs one value per channel (3), got {}",
                values.len()
            ),
        )
    })
}

impl ImageSpec {
    /// The engine's transform for this spec (checked).
    pub(crate) fn transform(&self) -> zenith_core::Result<VisionTransform> {
        let recipe = match self.recipe.as_str() {
            "train" => Recipe::Train {
                scale: self.scale,
                ratio: self.ratio,
                hflip: self.hflip,
            },
            "eval" => Recipe::Eval {
                resize: self.resize,
            },
            other => {
                return Err(Error::invalid(
                    "image",
                    format!("unknown recipe {other:?}: expected \"train\" or \"eval\""),
                ))
            }
        };
        let dtype = match self.dtype.as_str() {
            "float32" => OutputType::Float32,
            "uint8" => OutputType::UInt8,
            other => {
                return Err(Error::invalid(
                    "image",
                    format!("dtype must be \"float32\" or \"uint8\", got {other:?}"),
                ))
            }
        };
        let layout = match self.layout.to_ascii_uppercase().as_str() {
            "NCHW" => Layout::Nchw,
            "NHWC" => Layout::Nhwc,
            other => {
                return Err(Error::invalid(
                    "image",
                    format!("layout must be \"NCHW\" or \"NHWC\", got {other:?}"),
                ))
            }
        };
        let transform = VisionTransform {
            recipe,
            size: self.size,
            mean: three("mean", &self.mean)?,
            std: three("std", &self.std)?,
            dtype,
            layout,
            dct_scaling: self.dct_scaling,
        };
        transform.validate()?;
        Ok(transform)
    }

    /// The per-sample stage for this spec.
    pub(crate) fn stage(&self) -> zenith_core::Result<ImageStage> {
        ImageStage::new(self.column.clone(), self.transform()?)
    }
}

/// Checks a spec as the loader would (ranges, names), so a bad one fails where it is declared.
#[pyfunction]
pub(crate) fn vision_check(spec: ImageSpec) -> BindingResult<()> {
    spec.transform()?;
    Ok(())
}

/// Applies `spec`'s resize, flip and normalization to one encoded image with the given crop
/// (in the full image's pixels); returns the image as a NumPy array of the output shape.
#[pyfunction]
#[pyo3(signature = (data, spec, top, left, height, width, flip=false, dct_scaling=true))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn vision_resized_crop<'py>(
    py: Python<'py>,
    data: &[u8],
    spec: ImageSpec,
    top: f64,
    left: f64,
    height: f64,
    width: f64,
    flip: bool,
    dct_scaling: bool,
) -> BindingResult<Bound<'py, PyAny>> {
    let mut t = spec.transform()?;
    t.dct_scaling = dct_scaling;
    let crop = CropBox {
        top,
        left,
        height,
        width,
    };
    let table = vision::lookup_table(&t);
    fn run<T: vision::Element>(
        t: &VisionTransform,
        data: &[u8],
        crop: CropBox,
        flip: bool,
        table: &vision::LookupTable,
    ) -> zenith_core::Result<Vec<T>> {
        let mut out = vec![T::default(); t.values_per_image()];
        t.apply_with(
            data,
            |_, _| (crop, flip),
            &mut Buffers::default(),
            table,
            &mut out,
        )
        .map_err(|e| Error::format("<bytes>", "image", e))?;
        Ok(out)
    }
    let data = match t.dtype {
        OutputType::Float32 => TensorData::F32(run(&t, data, crop, flip, &table)?),
        OutputType::UInt8 => TensorData::U8(run(&t, data, crop, flip, &table)?),
    };
    Ok(crate::tensor_to_numpy(py, data, &t.shape())?)
}

/// Times `spec` over `images` on `threads` threads: decoding alone, then the whole transform
/// (seconds of each). For the image benchmark's ceiling; not a public API.
#[pyfunction]
pub(crate) fn vision_decode_bench(
    py: Python<'_>,
    images: Vec<Vec<u8>>,
    spec: ImageSpec,
    seed: u64,
    threads: usize,
) -> BindingResult<(f64, f64)> {
    let t = spec.transform()?;
    Ok(py.detach(|| vision::time_decode_and_transform(&t, &images, seed, threads))?)
}
