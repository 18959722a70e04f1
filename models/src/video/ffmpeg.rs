//! Where ffmpeg comes from, in one place (mp4 writing, the training clip reader, the app's
//! start-up and pre-queue checks, `generate`'s check before loading weights).
//!
//! Lookup order, first hit wins:
//! 1. **bundled sidecar**: `ffmpeg` beside the running executable. Tauri's
//!    `bundle.externalBin` puts it at `Wan Studio.app/Contents/MacOS/ffmpeg`, next to the
//!    app binary (`scripts/macos/bundle.sh` places a static build there);
//! 2. **`WAN_FFMPEG`**: an explicit binary (an error if it names nothing runnable, rather
//!    than silently using another one);
//! 3. **`PATH`, then `/opt/homebrew/bin` and `/usr/local/bin`**: an app started from
//!    Finder gets launchd's minimal PATH without Homebrew's folders, so they are searched
//!    explicitly. `WAN_FFMPEG_SEARCH_PATH` replaces this whole step (PATH *and* the two
//!    folders) — tests and the app E2E use it to make "no ffmpeg on this machine" real;
//! 4. **downloaded**: `<app data dir>/ffmpeg/ffmpeg`, where the app's consented download
//!    (ffmpeg-sidecar's downloader) unpacks a static build; the app registers its data
//!    dir once with [`set_app_data_dir`].
//!
//! Nothing found is [`Error::FfmpegMissing`] with what to do on this platform (Homebrew
//! on macOS, apt on Linux).
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::Serialize;

use crate::error::{Error, Result};

/// An explicit ffmpeg binary.
pub const FFMPEG_ENV: &str = "WAN_FFMPEG";
/// Replaces step 3's folders (`PATH` + Homebrew's), `:`-separated; empty = none.
pub const SEARCH_PATH_ENV: &str = "WAN_FFMPEG_SEARCH_PATH";
/// Folders an app launched from Finder does not have on its PATH (Apple silicon, Intel Homebrew).
pub const WELL_KNOWN_DIRS: [&str; 2] = ["/opt/homebrew/bin", "/usr/local/bin"];
/// Sub-folder of the app's data dir that holds a downloaded ffmpeg.
pub const DOWNLOAD_SUBDIR: &str = "ffmpeg";

#[cfg(windows)]
const EXE: &str = "ffmpeg.exe";
#[cfg(not(windows))]
const EXE: &str = "ffmpeg";

/// Where the binary in use was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Sidecar,
    Env,
    Path,
    Downloaded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub path: PathBuf,
    pub source: Source,
}

/// Everything the lookup reads, so tests can drive it with temp dirs instead of the process.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// Folder of the running executable (the sidecar sits there).
    pub exe_dir: Option<PathBuf>,
    /// `WAN_FFMPEG`.
    pub env: Option<OsString>,
    /// Folders of step 3, in order.
    pub search: Vec<PathBuf>,
    /// The app's data dir (step 4 looks in `<it>/ffmpeg/`).
    pub data_dir: Option<PathBuf>,
}

static APP_DATA_DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Register the app's data dir, so every later lookup (including mp4 writing deep in the
/// engine) also finds an ffmpeg downloaded there.
pub fn set_app_data_dir(dir: &Path) {
    *APP_DATA_DIR.write().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_path_buf());
}

/// Where the app's download puts the binary: `<data dir>/ffmpeg/ffmpeg`.
pub fn download_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DOWNLOAD_SUBDIR)
}

impl Lookup {
    /// The lookup as this process sees it (executable, environment, registered data dir).
    pub fn from_env() -> Self {
        // Empty entries (= the current folder in PATH syntax) are skipped: never run
        // an `ffmpeg` that happens to sit in whatever folder the process started in.
        let split = |p: OsString| -> Vec<PathBuf> {
            std::env::split_paths(&p)
                .filter(|d| d.is_absolute())
                .collect()
        };
        let search = match std::env::var_os(SEARCH_PATH_ENV) {
            Some(p) => split(p),
            None => {
                let mut v = std::env::var_os("PATH").map(split).unwrap_or_default();
                for d in WELL_KNOWN_DIRS {
                    if !v.iter().any(|x| x == Path::new(d)) {
                        v.push(PathBuf::from(d));
                    }
                }
                v
            }
        };
        Self {
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(Path::to_path_buf)),
            env: std::env::var_os(FFMPEG_ENV).filter(|v| !v.is_empty()),
            search,
            data_dir: APP_DATA_DIR
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// The first ffmpeg in the documented order, or what to do about it.
    pub fn find(&self) -> Result<Found> {
        let hit = |path: PathBuf, source| Found { path, source };
        if let Some(p) = self.exe_dir.as_ref().map(|d| d.join(EXE))
            && is_executable(&p)
        {
            return Ok(hit(p, Source::Sidecar));
        }
        if let Some(v) = &self.env {
            let p = PathBuf::from(v);
            return if is_executable(&p) {
                Ok(hit(p, Source::Env))
            } else {
                Err(Error::FfmpegMissing(format!(
                    "{FFMPEG_ENV}={} is not an executable file; point it at an ffmpeg binary or unset it",
                    p.display()
                )))
            };
        }
        if let Some(p) = self
            .search
            .iter()
            .map(|d| d.join(EXE))
            .find(|p| is_executable(p))
        {
            return Ok(hit(p, Source::Path));
        }
        if let Some(p) = self.data_dir.as_ref().map(|d| download_dir(d).join(EXE))
            && is_executable(&p)
        {
            return Ok(hit(p, Source::Downloaded));
        }
        Err(Error::FfmpegMissing(missing_message(self)))
    }
}

/// The ffmpeg this process uses (see the module doc for the order).
pub fn find() -> Result<Found> {
    Lookup::from_env().find()
}

/// What to install, per platform, and where we looked.
fn missing_message(l: &Lookup) -> String {
    let mut looked: Vec<String> = Vec::new();
    if let Some(d) = &l.exe_dir {
        looked.push(format!("beside the app ({})", d.display()));
    }
    looked.push(format!("${FFMPEG_ENV} (unset)"));
    if l.search.is_empty() {
        looked.push("no search folders".into());
    } else {
        let dirs: Vec<String> = l.search.iter().map(|d| d.display().to_string()).collect();
        looked.push(dirs.join(":"));
    }
    if let Some(d) = &l.data_dir {
        looked.push(download_dir(d).display().to_string());
    }
    let fix = if cfg!(target_os = "macos") {
        "install it with Homebrew (`brew install ffmpeg`), or let Wan Studio download a static \
         build (Models → ffmpeg), or set WAN_FFMPEG to an ffmpeg binary"
    } else if cfg!(target_os = "linux") {
        "install it with your package manager (`sudo apt-get install ffmpeg` on Debian/Ubuntu), \
         or set WAN_FFMPEG to an ffmpeg binary"
    } else {
        "install ffmpeg and put it on PATH, or set WAN_FFMPEG to an ffmpeg binary"
    };
    format!(
        "ffmpeg was not found (looked {}); it writes the mp4: {fix}",
        looked.join(", ")
    )
}

/// A regular file this user may execute (a directory or a plain data file named
/// `ffmpeg` does not count).
pub fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        p.extension() == Some(OsStr::new("exe"))
    }
}

