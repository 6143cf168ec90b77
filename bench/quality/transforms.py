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


# ---- harder copies (issue 13): wider recapture, app chrome, deep crops, big rotations, stickers, combinations -----

def _fit(image: Image.Image, longest: float) -> Image.Image:
    scale = longest / max(image.size)
    return image.resize((max(int(image.width * scale), 8), max(int(image.height * scale), 8)),
                        Image.Resampling.LANCZOS)


def _subpixel_display(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The picture as a camera sees a display up close: one of several sub-pixel layouts (RGB or BGR stripes,
    a PenTile-like checker, a smooth OLED-like panel), display gamma, colour cast, then lens blur."""
    pixels = np.asarray(image, np.float32) / 255
    pixels = pixels ** rng.uniform(0.7, 1.4) * rng.uniform(0.8, 1.15, 3) + [0, 0, rng.uniform(0, 0.06)]
    layout = rng.choice(["rgb", "bgr", "pentile", "smooth"])
    if layout == "smooth":
        big = np.repeat(np.repeat(pixels, 2, axis=0), 2, axis=1)
        return blur(_to_image(big * 255), rng.uniform(0.3, 0.8))
    mask = np.full((3, 3, 3), 0.15, np.float32)
    order = (0, 1, 2) if layout == "rgb" else (2, 1, 0)
    for column, c in enumerate(order):
        mask[:, column, c] = 1.0
    if layout == "pentile":  # alternate rows swap red and blue
        mask[1] = mask[1][::-1]
    mask[2] *= rng.uniform(0.5, 0.8)
    big = np.repeat(np.repeat(pixels, 3, axis=0), 3, axis=1)
    big = big * np.tile(mask, (pixels.shape[0], pixels.shape[1], 1)) * 2.2
    return blur(_to_image(big * 255), rng.uniform(0.4, 1.0))


def _tilted_view(image: Image.Image, rng: np.random.Generator, max_degrees: float, out_side: int,
                 fill: tuple[int, int, int]) -> Image.Image:
    """A camera turned up to `max_degrees` away from facing the surface: one side foreshortened, corners jittered,
    plus a small roll."""
    w, h = image.size
    scale = out_side / max(w, h)
    ow, oh = max(int(w * scale), 8), max(int(h * scale), 8)
    angle = np.radians(rng.uniform(0, max_degrees))
    shrink = 0.5 * np.sin(angle)  # the far side's extra shrink, split top/bottom
    corners = np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], float)
    far = rng.integers(0, 4)  # which side is far: left, right, top, bottom
    if far < 2:
        xs = [0, 3] if far == 0 else [1, 2]
        corners[xs[0], 1] += shrink * oh / 2
        corners[xs[1], 1] -= shrink * oh / 2
    else:
        ys = [0, 1] if far == 2 else [3, 2]
        corners[ys[0], 0] += shrink * ow / 2
        corners[ys[1], 0] -= shrink * ow / 2
    roll = np.radians(rng.uniform(-12, 12))
    centre = np.array([ow / 2, oh / 2])
    rot = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    corners = (corners - centre) @ rot.T + centre + rng.uniform(-0.03, 0.03, (4, 2)) * [ow, oh]
    lo = corners.min(axis=0)
    corners -= lo
    size = np.ceil(corners.max(axis=0)).astype(int)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    return image.transform((int(size[0]), int(size[1])), Image.Transform.PERSPECTIVE,
                           _perspective_coeffs(corners, src), Image.Resampling.BILINEAR, fillcolor=fill)


def _phone_finish(shot: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The phone's processing: glare, defocus, noise, then sharpening or noise reduction, then its JPEG."""
    h, w = shot.height, shot.width
    if rng.random() < 0.7:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy, radius = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.35) * max(w, h)
        glare = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))[..., None] * rng.uniform(40, 150)
        shot = _to_image(np.asarray(shot, np.float32) + glare)
    shot = add_noise(blur(shot, rng.uniform(0.4, 1.4)), rng, rng.uniform(2, 9))
    if rng.random() < 0.5:
        shot = shot.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 3), percent=int(rng.uniform(80, 200))))
    else:
        shot = shot.filter(ImageFilter.MedianFilter(3))
    return jpeg(shot, rng.integers(55, 90))


