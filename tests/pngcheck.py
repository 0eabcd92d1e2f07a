"""Check that a file is a valid, non-empty PNG image (decoded by matplotlib's reader)."""

from pathlib import Path

import matplotlib.image as mpimg

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_size: int = 100) -> None:
    path = Path(path)
    assert path.is_file(), f"{path} missing"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    img = mpimg.imread(path)
    assert img.shape[0] >= min_size and img.shape[1] >= min_size
    assert img.std() > 0.01, f"{path} is blank"