/// `ffmpeg` (`ffmpeg.exe` on Windows): the file name every step looks for.
pub fn exe_name() -> &'static OsStr {
    OsStr::new(EXE)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(tag: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("wan-ffmpeg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    /// A fake `ffmpeg` in `dir/sub` (executable unless `exec` is false).
    fn fake(root: &Path, sub: &str, exec: bool) -> PathBuf {
        let d = root.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(EXE);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        p
    }

    /// Every location populated: each step wins over the ones after it, and removing
    /// the winner hands over to the next in the documented order.
    #[test]
    fn lookup_order_sidecar_env_path_downloaded() {
        let t = tmp("order");
        let r = &t.0;
        let sidecar = fake(r, "app", true);
        let env = fake(r, "env", true);
        let on_path = fake(r, "path2", true);
        let data = r.join("data");
        let downloaded = fake(&data, DOWNLOAD_SUBDIR, true);
        let mut l = Lookup {
            exe_dir: Some(r.join("app")),
            env: Some(env.clone().into_os_string()),
            search: vec![r.join("path1-empty"), r.join("path2")],
            data_dir: Some(data.clone()),
        };
        let found = |l: &Lookup| l.find().map(|f| (f.path, f.source));
        assert_eq!(found(&l).unwrap(), (sidecar.clone(), Source::Sidecar));
        std::fs::remove_file(&sidecar).unwrap();
        assert_eq!(found(&l).unwrap(), (env, Source::Env));
        l.env = None;
        assert_eq!(found(&l).unwrap(), (on_path.clone(), Source::Path));
        std::fs::remove_file(&on_path).unwrap();
        assert_eq!(found(&l).unwrap(), (downloaded.clone(), Source::Downloaded));
        std::fs::remove_file(&downloaded).unwrap();
        let err = l.find().unwrap_err();
        assert_eq!(err.code(), "ffmpeg");
        let msg = err.to_string();
        assert!(
            msg.contains(&data.join("ffmpeg").display().to_string()),
            "{msg}"
        );
        if cfg!(target_os = "macos") {
            assert!(msg.contains("brew install ffmpeg"), "{msg}");
        } else if cfg!(target_os = "linux") {
            assert!(msg.contains("apt-get install ffmpeg"), "{msg}");
        }
    }

    /// The first folder on the search path wins; non-executable files and directories
    /// named ffmpeg are skipped.
    #[test]
    fn search_path_order_and_non_executables() {
        let t = tmp("search");
        let r = &t.0;
        fake(r, "a", false);
        std::fs::create_dir_all(r.join("b").join(EXE)).unwrap();
        let c = fake(r, "c", true);
        fake(r, "d", true);
        let l = Lookup {
            search: ["a", "b", "c", "d"].iter().map(|s| r.join(s)).collect(),
            ..Lookup::default()
        };
        let f = l.find().unwrap();
        assert_eq!((f.path, f.source), (c, Source::Path));
    }

    /// An explicit WAN_FFMPEG that names nothing is an error, not a silent fallback to
    /// another ffmpeg further down the order.
    #[test]
    fn bad_env_is_refused() {
        let t = tmp("env");
        let r = &t.0;
        fake(r, "path", true);
        let l = Lookup {
            env: Some(r.join("nope/ffmpeg").into_os_string()),
            search: vec![r.join("path")],
            ..Lookup::default()
        };
        let e = l.find().unwrap_err();
        assert!(e.to_string().contains("WAN_FFMPEG="), "{e}");
    }
}
