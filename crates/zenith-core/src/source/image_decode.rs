//! Image members of WebDataset samples (JPEG, PNG, WebP): decoded to RGB and brought to one
//! fixed size, so a batch of them is one `uint8 [B, H, W, 3]` tensor.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::{ColorType, DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// Most bytes one image may decode to before it is resized: the `image` crate's own default
/// allocation limit, which its `DynamicImage::from_decoder` does not apply. A header may claim
/// any size; without this a few bytes could ask for tens of gigabytes and abort the process.
const MAX_DECODED_BYTES: u64 = 512 << 20;

/// The error for an image whose header asks for more than [`MAX_DECODED_BYTES`].
pub(crate) fn check_decoded_size(width: u32, height: u32, bytes: u64) -> Result<(), String> {
    if bytes > MAX_DECODED_BYTES {
        return Err(format!(
            "image of {width}x{height} pixels would decode to {bytes} bytes, more than the \
             {MAX_DECODED_BYTES} allowed"
        ));
    }
    Ok(())
}

/// The `image` crate's decoder for `bytes` (format from its magic bytes), its size checked
/// against [`MAX_DECODED_BYTES`].
fn open_decoder(bytes: &[u8]) -> Result<impl ImageDecoder + '_, String> {
    let decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image: {e}"))?
        .into_decoder()
        .map_err(|e| format!("cannot decode image: {e}"))?;
    let (w, h) = decoder.dimensions();
    check_decoded_size(w, h, decoder.total_bytes())?;
    Ok(decoder)
}

/// Decodes any supported image (format from its magic bytes) to RGB at full size: pixels,
/// width, height. Grayscale, CMYK and palette images are converted; an alpha channel is
/// dropped (as Pillow's `convert("RGB")` drops it); 16-bit channels keep their high byte.
pub(crate) fn decode_general_rgb(bytes: &[u8]) -> Result<(Vec<u8>, u32, u32), String> {
    let decoder = open_decoder(bytes)?;
    let rgb = DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("cannot decode image: {e}"))?
        .into_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    Ok((rgb.into_raw(), w, h))
}

/// Field extensions decoded as images when an image size is configured.
pub(crate) fn is_image_extension(ext: &str) -> bool {
    matches!(ext, "jpg" | "jpeg" | "png" | "webp")
}

/// Decodes `bytes` (format from its magic bytes) into `out`, an `height * width * 3` RGB buffer.
///
/// An image of another size is center-cropped to the target aspect ratio, then resized with a
/// bilinear (triangle) filter: the usual "resize the shorter side, center-crop" preprocessing,
/// done in the order that resamples fewer pixels. An image already at the target size is copied
/// exactly as decoded.
pub(crate) fn decode_rgb_into(
    bytes: &[u8],
    height: u32,
    width: u32,
    out: &mut [u8],
) -> Result<(), String> {
    if bytes.starts_with(&[0xff, 0xd8]) {
        if let Some(result) = decode_jpeg_into(bytes, height, width, out) {
            return result;
        }
    }
    let decoder = open_decoder(bytes)?;
    let expected = u64::from(height) * u64::from(width) * 3;
    if decoder.dimensions() == (width, height)
        && decoder.color_type() == ColorType::Rgb8
        && decoder.total_bytes() == expected
        && out.len() as u64 == expected
    {
        // The common case of a dataset already at its training size: decode in place.
        return decoder
            .read_image(out)
            .map_err(|e| format!("cannot decode image: {e}"));
    }
    let rgb = DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("cannot decode image: {e}"))?
        .into_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    let fitted = if (w, h) == (width, height) {
        rgb
    } else {
        crop_resize(&rgb, height, width)
    };
    let raw = fitted.as_raw();
    if raw.len() != out.len() {
        return Err(format!(
            "image decoded to {} bytes, expected {}",
            raw.len(),
            out.len()
        ));
    }
    out.copy_from_slice(raw);
    Ok(())
}