def _partial_frame(shot: Image.Image, rng: np.random.Generator, keep: float) -> Image.Image:
    """Cut one or two edges off the photo, so part of the screen or print is outside the frame."""
    w, h = shot.size
    left, top = int(w * rng.uniform(0, 1 - keep) * (rng.random() < 0.5)), int(h * rng.uniform(0, 1 - keep) *
                                                                               (rng.random() < 0.5))
    right, bottom = w - int(w * rng.uniform(0, 1 - keep) * (rng.random() < 0.5)), h - int(
        h * rng.uniform(0, 1 - keep) * (rng.random() < 0.5))
    return shot.crop((left, top, max(right, left + 16), max(bottom, top + 16)))


def screen_hard(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone photo of a monitor or phone screen showing the image, which fills 30-95 % of the frame: the screen's
    sub-pixels (moire), colour cast, a bezel and the room around it, a view up to 35 degrees off-axis, glare, phone
    sharpening or noise reduction, noise, JPEG; sometimes part of the screen is outside the frame."""
    screen = _subpixel_display(_fit(image, rng.uniform(160, 320)), rng)
    bezel = int(max(screen.size) * rng.uniform(0.01, 0.05))
    framed = Image.new("RGB", (screen.width + 2 * bezel, screen.height + 2 * bezel),
                       tuple(int(c) for c in rng.integers(0, 40, 3)))
    framed.paste(screen, (bezel, bezel))
    fill = rng.uniform(0.3, 0.95)  # share of the photo's area the screen takes
    room_side = np.sqrt(1 / fill)
    room_colour = tuple(int(c) for c in rng.integers(15, 120, 3))
    room = Image.new("RGB", (int(framed.width * room_side), int(framed.height * room_side)), room_colour)
    ox = int(rng.integers(0, room.width - framed.width + 1))
    oy = int(rng.integers(0, room.height - framed.height + 1))
    room.paste(framed, (ox, oy))
    shot = _tilted_view(room, rng, 35, int(rng.uniform(400, 640)), room_colour)
    if rng.random() < 0.3:
        shot = _partial_frame(shot, rng, 0.8)
    return _phone_finish(shot, rng)


def print_hard(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone photo of a print: paper margin, a fold, ink's range, a table around it, up to 35 degrees off-axis,
    a shadow, warm or cold light; sometimes part of the sheet is outside the frame."""
    printed = ImageEnhance.Color(_fit(image, rng.uniform(260, 440))).enhance(rng.uniform(0.6, 0.95))
    low, high = rng.uniform(15, 50), rng.uniform(195, 240)
    ink = low + np.asarray(printed, np.float32) * (high - low) / 255
    margin = int(max(printed.size) * rng.uniform(0.03, 0.15))
    paper = np.tile(np.array([245, 243, 236], np.float32), (printed.height + 2 * margin, printed.width + 2 * margin, 1))
    paper[margin:margin + printed.height, margin:margin + printed.width] = ink
    ph, pw = paper.shape[:2]
    texture = 1 + 0.04 * _smooth_field(rng, (pw, ph), 12)[..., None] + rng.normal(0, 0.02, (ph, pw, 1))
    if rng.random() < 0.5:  # a fold: a crease line, one half slightly darker
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
        a = rng.uniform(0, np.pi)
        d = (xx - pw / 2) * np.cos(a) + (yy - ph / 2) * np.sin(a) - rng.uniform(-0.2, 0.2) * max(pw, ph)
        texture = texture * (1 - 0.08 * (d > 0)[..., None] - 0.25 * np.exp(-(d**2) / 8)[..., None])
    paper_image = _to_image(paper * texture)
    fill = rng.uniform(0.35, 0.9)
    grow = np.sqrt(1 / fill)
    table_size = (int(pw * grow), int(ph * grow))
    wood = np.array([rng.uniform(60, 200), rng.uniform(50, 150), rng.uniform(30, 120)], np.float32)
    table = _to_image(np.tile(wood, (table_size[1], table_size[0], 1)) *
                      (1 + 0.15 * _smooth_field(rng, table_size, 24)[..., None]))
    corner = (int(rng.integers(0, table_size[0] - pw + 1)), int(rng.integers(0, table_size[1] - ph + 1)))
    table.paste(paper_image, corner)
    shot = _tilted_view(table, rng, 35, int(rng.uniform(400, 680)), tuple(int(c) for c in wood))
    h, w = shot.height, shot.width
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle)) * 2
    shadow = 1 - rng.uniform(0.1, 0.55) * np.clip(ramp + rng.uniform(-0.3, 0.3), 0, 1)
    light = np.array([rng.uniform(0.9, 1.12), 1.0, rng.uniform(0.78, 1.1)], np.float32)
    shot = _to_image(np.asarray(shot, np.float32) * shadow[..., None] * light)
    if rng.random() < 0.3:
        shot = _partial_frame(shot, rng, 0.8)
    return _phone_finish(shot, rng)


