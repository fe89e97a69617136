"""Host-side image augmentation for streamed datasets (ImageNet-style), numpy + Pillow.

Train: optional small rotation (Exemplar's), random-resized crop (Inception-style:
area fraction in `scale`, aspect ratio log-uniform in `ratio`, 10 tries then a centre
crop), horizontal flip, and, only where the recipe asks (`jitter` > 0), colour jitter
(brightness, contrast, saturation). P0 App. A trains with crops and flips alone and adds
colour augmentation for the 1% ImageNet subsets only (Exemplar jitters on the device,
tasks/exemplar.py), so experiments choose per split (data.color_jitter,
generation.NAME.color_jitter; experiment/sources.py image_recipe). Evaluation:
resize the shorter side to size / 0.875, centre crop, never jittered. Every random draw
comes from the generator passed in, so an image's augmentation is a pure function of
its seed; the jitter draws come last, so an image's rotation, crop and flip are the
same with jitter on or off. With `blur` > 1 (data.blur_factor) every cropped image,
training and evaluation alike, is blurred last (`blur`: no random draws).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

from jaxtickets.errors import ConfigError

EVAL_CROP_FRACTION = 0.875  # 224 of 256: the usual ImageNet centre crop
# Colour jitter's strength where it is on: brightness, contrast and saturation factors
# uniform in 1 +- this; an assumption, as P0 does not give the strengths it used.
JITTER = 0.4


@dataclasses.dataclass(frozen=True)
class ImageRecipe:
    """How a streamed image is augmented. The field defaults jitter (the full host
    work, which the pipeline benchmark times); an experiment's recipes come from
    experiment/sources.py image_recipe, which sets `jitter` to 0 unless its config asks
    for colour jitter."""

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: float = JITTER        # brightness, contrast, saturation in 1 ± jitter; 0: none
    rotation_degrees: float = 0.0  # Exemplar: uniform in ± this, before the crop
    blur: int = 1                 # data.blur_factor: `blur` after the crop; 1: none


def _as_rgb(image: np.ndarray) -> Image.Image:
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return Image.fromarray(array.astype(np.uint8), "RGB")


def _crop_box(width: int, height: int, recipe: ImageRecipe,
              rng: np.random.Generator) -> tuple[int, int, int, int]:
    area = width * height
    log_ratio = (math.log(recipe.ratio[0]), math.log(recipe.ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*recipe.scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            x = int(rng.integers(0, width - w + 1))
            y = int(rng.integers(0, height - h + 1))
            return x, y, x + w, y + h
    # Fallback: the largest centre crop within the ratio bounds.
    aspect = width / height
    if aspect < recipe.ratio[0]:
        w, h = width, int(round(width / recipe.ratio[0]))
    elif aspect > recipe.ratio[1]:
        w, h = int(round(height * recipe.ratio[1])), height
    else:
        w, h = width, height
    x, y = (width - w) // 2, (height - h) // 2
    return x, y, x + w, y + h


def _jitter(pixels: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    x = pixels.astype(np.float32)
    brightness, contrast, saturation = rng.uniform(1 - amount, 1 + amount, 3)
    x = x * brightness
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = gray.mean() + contrast * (x - gray.mean())
    gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = gray + saturation * (x - gray)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def blur(images: np.ndarray, factor: int, key: str = "data.blur_factor") -> np.ndarray:
    """uint8 images [..., H, W, C] downsampled by `factor` (each factor x factor block
    replaced by its mean, rounded half to even) and upsampled back by nearest neighbour
    (the block's pixels all get that mean): same shape, 1/factor the resolution.
    Factor 1 returns `images` itself. H and W must be divisible by `factor`."""
    if factor == 1:
        return images
    *lead, h, w, c = images.shape
    if h % factor or w % factor:
        raise ConfigError(f"{key}: the images are {h} x {w}, not divisible by the "
                          f"blur factor {factor}; choose a divisor of both sides")
    blocks = images.reshape(*lead, h // factor, factor, w // factor, factor, c)
    means = np.round(blocks.astype(np.float32).mean(axis=(-4, -2)))
    small = np.clip(means, 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(small, factor, axis=-3), factor, axis=-2)


def train_image(image: np.ndarray, recipe: ImageRecipe, rng: np.random.Generator) -> np.ndarray:
    """One augmented training image, uint8 [size, size, 3]. With recipe.jitter 0 the
    jitter is skipped and draws nothing; it draws after the crop and flip, which are
    therefore the same whether it is on or off."""
    pil = _as_rgb(image)
    if recipe.rotation_degrees:
        angle = rng.uniform(-recipe.rotation_degrees, recipe.rotation_degrees)
        pil = pil.rotate(angle, resample=Image.BILINEAR)
    box = _crop_box(pil.width, pil.height, recipe, rng)
    pil = pil.resize((recipe.size, recipe.size), resample=Image.BILINEAR, box=box)
    if recipe.flip and rng.random() < 0.5:
        pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = blur(np.asarray(pil), recipe.blur)
    return _jitter(pixels, recipe.jitter, rng) if recipe.jitter else pixels


def eval_image(image: np.ndarray, recipe: ImageRecipe) -> np.ndarray:
    """Shorter side resized to size / 0.875, then the centre size x size crop (blurred
    with recipe.blur > 1)."""
    pil = _as_rgb(image)
    short = int(round(recipe.size / EVAL_CROP_FRACTION))
    scale = short / min(pil.width, pil.height)
    width = max(recipe.size, int(round(pil.width * scale)))
    height = max(recipe.size, int(round(pil.height * scale)))
    pil = pil.resize((width, height), resample=Image.BILINEAR)
    x, y = (width - recipe.size) // 2, (height - recipe.size) // 2
    return blur(np.asarray(pil.crop((x, y, x + recipe.size, y + recipe.size))), recipe.blur)
