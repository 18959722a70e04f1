#!/usr/bin/env python3
"""Draw the Wan Studio logo (icons/logo.png, 1024x1024 RGBA) with the standard library
only; `npx tauri icon icons/logo.png -o icons` turns it into the platform icon set.
The logo: a rounded square with a blue-to-teal gradient and a white sine "wave" band
(Wan ~ wave), anti-aliased by 4x4 supersampling at the edges."""
import math, struct, sys, zlib

N = 1024
R = 220            # corner radius
M = 40             # margin (macOS icon grid leaves some air)

def inside_rrect(x, y):
    lo, hi = M, N - M
    if x < lo or x > hi or y < lo or y > hi:
        return False
    cx = min(max(x, lo + R), hi - R)
    cy = min(max(y, lo + R), hi - R)
    return (x - cx) ** 2 + (y - cy) ** 2 <= R * R

def wave_dist(x, y, phase, amp, yc):
    return abs(y - (yc + amp * math.sin(2 * math.pi * (x - M) / (N - 2 * M) * 1.5 + phase)))

def color(x, y):
    if not inside_rrect(x, y):
        return None
    t = (x + y) / (2 * N)
    base = (int(30 + 10 * t), int(60 + 140 * t), int(170 + 40 * t))
    for phase, yc, w, a in ((0.0, 440, 34, 1.0), (0.9, 600, 22, 0.7)):
        if wave_dist(x, y, phase, 110, yc) < w:
            return tuple(int(c + (255 - c) * a) for c in base)
    return base

rows = []
for y in range(N):
    row = bytearray([0])
    for x in range(N):
        c = color(x + 0.5, y + 0.5)
        # Supersample only near edges (cheap): when a neighbour differs.
        edge = c != color(x + 1.5, y + 0.5) or c != color(x + 0.5, y + 1.5)
        if edge:
            acc = [0, 0, 0, 0]
            for sy in range(4):
                for sx in range(4):
                    s = color(x + (sx + 0.5) / 4, y + (sy + 0.5) / 4)
                    if s:
                        acc[0] += s[0]; acc[1] += s[1]; acc[2] += s[2]; acc[3] += 1
            if acc[3]:
                row += bytes([acc[0] // acc[3], acc[1] // acc[3], acc[2] // acc[3], acc[3] * 255 // 16])
            else:
                row += b"\0\0\0\0"
        elif c:
            row += bytes([*c, 255])
        else:
            row += b"\0\0\0\0"
    rows.append(bytes(row))

def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", N, N, 8, 6, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
out = sys.argv[1] if len(sys.argv) > 1 else "icons/logo.png"
open(out, "wb").write(png)
print(out, len(png), "bytes")
