"""Makes the sample images in data/images/ from scikit-image's bundled test images.

    pip download --no-deps scikit-image==0.26.0 -d /tmp/skimage
    python scripts/make_sample_images.py /tmp/skimage/scikit_image-0.26.0-*.whl

Reads four images out of the wheel (their licences are in data/images/README.md), shrinks
them with Pillow so the repository stays small, and writes two class folders in the layout
torchvision's ImageFolder reads: a colour PNG, a grey PNG and two JPEGs (one portrait).
"""

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

OUT = Path("data/images")

# (file in the wheel, class folder, output name, width, height)
IMAGES = [
    ("skimage/data/chelsea.png", "animal", "chelsea.png", 240, 160),
    ("skimage/data/horse.png", "animal", "horse.png", 164, 200),
    ("skimage/data/coffee.png", "object", "coffee.jpg", 240, 160),
    ("skimage/data/rocket.jpg", "object", "rocket.jpg", 160, 240),
]


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        for member, folder, name, width, height in IMAGES:
            image = Image.open(io.BytesIO(z.read(member)))
            image = image.convert("L" if name == "horse.png" else "RGB")
            image = image.resize((width, height), Image.Resampling.LANCZOS)
            (OUT / folder).mkdir(parents=True, exist_ok=True)
            path = OUT / folder / name
            if name.endswith(".jpg"):
                image.save(path, quality=90)
            else:
                image.save(path, optimize=True)
            print(path, image.size, image.mode, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main(sys.argv[1])
