"""A seeded generator of realistic copies of a photo: the edits users make, and re-photographs of a screen or a print.

Every transform takes an RGB PIL image and a numpy Generator and returns an RGB PIL image; the same seed always gives
the same pixels. Pure Pillow + numpy, so the benchmark needs no OpenCV.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


# ---- small steps shared by several transforms -------------------------------------------------------------------

def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=int(quality))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def add_noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    pixels = np.asarray(image, np.float32) + rng.normal(0, sigma, (image.height, image.width, 1)).astype(np.float32)
    pixels += rng.normal(0, sigma / 2, pixels.shape).astype(np.float32)  # some chroma noise, as camera sensors have
    return _to_image(pixels)


def blur(image: Image.Image, radius: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> list[float]:
    """PIL's 8 PERSPECTIVE coefficients mapping output points `dst` onto input points `src` (4 x 2 each)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()


def camera_view(image: Image.Image, rng: np.random.Generator, jitter: float, out_side: int,
                fill: tuple[int, int, int], resample: Image.Resampling = Image.Resampling.BILINEAR) -> Image.Image:
    """Photograph `image` from a slight angle: its corners land at jittered positions in a frame of `out_side` px.

    BILINEAR without antialiasing on a big downscale is deliberate: it aliases fine patterns into moire, as a camera
    sensor does."""
    w, h = image.size
    scale = out_side / max(w, h)
    ow, oh = max(int(w * scale), 8), max(int(h * scale), 8)
    corners = np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], float)
    moved = corners + rng.uniform(-jitter, jitter, (4, 2)) * [ow, oh]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    return image.transform((ow, oh), Image.Transform.PERSPECTIVE, _perspective_coeffs(moved, src), resample,
                           fillcolor=fill)


def _smooth_field(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a tiny random grid upsampled smoothly (lighting, paper, wood grain)."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    field = Image.fromarray(((grid + 1) * 127.5).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    return np.asarray(field, np.float32) / 127.5 - 1


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(int(size), 8))


# ---- the transforms ---------------------------------------------------------------------------------------------

def downscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = rng.uniform(64, 128)
    scale = side / max(image.size)
    return image.resize((max(int(image.width * scale), 16), max(int(image.height * scale), 16)),
                        Image.Resampling.BILINEAR)


def strong_jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return jpeg(image, rng.integers(5, 16))


def crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    area = rng.uniform(0.5, 0.7)
    aspect = np.exp(rng.uniform(-0.25, 0.25))
    cw = min(int(image.width * np.sqrt(area * aspect)), image.width)
    ch = min(int(image.height * area / (cw / image.width)), image.height)
    x, y = rng.integers(0, image.width - cw + 1), rng.integers(0, image.height - ch + 1)
    return image.crop((x, y, x + cw, y + ch))


def rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = rng.uniform(5, 15) * rng.choice([-1, 1])
    fill = (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255)
    return image.rotate(angle, Image.Resampling.BICUBIC, expand=bool(rng.random() < 0.5), fillcolor=fill)


def hflip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.6, 1.4))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.6, 1.4))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.3, 1.7))
    hsv = np.asarray(image.convert("HSV"), np.int16).copy()
    hsv[..., 0] = (hsv[..., 0] + int(rng.uniform(-20, 20))) % 256  # hue shift, up to about 28 degrees
    image = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    gain = rng.uniform(0.85, 1.15, 3)
    return _to_image(np.asarray(image, np.float32) * gain)


def blur_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = blur(image, rng.uniform(0.004, 0.01) * max(image.size))
    return add_noise(image, rng, rng.uniform(8, 20))