/// Colour JPEGs straight through zune-jpeg: headers parsed once and pixels decoded into `out`
/// when the image is already at the target size (the `image` wrapper parses the headers twice
/// and copies the input first). `None` for what this path does not handle (grayscale, CMYK),
/// which then goes through the general decoder.
fn decode_jpeg_into(
    bytes: &[u8],
    height: u32,
    width: u32,
    out: &mut [u8],
) -> Option<Result<(), String>> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;

    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    if let Err(e) = decoder.decode_headers() {
        return Some(Err(format!("cannot decode image: {e}")));
    }
    let info = decoder.info()?;
    if info.components != 3 {
        return None;
    }
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    if w == 0 || h == 0 {
        return Some(Err("image has no pixels".into()));
    }
    if let Err(e) = check_decoded_size(w, h, u64::from(w) * u64::from(h) * 3) {
        return Some(Err(e));
    }
    if (w, h) == (width, height) && decoder.output_buffer_size() == Some(out.len()) {
        return Some(
            decoder
                .decode_into(out)
                .map_err(|e| format!("cannot decode image: {e}")),
        );
    }
    let pixels = match decoder.decode() {
        Ok(p) => p,
        Err(e) => return Some(Err(format!("cannot decode image: {e}"))),
    };
    let rgb = RgbImage::from_raw(w, h, pixels)?;
    let fitted = crop_resize(&rgb, height, width);
    if fitted.as_raw().len() != out.len() {
        return Some(Err(format!(
            "image decoded to {} bytes, expected {}",
            fitted.as_raw().len(),
            out.len()
        )));
    }
    out.copy_from_slice(fitted.as_raw());
    Some(Ok(()))
}

/// Center-crops `img` to the aspect ratio of `width x height`, then resizes to exactly that.
fn crop_resize(img: &RgbImage, height: u32, width: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (w64, h64, tw, th) = (
        u64::from(w),
        u64::from(h),
        u64::from(width),
        u64::from(height),
    );
    // Compare aspect ratios w/h and tw/th without floating point.
    let (cw, ch) = if w64 * th > tw * h64 {
        (((h64 * tw + th / 2) / th).clamp(1, w64) as u32, h)
    } else {
        (w, ((w64 * th + tw / 2) / tw).clamp(1, h64) as u32)
    };
    let cropped = imageops::crop_imm(img, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image();
    if (cw, ch) == (width, height) {
        return cropped;
    }
    imageops::resize(&cropped, width, height, FilterType::Triangle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb(pixel(x, y)));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn exact_size_is_lossless_for_png() {
        let bytes = png(4, 3, |x, y| [x as u8 * 10, y as u8 * 20, 7]);
        let mut out = vec![0u8; 3 * 4 * 3];
        decode_rgb_into(&bytes, 3, 4, &mut out).unwrap();
        // Row 1, column 2 (row-major, RGB).
        assert_eq!(&out[(4 + 2) * 3..(4 + 2) * 3 + 3], &[20, 20, 7]);
    }

    #[test]
    fn wide_images_are_center_cropped() {
        // Left and right thirds red, middle third green: a square crop keeps only green.
        let bytes = png(30, 10, |x, _| {
            if (10..20).contains(&x) {
                [0, 255, 0]
            } else {
                [255, 0, 0]
            }
        });
        let mut out = vec![0u8; 5 * 5 * 3];
        decode_rgb_into(&bytes, 5, 5, &mut out).unwrap();
        for px in out.chunks(3) {
            assert_eq!(px, &[0, 255, 0]);
        }
    }

    fn jpeg(img: DynamicImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn colour_and_gray_jpegs_decode_like_the_general_decoder() {
        let colour = RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8 * 15, y as u8 * 30, 90]));
        let gray = image::GrayImage::from_fn(16, 8, |x, y| image::Luma([(x * 10 + y) as u8]));
        for (bytes, fast) in [
            (jpeg(DynamicImage::ImageRgb8(colour)), true),
            (jpeg(DynamicImage::ImageLuma8(gray)), false),
        ] {
            let expected = image::load_from_memory(&bytes).unwrap().into_rgb8();
            let mut out = vec![0u8; 8 * 16 * 3];
            assert_eq!(decode_jpeg_into(&bytes, 8, 16, &mut out).is_some(), fast);
            decode_rgb_into(&bytes, 8, 16, &mut out).unwrap();
            assert_eq!(out, expected.as_raw().as_slice());
            // Resized through the same path: 4x8 keeps the aspect ratio, halving each side.
            let mut small = vec![0u8; 4 * 8 * 3];
            decode_rgb_into(&bytes, 4, 8, &mut small).unwrap();
            let want = crop_resize(&expected, 4, 8);
            assert_eq!(small, want.as_raw().as_slice());
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut out = vec![0u8; 3];
        assert!(decode_rgb_into(b"\xff\xd8\xff\xe0 not really a jpeg", 1, 1, &mut out).is_err());
        assert!(decode_rgb_into(b"", 1, 1, &mut out).is_err());
    }
}
