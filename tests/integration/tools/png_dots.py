#!/usr/bin/env python3
"""png_dots.py: counts the node dots in a p2psip-gui snapshot (test_gui.sh).

Usage: png_dots.py SNAPSHOT.png MODEL.json

Decodes the PNG with zlib and struct only (8-bit RGB or RGBA, not interlaced, the
five row filters), marks the pixels whose colour is one of the dot fills of
gui/draw.h or a blend of two of them (where dots overlap), and counts the 4-connected regions of at least
MIN_AREA pixels (the legend's 6x6 swatches and anti-aliased edges are smaller; a
dot of radius 9 has about 250).  Two dots closer than a dot's diameter touch and
form one region, so the expected count is the number of clusters of the model's
live nodes (x, y from the snapshot run's --model-file): at most the clusters of
centres closer than TOUCH_MIN (surely touching), at least those of centres closer
than TOUCH_MAX (maybe touching, with anti-aliased edges).  Checks that the picture is not blank, that the pixel at every live node's
centre has a dot colour, and that the regions are within the clusters' range.
Prints "dots=N clusters=LEAST..MOST nodes=K" and exits 0, or prints why and exits 1.
"""
import json
import struct
import sys
import zlib

FILLS = [0x6B8FD9, 0x5FB35F, 0xE0A040, 0xA8A8A8]  # gui/draw.h GUI_FILL_*
TOL = 4
MIN_AREA = 100
DOT_R = 9.0
TOUCH_MIN = 2 * DOT_R - 3
TOUCH_MAX = 2 * DOT_R + 2


def decode_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace != 0:
        raise ValueError("unsupported PNG: depth %d colour type %d interlace %d" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 0xFF
            elif f == 2:
                line[x] = (line[x] + b) & 0xFF
            elif f == 3:
                line[x] = (line[x] + ((a + b) >> 1)) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pr) & 0xFF
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def main():
    png, model_path = sys.argv[1], sys.argv[2]
    w, h, bpp, rows = decode_png(png)
    fills = [((c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF) for c in FILLS]

    # A dot pixel has a fill colour, or a blend of two fills where dots of different
    # roles overlap (their anti-aliased common edge): within TOL of the segment
    # between two fill colours in RGB space.  Rims, the ring, links and text blend
    # with dark grey or white instead.
    segments = [(a, b) for i, a in enumerate(fills) for b in fills[i:]]
    cache = {}

    def near_segment(c, a, b):
        ab = [b[k] - a[k] for k in range(3)]
        ac = [c[k] - a[k] for k in range(3)]
        den = sum(v * v for v in ab)
        t = 0.0 if den == 0 else max(0.0, min(1.0, sum(ab[k] * ac[k] for k in range(3)) / den))
        return sum((ac[k] - t * ab[k]) ** 2 for k in range(3)) <= TOL * TOL

    def is_dot(x, y):
        c = (rows[y][x * bpp], rows[y][x * bpp + 1], rows[y][x * bpp + 2])
        v = cache.get(c)
        if v is None:
            v = cache[c] = any(near_segment(c, a, b) for a, b in segments)
        return v

    colours = set()
    for y in range(0, h, 4):
        for x in range(0, w, 4):
            colours.add(bytes(rows[y][x * bpp:x * bpp + 3]))
    if len(colours) < 3:
        print("the snapshot is blank (%d colours)" % len(colours))
        return 1

    mask = [[is_dot(x, y) for x in range(w)] for y in range(h)]
    seen = [[False] * w for _ in range(h)]
    dots = 0
    for y in range(h):
        for x in range(w):
            if not mask[y][x] or seen[y][x]:
                continue
            stack, area = [(x, y)], 0
            seen[y][x] = True
            while stack:
                px, py = stack.pop()
                area += 1
                for nx, ny in ((px + 1, py), (px - 1, py), (px, py + 1), (px, py - 1)):
                    if 0 <= nx < w and 0 <= ny < h and mask[ny][nx] and not seen[ny][nx]:
                        seen[ny][nx] = True
                        stack.append((nx, ny))
            if area >= MIN_AREA:
                dots += 1

    model = json.load(open(model_path))
    live = [n for n in model["nodes"] if not n["gone"]]
    for n in live:
        x, y = int(round(n["x"])), int(round(n["y"]))
        if not (0 <= x < w and 0 <= y < h and mask[y][x]):
            print("no dot at node %s (%d, %d)" % (n["id"][:8], x, y))
            return 1
    def clusters(touch):
        # Clusters of dots closer than touch (union-find on centre distance).
        parent = list(range(len(live)))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in range(len(live)):
            for j in range(i + 1, len(live)):
                dx, dy = live[i]["x"] - live[j]["x"], live[i]["y"] - live[j]["y"]
                if dx * dx + dy * dy < touch * touch:
                    parent[find(i)] = find(j)
        return len({find(i) for i in range(len(live))})

    most, least = clusters(TOUCH_MIN), clusters(TOUCH_MAX)
    print("dots=%d clusters=%d..%d nodes=%d" % (dots, least, most, len(live)))
    return 0 if least <= dots <= most else 1


if __name__ == "__main__":
    sys.exit(main())