def overlay(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    kind = rng.choice(["border", "caption", "logo", "watermark"])
    w, h = image.size
    colour_ = tuple(int(c) for c in rng.integers(0, 256, 3))
    if kind == "border":
        pad = int(max(w, h) * rng.uniform(0.05, 0.12))
        framed = Image.new("RGB", (w + 2 * pad, h + 2 * pad), colour_)
        framed.paste(image, (pad, pad))
        return framed
    out = image.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    if kind == "caption":
        bar = int(h * rng.uniform(0.12, 0.2))
        top = 0 if rng.random() < 0.3 else h - bar
        draw.rectangle((0, top, w, top + bar), fill=(*colour_, 230))
        ink = (255, 255, 255) if sum(colour_) < 380 else (0, 0, 0)
        draw.text((bar // 3, top + bar // 5), "Summer sale - 50% off!", font=_font(bar * 0.55), fill=ink)
    elif kind == "logo":
        side = int(min(w, h) * rng.uniform(0.12, 0.22))
        x, y = int(rng.choice([0.04, 0.96]) * w), int(rng.choice([0.04, 0.96]) * h)
        x, y = min(max(x - side // 2, 0), w - side), min(max(y - side // 2, 0), h - side)
        draw.ellipse((x, y, x + side, y + side), fill=(*colour_, 255))
        draw.text((x + side // 5, y + side // 3), "LOGO", font=_font(side * 0.3), fill=(255, 255, 255, 255))
    else:
        size = max(w, h) * rng.uniform(0.06, 0.1)
        for row in range(-1, int(h / (size * 2.5)) + 2):
            x0 = (row % 2) * size * 2
            draw.text((x0 - size, row * size * 2.5), "(c) SAMPLE  (c) SAMPLE  (c) SAMPLE", font=_font(size),
                      fill=(255, 255, 255, int(rng.uniform(70, 130))))
    return out


def screen_recapture(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone photo of the image shown on a monitor: RGB sub-pixel grid (moire once resampled), display gamma and
    colour cast, a dark bezel in a dim room, perspective, glare, defocus, sensor noise and the phone's JPEG."""
    shown = rng.uniform(260, 420)
    scale = shown / max(image.size)
    small = image.resize((max(int(image.width * scale), 8), max(int(image.height * scale), 8)),
                         Image.Resampling.LANCZOS)
    pixels = np.asarray(small, np.float32) / 255
    pixels = pixels ** rng.uniform(0.7, 1.4) * rng.uniform(0.8, 1.15, 3) + [0, 0, rng.uniform(0, 0.06)]
    # Each screen pixel becomes 3 x 3 camera pixels: one column per sub-pixel colour, a darker row between lines.
    big = np.repeat(np.repeat(pixels, 3, axis=0), 3, axis=1)
    mask = np.full((3, 3, 3), 0.15, np.float32)
    for c in range(3):
        mask[:, c, c] = 1.0
    mask[2] *= 0.6
    big = big * np.tile(mask, (pixels.shape[0], pixels.shape[1], 1)) * 2.2
    # The lens blurs before the sensor samples: moire survives, at the contrast a real phone photo shows.
    screen = blur(_to_image(big * 255), rng.uniform(0.4, 1.0))
    bezel = int(max(screen.size) * rng.uniform(0.02, 0.06))
    room = rng.integers(20, 70)
    framed = Image.new("RGB", (screen.width + 2 * bezel, screen.height + 2 * bezel), (12, 12, 14))
    framed.paste(screen, (bezel, bezel))
    shot = camera_view(framed, rng, rng.uniform(0.03, 0.1), int(rng.uniform(520, 800)), (room, room, room + 5))
    h, w = shot.height, shot.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, radius = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h, rng.uniform(0.15, 0.4) * max(w, h)
    glare = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))[..., None] * rng.uniform(60, 140)
    shot = _to_image(np.asarray(shot, np.float32) + glare)
    shot = add_noise(blur(shot, rng.uniform(0.6, 1.5)), rng, rng.uniform(3, 8))
    return jpeg(shot, rng.integers(60, 86))


def print_recapture(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone photo of a printout lying on a table: ink's reduced dynamic range and saturation, a paper margin and
    texture, the table around it, perspective, a shadow across it, warm indoor light, defocus, noise, JPEG."""
    side = rng.uniform(500, 800)
    scale = side / max(image.size)
    printed = image.resize((max(int(image.width * scale), 8), max(int(image.height * scale), 8)),
                           Image.Resampling.LANCZOS)
    printed = ImageEnhance.Color(printed).enhance(rng.uniform(0.7, 0.95))
    low, high = rng.uniform(20, 45), rng.uniform(200, 235)
    ink = low + np.asarray(printed, np.float32) * (high - low) / 255
    margin = int(side * rng.uniform(0.05, 0.12))
    paper_rgb = np.array([245, 243, 236], np.float32)
    paper = np.tile(paper_rgb, (printed.height + 2 * margin, printed.width + 2 * margin, 1))
    paper[margin:margin + printed.height, margin:margin + printed.width] = ink
    ph, pw = paper.shape[:2]
    texture = 1 + 0.04 * _smooth_field(rng, (pw, ph), 12)[..., None] + rng.normal(0, 0.025, (ph, pw, 1))
    paper = _to_image(paper * texture)
    table_size = (int(pw * rng.uniform(1.2, 1.5)), int(ph * rng.uniform(1.2, 1.5)))
    wood = np.array([rng.uniform(90, 160), rng.uniform(60, 110), rng.uniform(30, 70)], np.float32)
    grain = 1 + 0.15 * _smooth_field(rng, table_size, 24)[..., None]
    table = _to_image(np.tile(wood, (table_size[1], table_size[0], 1)) * grain)
    table.paste(paper, (int(rng.integers(0, table_size[0] - pw + 1)), int(rng.integers(0, table_size[1] - ph + 1))))
    shot = camera_view(table, rng, rng.uniform(0.04, 0.1), int(rng.uniform(600, 900)), tuple(int(c) for c in wood))
    h, w = shot.height, shot.width
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle)) * 2
    shadow = 1 - rng.uniform(0.2, 0.5) * np.clip(ramp + rng.uniform(-0.3, 0.3), 0, 1)
    warm = np.array([rng.uniform(1.03, 1.12), 1.0, rng.uniform(0.78, 0.92)], np.float32)
    shot = _to_image(np.asarray(shot, np.float32) * shadow[..., None] * warm)
    shot = add_noise(blur(shot, rng.uniform(0.6, 1.3)), rng, rng.uniform(3, 7))
    return jpeg(shot, rng.integers(70, 91))


_MIXABLE: tuple[Transform, ...] = (downscale, crop, rotate, hflip, colour, blur_noise, overlay)


def mix(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Two or three edits in a row, then a moderate JPEG, as a photo passed around several apps would be."""
    for index in rng.choice(len(_MIXABLE), size=int(rng.integers(2, 4)), replace=False):
        image = _MIXABLE[index](image, rng)
    return jpeg(image, rng.integers(30, 71))


TRANSFORMS: dict[str, Transform] = {
    "downscale": downscale,
    "jpeg": strong_jpeg,
    "crop": crop,
    "rotate": rotate,
    "flip": hflip,
    "colour": colour,
    "blur_noise": blur_noise,
    "overlay": overlay,
    "screen": screen_recapture,
    "print": print_recapture,
    "mix": mix,
}
