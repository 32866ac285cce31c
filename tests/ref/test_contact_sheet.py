"""Contact sheet PNG: readable, right grid size, tiles in row-major order, captions checked."""
import pytest
from PIL import Image

from mmada_ref.sampling.contact_sheet import contact_sheet, grid_shape

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def _tile_centre(sheet: Image.Image, rows: int, cols: int, index: int, tile: int, margin: int):
    cell_w, cell_h = sheet.width // cols, sheet.height // rows
    r, c = divmod(index, cols)
    return sheet.getpixel((c * cell_w + margin + tile // 2, r * cell_h + margin + tile // 2))


def test_grid_png_has_the_right_layout(tmp_path):
    images = [Image.new("RGB", (32, 32), colour) for colour in COLOURS]
    captions = [f"prompt {i}: a rather long caption that has to wrap over several lines" for i in range(5)]
    path = contact_sheet(images, captions, tmp_path / "run" / "sheet.png", columns=3, tile_size=96, margin=4)
    with Image.open(path) as sheet:
        sheet.load()
        assert sheet.format == "PNG"
    assert grid_shape(5, 3) == (2, 3)
    assert sheet.width == 3 * (96 + 2 * 4)  # three tiles of 96 px plus margins
    assert sheet.height % 2 == 0 and sheet.height > 2 * (96 + 2 * 4)  # two rows, caption space below tiles
    for i, colour in enumerate(COLOURS):
        assert _tile_centre(sheet.convert("RGB"), 2, 3, i, 96, 4) == colour
    assert _tile_centre(sheet.convert("RGB"), 2, 3, 5, 96, 4) == (255, 255, 255)  # empty sixth cell
    # caption text is drawn (dark pixels) below the first tile
    cell_h = sheet.height // 2
    strip = sheet.convert("L").crop((4, 4 + 96, 4 + 96, cell_h))
    assert strip.getextrema()[0] < 128


def test_default_grid_is_about_square_and_large_images_shrink(tmp_path):
    images = [Image.new("RGB", (300, 200), "red") for _ in range(4)]
    path = contact_sheet(images, ["a", "b", "c", "d"], tmp_path / "s.png", tile_size=100)
    assert grid_shape(4) == (2, 2)
    with Image.open(path) as sheet:
        assert sheet.width % 2 == 0 and sheet.width < 2 * 300


def test_bad_input_is_reported(tmp_path):
    with pytest.raises(ValueError, match="captions"):
        contact_sheet([Image.new("RGB", (8, 8))], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one image"):
        contact_sheet([], [], tmp_path / "x.png")
