//! The gallery: one folder per finished clip under the app data dir.
//!
//! ```text
//! <root>/<id>/clip.mp4      the video
//! <root>/<id>/poster.png    first frame, the grid thumbnail
//! <root>/<id>/record.json   ClipRecord: prompt, settings, seed, model, timings
//! <root>/.staging/<id>/     a clip being generated (never listed)
//! ```
//! A clip is built in `.staging/` and moved into place with one directory rename, so an
//! entry is either complete or absent: a crash mid-generation leaves only staging
//! debris, which `open` sweeps. The listing is rebuilt from disk every time.
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use wan::pipeline::{GenerateParams, Timings};

use crate::error::{AppError, AppResult};

pub const CLIP: &str = "clip.mp4";
pub const POSTER: &str = "poster.png";
pub const RECORD: &str = "record.json";
const STAGING: &str = ".staging";
const TRASH: &str = ".trash";

/// Which weights made a clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// Checkpoint folder as chosen by the user.
    pub path: PathBuf,
    /// Short description, e.g. `ti2v-5B (dim 3072, 30 layers)`.
    pub name: String,
    /// Which engine ran it (`wan` = MLX pipeline, `fake` = test engine).
    pub engine: String,
}

/// Everything that determines a clip, stored as `record.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClipRecord {
    pub id: String,
    pub created_unix_ms: u64,
    pub params: GenerateParams,
    /// The negative prompt actually used (the official default when none was given).
    pub negative_prompt_used: String,
    pub model: ModelIdentity,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub fps: u32,
    pub timings: Timings,
    /// Wall time of the whole job as the app saw it.
    pub wall_s: f64,
}

/// A listed clip: the record plus absolute paths for the UI.
#[derive(Debug, Clone, Serialize)]
pub struct ClipEntry {
    pub record: ClipRecord,
    pub dir: PathBuf,
    pub clip: PathBuf,
    pub poster: PathBuf,
}

pub struct Gallery {
    root: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Ids are `<unix ms>-<seq>`: sortable, unique within a process, safe as folder names.
pub fn new_clip_id() -> String {
    format!("{}-{}", now_ms(), SEQ.fetch_add(1, Ordering::SeqCst))
}

/// An id from the UI names exactly one folder directly under the root: `[0-9a-z-]` only.
fn check_id(id: &str) -> AppResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(AppError::input(format!("not a clip id: {id:?}")))
    }
}

/// Write `bytes` to `path` atomically (temp file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> AppResult<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| AppError::input(format!("{} has no parent folder", path.display())))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = |tmp: &Path| -> std::io::Result<()> {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(tmp, path)
    };
    write(&tmp).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        AppError::io(&format!("writing {}", path.display()), e)
    })
}

impl Gallery {
    /// Open (creating) the gallery and sweep leftovers of interrupted runs.
    pub fn open(root: impl Into<PathBuf>) -> AppResult<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| AppError::io("creating the gallery", e))?;
        for junk in [STAGING, TRASH] {
            let p = root.join(junk);
            if p.exists() {
                fs::remove_dir_all(&p).map_err(|e| AppError::io("sweeping the gallery", e))?;
            }
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh staging folder for clip `id`; the engine writes `clip.mp4` into it.
    pub fn stage(&self, id: &str) -> AppResult<PathBuf> {
        check_id(id)?;
        let dir = self.root.join(STAGING).join(id);
        fs::create_dir_all(&dir).map_err(|e| AppError::io("creating a staging folder", e))?;
        Ok(dir)
    }

    /// Drop a staged clip (failed or cancelled run).
    pub fn discard(&self, id: &str) {
        if check_id(id).is_ok() {
            let _ = fs::remove_dir_all(self.root.join(STAGING).join(id));
        }
    }

    /// Publish a staged clip: write its record, check it is complete, rename into place.
    pub fn commit(&self, record: &ClipRecord) -> AppResult<ClipEntry> {
        check_id(&record.id)?;
        let staged = self.root.join(STAGING).join(&record.id);
        for f in [CLIP, POSTER] {
            if !staged.join(f).is_file() {
                return Err(AppError::new(
                    "incomplete",
                    format!("the finished clip has no {f}"),
                ));
            }
        }
        write_atomic(&staged.join(RECORD), &serde_json::to_vec_pretty(record)?)?;
        let dir = self.root.join(&record.id);
        fs::rename(&staged, &dir).map_err(|e| AppError::io("publishing the clip", e))?;
        self.load_entry(&dir)
            .ok_or_else(|| AppError::new("incomplete", "the published clip cannot be read back"))
    }

    fn load_entry(&self, dir: &Path) -> Option<ClipEntry> {
        let text = fs::read(dir.join(RECORD)).ok()?;
        let record: ClipRecord = serde_json::from_slice(&text).ok()?;
        let (clip, poster) = (dir.join(CLIP), dir.join(POSTER));
        if !clip.is_file() || !poster.is_file() || dir.file_name()? != record.id.as_str() {
            return None;
        }
        Some(ClipEntry {
            record,
            dir: dir.to_path_buf(),
            clip,
            poster,
        })
    }

    /// All complete clips, newest first (incomplete or foreign folders are skipped).
    pub fn list(&self) -> AppResult<Vec<ClipEntry>> {
        let rd = fs::read_dir(&self.root).map_err(|e| AppError::io("reading the gallery", e))?;
        let mut out: Vec<ClipEntry> = rd
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| check_id(n).is_ok()))
            .filter_map(|e| self.load_entry(&e.path()))
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.record.created_unix_ms));
        Ok(out)
    }

    pub fn get(&self, id: &str) -> AppResult<ClipEntry> {
        check_id(id)?;
        self.load_entry(&self.root.join(id))
            .ok_or_else(|| AppError::not_found(format!("no clip {id}")))
    }

    /// Delete a clip: rename out of the listing first, then remove (never half-listed).
    pub fn delete(&self, id: &str) -> AppResult<()> {
        let entry = self.get(id)?;
        let trash = self.root.join(TRASH);
        fs::create_dir_all(&trash).map_err(|e| AppError::io("deleting", e))?;
        let t = trash.join(id);
        fs::rename(&entry.dir, &t).map_err(|e| AppError::io("deleting", e))?;
        fs::remove_dir_all(&t).map_err(|e| AppError::io("deleting", e))
    }

    /// Copy a clip's mp4 to `dest` (a new `.mp4` file in an existing folder).
    pub fn export(&self, id: &str, dest: &Path) -> AppResult<()> {
        let entry = self.get(id)?;
        let parent = dest.parent().filter(|p| p.is_dir()).ok_or_else(|| {
            AppError::input(format!("{}: the folder does not exist", dest.display()))
        })?;
        if dest.extension().and_then(|e| e.to_str()) != Some("mp4") {
            return Err(AppError::input("export to a .mp4 file"));
        }
        if parent.starts_with(&self.root) {
            return Err(AppError::input("export outside the gallery folder"));
        }
        let bytes = fs::read(&entry.clip).map_err(|e| AppError::io("reading the clip", e))?;
        write_atomic(dest, &bytes)
    }
}

/// Encode RGB8 pixels as PNG bytes.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> AppResult<Vec<u8>> {
    if rgb.len() != (width * height * 3) as usize {
        return Err(AppError::new("internal", "poster frame has the wrong size"));
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| AppError::new("internal", format!("png: {e}"));
    let mut w = enc.write_header().map_err(err)?;
    w.write_image_data(rgb).map_err(err)?;
    w.finish().map_err(err)?;
    Ok(out)
}
