"""The report in a real browser: headless Chromium screenshots it and the chart line's
pixels must be there, spread across the plot (a drawn line, not a legend swatch)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from report_runs import make_run, timeout_test

from pytest_rafael.report import write_reports

CHROMIUM = Path("/usr/bin/chromium")
LINE_RGB = (0x1F, 0x6F, 0xEB)  # --c0 in light mode: the first series' stroke

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


def decode_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows and bytes per pixel of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8, depth
            assert colour in (2, 6), colour
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        if ftype == 2:  # Up: the common case, one comprehension per row
            line = bytes([(v + u) & 0xFF for v, u in zip(line, prev, strict=True)])
        elif ftype != 0:
            out = bytearray(line)
            for i in range(stride):
                a = out[i - channels] if i >= channels else 0
                b = prev[i]
                if ftype == 1:
                    out[i] = (out[i] + a) & 0xFF
                elif ftype == 3:
                    out[i] = (out[i] + (a + b) // 2) & 0xFF
                else:
                    c = prev[i - channels] if i >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    out[i] = (
                        out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)
                    ) & 0xFF
            line = bytes(out)
        rows.append(line)
        prev = line
    return width, height, rows, channels


def pixels(rows: list[bytes], channels: int, rgb: tuple[int, int, int]) -> list[tuple[int, int]]:
    """Where the exact colour is (a stroke's interior is painted without anti-aliasing)."""
    needle, out = bytes(rgb), []
    for y, row in enumerate(rows):
        at = row.find(needle)
        while at != -1:
            if at % channels == 0:
                out.append((at // channels, y))
            at = row.find(needle, at + 1)
    return out


def test_chromium_draws_the_charts(tmp_path: Path) -> None:
    # One run, one test: the only chart with the first series colour is the iteration
    # chart (history charts need two runs).
    paths = write_reports(make_run(tests=(timeout_test(),)), tmp_path / "report", [])
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2600",
            "--hide-scrollbars",
            paths.index_html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    width, height, rows, ch = decode_png(shot.read_bytes())
    assert (width, height) == (1280, 2600)
    hits = pixels(rows, ch, LINE_RGB)
    assert len(hits) > 300, f"only {len(hits)} line-coloured pixels"
    xs, ys = [x for x, _ in hits], [y for _, y in hits]
    # The fitness line rises from 0.1 to 0.9 across the plot: wide and tall.
    assert max(xs) - min(xs) > 250
    assert max(ys) - min(ys) > 80
