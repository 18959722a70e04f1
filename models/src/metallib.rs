//! Where the Metal kernels (`mlx.metallib`) come from in a packaged app.
//!
//! MLX v0.32.2 (what mlx-sys 0.7.0 builds; `mlx/backend/metal/device.cpp`,
//! `load_default_library`) tries, in order:
//! 1. the path given to `metal::set_metallib_path` (an error if it does not load);
//! 2. `mlx.metallib` beside the binary that contains MLX — `dladdr` of MLX's own code, so
//!    our executable, since mlx-sys links MLX statically;
//! 3. `Resources/mlx.metallib` beside that binary;
//! 4. `default.metallib` of a SwiftPM bundle (not built here), then `Resources/default.metallib`;
//! 5. the compile-time `METAL_PATH`: mlx-sys sets it to `$MLX_RS_METAL_PATH` or
//!    `~/.mlx/lib/<key>/` — a folder on the *build* machine.
//!
//! In a `.app` the executable is `Contents/MacOS/wan-studio`, so steps 2–3 look inside
//! `Contents/MacOS/`, where codesign expects only code; Tauri's `bundle.resources` puts
//! data in `Contents/Resources/`. So the bundle carries the kernels at
//! `Contents/Resources/mlx.metallib` and the app names that file explicitly (step 1)
//! before MLX first touches the GPU. Outside a bundle nothing is set and MLX's own
//! search applies (a CLI next to its `mlx.metallib`, or the builder's path).
use std::path::{Path, PathBuf};

/// The kernel library's file name (what mlx-sys' build writes and MLX looks for).
pub const METALLIB: &str = "mlx.metallib";

/// `Contents/Resources/mlx.metallib` if `exe` is `<X>.app/Contents/MacOS/<bin>`, else
/// `None` (not running from a bundle).
pub fn bundle_metallib_path(exe: &Path) -> Option<PathBuf> {
    let macos = exe.parent()?;
    let contents = macos.parent()?;
    let app = contents.parent()?;
    let is_bundle = macos.file_name()? == "MacOS"
        && contents.file_name()? == "Contents"
        && app.extension().is_some_and(|e| e == "app");
    is_bundle.then(|| contents.join("Resources").join(METALLIB))
}

/// The metallib the app should name explicitly: the bundle's, when it is there.
pub fn metallib_for(exe: &Path) -> Option<PathBuf> {
    bundle_metallib_path(exe).filter(|p| p.is_file())
}

/// Point MLX at the bundle's kernels (macOS, running from a `.app` that carries them);
/// returns the path set. Call once at start-up, before any MLX operation runs on the GPU
/// (MLX loads the library when it creates the Metal device). Elsewhere a no-op.
pub fn use_bundled_metallib() -> crate::Result<Option<PathBuf>> {
    let Some(path) = std::env::current_exe()
        .ok()
        .and_then(|exe| metallib_for(&exe))
    else {
        return Ok(None);
    };
    #[cfg(target_os = "macos")]
    {
        let s = path
            .to_str()
            .ok_or_else(|| crate::Error::Input(format!("non-UTF-8 path {}", path.display())))?;
        mlx_rs::metal::set_metallib_path(s)?;
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_layout_points_at_contents_resources() {
        let exe = Path::new("/Applications/Wan Studio.app/Contents/MacOS/wan-studio");
        assert_eq!(
            bundle_metallib_path(exe).unwrap(),
            Path::new("/Applications/Wan Studio.app/Contents/Resources/mlx.metallib")
        );
        // Not a bundle: a cargo build, a CLI in a folder, a look-alike without `.app`.
        for p in [
            "/repo/target/release/wan-studio",
            "/usr/local/bin/generate",
            "/x/Contents/MacOS/wan-studio",
            "/x/Foo.app/MacOS/wan-studio",
            "wan-studio",
        ] {
            assert_eq!(bundle_metallib_path(Path::new(p)), None, "{p}");
        }
    }

    /// Only an existing file is named (a missing one would make MLX fail outright instead
    /// of searching its defaults).
    #[test]
    fn only_an_existing_metallib_is_used() {
        let root = std::env::temp_dir().join(format!("wan-metallib-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let contents = root.join("Wan Studio.app/Contents");
        std::fs::create_dir_all(contents.join("MacOS")).unwrap();
        let exe = contents.join("MacOS/wan-studio");
        assert_eq!(metallib_for(&exe), None);
        std::fs::create_dir_all(contents.join("Resources")).unwrap();
        std::fs::write(contents.join("Resources/mlx.metallib"), b"MTLB").unwrap();
        assert_eq!(
            metallib_for(&exe),
            Some(contents.join("Resources/mlx.metallib"))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
