//! JPEG decoding for the image transforms through libjpeg-turbo's decoder (the `mozjpeg`
//! build of it, compiled from source with its SIMD kernels): it scales in the DCT domain
//! (1/2, 1/4, 1/8 of each side, so a crop that is resized down decodes a quarter, a sixteenth
//! or a sixty-fourth of the pixels) and stops after the last row a crop needs, so the entropy
//! data below the crop is never decoded.
//!
//! libjpeg reports fatal errors through a callback that must not return: ours unwinds (the
//! library is built for it, `C-unwind`) and the unwind is caught here, so a corrupt file is an
//! error string, never an abort. A file cut short is an error too (libjpeg itself would only
//! warn and fill the missing rows with grey, as Pillow refuses to).

use std::os::raw::c_int;

use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, J_COLOR_SPACE};

/// What a transform asks of the decoder once the image's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    /// Each side is divided by this (1, 2, 4 or 8) while decoding.
    pub(crate) denominator: u32,
    /// Rows of the full-size image needed, from the top (the rest is not decoded).
    pub(crate) rows: u32,
}

/// Pixels decoded for a request: RGB rows, top first.
#[derive(Debug)]
pub(crate) struct Scaled {
    /// `width * rows * 3` bytes.
    pub(crate) pixels: Vec<u8>,
    /// Width of the decoded (scaled) image.
    pub(crate) width: u32,
    /// Height the whole scaled image would have.
    pub(crate) height: u32,
    /// Rows decoded (at most `height`).
    pub(crate) rows: u32,
    /// Width and height of the full-size image.
    pub(crate) full: (u32, u32),
}

/// The message libjpeg gives for its current error.
fn message(cinfo: &mut jpeg_common_struct) -> String {
    // SAFETY: libjpeg calls our handlers with `cinfo.err` pointing at the error manager we
    // installed, which lives as long as the decompressor.
    let Some(format) = (unsafe { cinfo.err.as_ref() }).and_then(|e| e.format_message) else {
        return "libjpeg error".to_string();
    };
    let buffer = [0u8; 80];
    // SAFETY: `format_message` writes at most JMSG_LENGTH_MAX (80) bytes, NUL-terminated,
    // into the buffer it is given.
    unsafe { format(cinfo, &buffer) };
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    std::panic::resume_unwind(Box::new(message(cinfo)));
}

extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: as in `message`.
    let code = unsafe { cinfo.err.as_ref() }.map_or(0, |e| e.msg_code);
    // Warnings (level -1) are tolerated, as Pillow tolerates them, except a file cut short.
    if level < 0 && code == mozjpeg_sys::JWRN_JPEG_EOF as c_int {
        std::panic::resume_unwind(Box::new(
            "the JPEG data ends before the image does (truncated file)".to_string(),
        ));
    }
}

fn error_manager() -> jpeg_error_mgr {
    // SAFETY: an all-zero `jpeg_error_mgr` is what C callers start from; `jpeg_std_error`
    // fills in every field.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    // SAFETY: `err` is a valid, writable error manager.
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

/// True for the colour spaces this path converts to RGB itself (CMYK and YCCK are left to the
/// general decoder).
fn converts_to_rgb(space: J_COLOR_SPACE) -> bool {
    matches!(
        space,
        J_COLOR_SPACE::JCS_YCbCr | J_COLOR_SPACE::JCS_RGB | J_COLOR_SPACE::JCS_GRAYSCALE
    )
}

/// Decodes the JPEG `bytes` as `choose` asks once it knows the full size (and may refuse, for
/// a size above the memory limit, say), into `buffer` (reused: its allocation becomes the
/// result's pixels). `Ok(None)`: a colour space this path does not handle.
pub(crate) fn decode(
    bytes: &[u8],
    buffer: Vec<u8>,
    choose: impl FnOnce(u32, u32) -> Result<Request, String>,
) -> Result<Option<Scaled>, String> {
    let mut buffer = Some(buffer);
    let run = || -> Result<Option<Scaled>, String> {
        let mut decoder = Decompress::builder()
            .with_err(error_manager())
            .from_mem(bytes)
            .map_err(|e| format!("cannot decode JPEG: {e}"))?;
        if !converts_to_rgb(decoder.color_space()) {
            return Ok(None);
        }
        let full = (decoder.width() as u32, decoder.height() as u32);
        if full.0 == 0 || full.1 == 0 {
            return Err("image has no pixels".into());
        }
        let request = choose(full.0, full.1)?;
        let denominator = request.denominator.clamp(1, 8);
        decoder.scale((8 / denominator) as u8);
        let mut started = decoder
            .to_colorspace(ColorSpace::JCS_RGB)
            .map_err(|e| format!("cannot decode JPEG: {e}"))?;
        let (width, height) = (started.width() as u32, started.height() as u32);
        // The rows asked for, at the decoded scale, and two more for the resampling filter.
        let rows = (u64::from(request.rows.min(full.1)) * u64::from(height))
            .div_ceil(u64::from(full.1)) as u32;
        let rows = (rows + 2).min(height);
        let mut pixels = buffer.take().unwrap_or_default();
        pixels.clear();
        pixels.resize(width as usize * rows as usize * 3, 0);
        started
            .read_scanlines_into::<u8>(&mut pixels)
            .map_err(|e| format!("cannot decode JPEG: {e}"))?;
        if rows == height {
            // Reading to the end checks the file's last marker, as a full decode would.
            started
                .finish()
                .map_err(|e| format!("cannot decode JPEG: {e}"))?;
        }
        Ok(Some(Scaled {
            pixels,
            width,
            height,
            rows,
            full,
        }))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(payload) => Err(format!(
            "cannot decode JPEG: {}",
            crate::error::panic_message(payload.as_ref())
        )),
    }
}
