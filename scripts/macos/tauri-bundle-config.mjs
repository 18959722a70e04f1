// Writes src-tauri/tauri.conf.json for `cargo tauri build` run inside src-tauri/.
//
// Why: the Tauri CLI takes its project folder to be the one holding tauri.conf.json and
// reads the app crate's Cargo.toml there; this repository keeps the config at its root
// (build.rs and generate_context! read it from there) and the root Cargo.toml is a
// workspace without a package, so the CLI cannot bundle from the root. This copies the
// root config with its relative paths rebased onto src-tauri/, plus what only the
// bundle needs (paths relative to src-tauri/):
//   - the Metal kernels, built by mlx-sys into target/mlx-metal/ (MLX_RS_METAL_PATH in
//     .cargo/config.toml) → Contents/Resources/mlx.metallib, which the app names at
//     start (models/src/metallib.rs), so it never needs the build machine's paths;
//   - ffmpeg as a sidecar: target/sidecar/ffmpeg-<target triple> (placed by
//     scripts/macos/bundle.sh) → Contents/MacOS/ffmpeg, first in the app's ffmpeg lookup;
//   - ad-hoc signing ("-") unless APPLE_SIGNING_IDENTITY names a Developer ID.
// Usage (from the repository root): node scripts/macos/tauri-bundle-config.mjs [OUT]
import { readFileSync, writeFileSync } from "node:fs";

const out = process.argv[2] ?? "src-tauri/tauri.conf.json";
const conf = JSON.parse(readFileSync("tauri.conf.json", "utf8"));
const up = (p) => `../${p}`;
conf.build.frontendDist = up(conf.build.frontendDist);
conf.bundle.icon = conf.bundle.icon.map(up);
conf.bundle.resources = { "../target/mlx-metal/mlx.metallib": "mlx.metallib" };
conf.bundle.externalBin = ["../target/sidecar/ffmpeg"];
conf.bundle.macOS = { ...conf.bundle.macOS, signingIdentity: process.env.APPLE_SIGNING_IDENTITY || "-" };
writeFileSync(out, `${JSON.stringify(conf, null, 2)}\n`);
console.log(`wrote ${out}`);