def screenshot_chrome(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A screenshot of the image shown in an app or browser: title bar, toolbar, side panel, status bar and text
    around it, light or dark theme; the image takes 25-80 % of the screenshot."""
    dark = rng.random() < 0.4
    base = np.array([35, 35, 40]) if dark else np.array([240, 240, 243])
    ink = (220, 220, 220) if dark else (30, 30, 30)
    width = int(rng.uniform(700, 1100))
    height = int(width * rng.uniform(0.55, 0.8))
    shot = Image.new("RGB", (width, height), tuple(int(c) for c in base))
    draw = ImageDraw.Draw(shot)
    accent = tuple(int(c) for c in rng.integers(0, 256, 3))
    title = int(height * rng.uniform(0.04, 0.07))
    draw.rectangle((0, 0, width, title), fill=accent if rng.random() < 0.5 else tuple(int(c) for c in base - 20))
    for k in range(3):
        draw.ellipse((8 + k * title, title // 4, 8 + k * title + title // 2, title // 4 + title // 2),
                     fill=((230, 80, 70), (240, 190, 50), (90, 200, 90))[k])
    draw.text((width // 3, title // 5), "photo_2024_final.jpg - Viewer", font=_font(title * 0.55), fill=ink)
    toolbar = int(height * rng.uniform(0.04, 0.08))
    for k in range(int(rng.integers(4, 10))):
        x = 10 + k * toolbar * 1.3
        draw.rounded_rectangle((x, title + 4, x + toolbar - 6, title + toolbar - 2), radius=4,
                               fill=tuple(int(c) for c in base + (25 if dark else -30)))
    side = int(width * rng.uniform(0.0, 0.3))
    top = title + toolbar
    status = int(height * rng.uniform(0.0, 0.05))
    for k in range(int((height - top) / 22)):
        if side > 40:
            draw.text((8, top + 8 + k * 22), f"Item {k + 1}  album", font=_font(12), fill=ink)
    area = (side + 8, top + 8, width - 8, height - status - 8)
    share = rng.uniform(0.45, 1.0)
    box_w, box_h = (area[2] - area[0]) * share, (area[3] - area[1]) * share
    scale = min(box_w / image.width, box_h / image.height)
    shown = image.resize((max(int(image.width * scale), 8), max(int(image.height * scale), 8)),
                         Image.Resampling.BILINEAR)
    x = int(area[0] + rng.uniform(0, 1) * (area[2] - area[0] - shown.width))
    y = int(area[1] + rng.uniform(0, 1) * (area[3] - area[1] - shown.height))
    shot.paste(shown, (max(x, area[0]), max(y, area[1])))
    if status:
        draw.rectangle((0, height - status, width, height), fill=tuple(int(c) for c in base - 15))
        caption = f"{image.width} x {image.height}  100%"
        draw.text((10, height - status + 2), caption, font=_font(status * 0.6), fill=ink)
    if rng.random() < 0.5:
        shot = shot.resize((int(width * rng.uniform(0.5, 0.9)), int(height * rng.uniform(0.5, 0.9))),
                           Image.Resampling.BILINEAR)
    return jpeg(shot, rng.integers(60, 95)) if rng.random() < 0.7 else shot


def crop_hard(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """30-50 % of the area, anywhere in the image, aspect ratio within +-40 %."""
    area = rng.uniform(0.3, 0.5)
    aspect = np.exp(rng.uniform(-0.35, 0.35))
    cw = min(int(image.width * np.sqrt(area * aspect)), image.width)
    ch = min(int(image.height * area / max(cw / image.width, 1e-6)), image.height)
    x, y = rng.integers(0, image.width - cw + 1), rng.integers(0, image.height - ch + 1)
    return image.crop((x, y, x + cw, y + ch))


def rotate_hard(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """15-30 degrees either way; the corners filled, or cropped away."""
    angle = rng.uniform(15, 30) * rng.choice([-1, 1])
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    rotated = image.rotate(angle, Image.Resampling.BICUBIC, expand=bool(rng.random() < 0.5), fillcolor=fill)
    if rng.random() < 0.4:  # crop to the largest centred box free of fill, about
        w, h = rotated.size
        f = 1 - np.sin(np.radians(abs(angle)))
        rotated = rotated.crop((int(w * (1 - f) / 2), int(h * (1 - f) / 2), int(w * (1 + f) / 2), int(h * (1 + f) / 2)))
    return rotated


def stickers(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Stickers, emoji-like faces, stars and bold text drawn over 10-30 % of the picture."""
    out = image.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out, "RGBA")
    for _ in range(int(rng.integers(2, 6))):
        side = int(min(w, h) * rng.uniform(0.12, 0.3))
        x, y = int(rng.uniform(0, max(w - side, 1))), int(rng.uniform(0, max(h - side, 1)))
        colour_ = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        if kind == 0:  # emoji-like face
            draw.ellipse((x, y, x + side, y + side), fill=(255, 210, 40, 255), outline=(120, 80, 0, 255))
            e = side // 6
            draw.ellipse((x + 2 * e, y + 2 * e, x + 2 * e + e, y + 3 * e), fill=(40, 30, 0, 255))
            draw.ellipse((x + 3 * e + e, y + 2 * e, x + 5 * e, y + 3 * e), fill=(40, 30, 0, 255))
            draw.arc((x + e, y + 2 * e, x + 5 * e, y + 5 * e), 20, 160, fill=(40, 30, 0, 255), width=max(e // 3, 1))
        elif kind == 1:  # star
            r = np.where(np.arange(10) % 2 == 0, side / 2, side / 5)
            t = np.arange(10) * np.pi / 5 + rng.uniform(0, np.pi)
            draw.polygon([(x + side / 2 + ri * np.cos(ti), y + side / 2 + ri * np.sin(ti)) for ri, ti in zip(r, t,
                          strict=True)], fill=(*colour_, 255))
        elif kind == 2:  # rounded label
            draw.rounded_rectangle((x, y, x + side * 1.6, y + side * 0.6), radius=side // 5, fill=(*colour_, 235))
            draw.text((x + side // 8, y + side // 8), "NEW!", font=_font(side * 0.35), fill=(255, 255, 255, 255))
        else:  # bold text
            draw.text((x, y), rng.choice(["LOL", "wow", "#tbt", "SALE", "me irl"]), font=_font(side * 0.5),
                      fill=(*colour_, 255), stroke_width=max(side // 25, 1), stroke_fill=(0, 0, 0, 255))
    return out


def combo(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An edit or two (deep crop, rotation, stickers, colour, overlay) and then a recapture or a screenshot."""
    edits = (crop_hard, rotate, stickers, colour, overlay, hflip)
    for index in rng.choice(len(edits), size=int(rng.integers(1, 3)), replace=False):
        image = edits[index](image, rng)
    finish = (screen_hard, print_hard, screenshot_chrome)[int(rng.integers(0, 3))]
    return finish(image, rng)


HARD_TRANSFORMS: dict[str, Transform] = {
    "screen_hard": screen_hard,
    "print_hard": print_hard,
    "chrome": screenshot_chrome,
    "crop_hard": crop_hard,
    "rotate_hard": rotate_hard,
    "stickers": stickers,
    "combo": combo,
}
ALL_TRANSFORMS: dict[str, Transform] = {**TRANSFORMS, **HARD_TRANSFORMS}
