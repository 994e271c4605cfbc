"""Image transforms run in Rust on the decode threads: ``zenith.vision.train`` and
``zenith.vision.eval`` declare the ImageNet recipe and its evaluation counterpart, passed as
``image=`` to ``zenith.DataLoader`` or ``zenith.torch.DataLoader``::

    dl = zenith.torch.DataLoader("imagenet/train", batch_size=128,
                                 image=zenith.vision.train(size=224))
    for batch in dl:  # batch["image"]: float32 [128, 3, 224, 224], batch["label"]: int64
        ...

``train`` is torchvision's ``RandomResizedCrop(size, scale, ratio)`` (the same algorithm),
``RandomHorizontalFlip(hflip)``, conversion to float in ``[0, 1]`` and
``Normalize(mean, std)``; ``eval`` is ``Resize(resize)`` of the shorter side,
``CenterCrop(size)`` and the same normalization. Resampling is the antialiased bilinear
(triangle) filter, torchvision's ``antialias=True`` and Pillow's ``BILINEAR``. Each sample's
crop and flip are drawn from a generator seeded by (seed, epoch, sample index): an epoch is the
same for any ``num_workers`` and a resumed epoch continues with the same crops.

JPEGs are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain whenever the crop, at that scale,
still has at least twice the output's pixels per side, and decoding stops after the crop's
last row (a DCT-scaled decode is close to a box filter: up to 3 levels of 255, mean absolute
error, from torchvision's result on finely textured images; ``dct_scaling=False`` keeps within a fraction
of a level); PNG,
WebP, BMP and PPM/PGM are decoded whole. Grayscale and CMYK images become RGB, an alpha channel
is dropped (as ``PIL.Image.convert("RGB")`` drops it), EXIF orientation is not applied (as
torchvision's loader does not apply it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zenith import _zenith
from zenith.exceptions import ValidationError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""ImageNet's channel means (of values in ``[0, 1]``), as torchvision gives them."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""ImageNet's channel standard deviations."""

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageTransform", "eval", "resized_crop", "train"]


@dataclass(frozen=True)
class ImageTransform:
    """A declared image transform (build it with :func:`train` or :func:`eval`).

    Attributes:
        recipe: ``"train"`` or ``"eval"``.
        size: output ``(height, width)``.
        scale: train: range of the crop's area as a share of the image's.
        ratio: train: range of the crop's aspect ratio (width / height).
        hflip: train: probability of a horizontal flip.
        resize: eval: the shorter side after the resize (0 for train).
        mean, std: per-channel normalization of values in ``[0, 1]``.
        dtype: ``"float32"`` (normalized) or ``"uint8"`` (the resized pixels, not normalized).
        layout: ``"NCHW"`` (``[B, 3, H, W]``) or ``"NHWC"`` (``[B, H, W, 3]``).
        dct_scaling: decode JPEGs at 1/2, 1/4 or 1/8 scale (in the DCT domain) where the crop
            is at least twice the output's size at that scale; ``False`` decodes every image
            whole, for a result within a fraction of a level of torchvision's.
        column: the image column; ``None`` takes the one binary column named ``image``,
            ``img``, ``jpg``, ``jpeg``, ``png`` or ``webp`` (binary, or the Hugging Face
            ``struct<bytes, path>`` layout).
    """

    recipe: str
    size: tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    resize: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    dtype: str = "float32"
    layout: str = "NCHW"
    column: str | None = None
    dct_scaling: bool = True


def _size(size: Any) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        return (int(size[0]), int(size[1]))
    raise ValidationError(
        f"invalid argument `size`: expected a positive int or (height, width), got {size!r}"
    )


def _pair(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"invalid argument `{name}`: expected (low, high), got {value!r}"
        ) from None
    return (lo, hi)


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"invalid argument `{name}`: expected three numbers, got {value!r}"
        ) from None
    if len(values) != 3:
        raise ValidationError(
            f"invalid argument `{name}`: expected one value per channel (3), got {value!r}"
        )
    return (values[0], values[1], values[2])


def _checked(t: ImageTransform) -> ImageTransform:
    # The engine checks ranges and names (one set of rules for every front): run it now, so a
    # bad transform fails where it is declared.
    _zenith.vision_check(t)
    return t


def train(
    size: int | tuple[int, int] = 224,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    dtype: str = "float32",
    layout: str = "NCHW",
    column: str | None = None,
    dct_scaling: bool = True,
) -> ImageTransform:
    """The training transform: random-resized crop to ``size``, horizontal flip with
    probability ``hflip``, normalize (see :class:`ImageTransform` for each argument)."""
    return _checked(
        ImageTransform(
            recipe="train",
            size=_size(size),
            scale=_pair("scale", scale),
            ratio=_pair("ratio", ratio),
            hflip=float(hflip),
            mean=_triple("mean", mean),
            std=_triple("std", std),
            dtype=dtype,
            layout=layout,
            column=column,
            dct_scaling=bool(dct_scaling),
        )
    )


def eval(
    size: int | tuple[int, int] = 224,
    resize: int | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    dtype: str = "float32",
    layout: str = "NCHW",
    column: str | None = None,
    dct_scaling: bool = True,
) -> ImageTransform:
    """The evaluation transform: resize the shorter side to ``resize`` (default
    ``round(size / 0.875)``, 256 for 224), center-crop ``size``, normalize."""
    out = _size(size)
    if resize is None:
        resize = round(min(out) / 0.875)
    if not isinstance(resize, int) or isinstance(resize, bool) or resize <= 0:
        raise ValidationError(f"invalid argument `resize`: expected a positive int, got {resize!r}")
    return _checked(
        ImageTransform(
            recipe="eval",
            size=out,
            resize=resize,
            mean=_triple("mean", mean),
            std=_triple("std", std),
            dtype=dtype,
            layout=layout,
            column=column,
            dct_scaling=bool(dct_scaling),
        )
    )


def resized_crop(
    data: bytes,
    transform: ImageTransform,
    top: float,
    left: float,
    height: float,
    width: float,
    flip: bool = False,
    dct_scaling: bool | None = None,
) -> np.ndarray:
    """Applies ``transform``'s resize, flip and normalization to one encoded image with a
    given crop (rows ``top..top+height``, columns ``left..left+width`` of the full image), as
    the loader does with the crop it draws; returns one image in the transform's layout and
    dtype. ``dct_scaling=False`` decodes at full size whatever the crop (``transform``'s own
    setting applies otherwise). Raises ``FormatError`` for bytes that are not a valid image."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValidationError(
            f"invalid argument `data`: expected the encoded image's bytes, got {type(data).__name__}"
        )
    if not isinstance(transform, ImageTransform):
        raise ValidationError(
            "invalid argument `transform`: expected zenith.vision.train(...) or eval(...)"
        )
    out: np.ndarray = _zenith.vision_resized_crop(
        bytes(data),
        transform,
        float(top),
        float(left),
        float(height),
        float(width),
        bool(flip),
        transform.dct_scaling if dct_scaling is None else bool(dct_scaling),
    )
    return out


def image_spec(image: Any) -> ImageTransform | None:
    """Checks the ``image=`` argument of the loaders."""
    if image is None or isinstance(image, ImageTransform):
        return image
    raise ValidationError(
        "invalid argument `image`: expected zenith.vision.train(...) or zenith.vision.eval(...), "
        f"got {type(image).__name__}"
    )
