//! The gallery: one folder per finished clip under the app data dir.
//!
//! ```text
//! <root>/<id>/clip.mp4      the video
//! <root>/<id>/poster.png    first frame, the grid thumbnail
//! <root>/<id>/record.json   ClipRecord: prompt, settings, seed, model, timings, parent
//! <root>/<id>/last.png      last frame, written when the clip is first continued
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
pub const LAST_FRAME: &str = "last.png";
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
    /// The clip this one continues ("Continue from last frame": its last frame is this
    /// clip's image). Absent in records written before chains existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
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
pub fn check_id(id: &str) -> AppResult<()> {
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
        self.check_destination(dest)?;
        let bytes = fs::read(&entry.clip).map_err(|e| AppError::io("reading the clip", e))?;
        write_atomic(dest, &bytes)
    }
}

impl Gallery {
    /// The last frame of clip `id` as a PNG in its folder (extracted with ffmpeg through
    /// `wan::video` on first use, then reused): the image of a continuation job.
    pub fn last_frame(&self, id: &str) -> AppResult<PathBuf> {
        let entry = self.get(id)?;
        let path = entry.dir.join(LAST_FRAME);
        if !path.is_file() {
            let img = wan::video::last_frame(&entry.clip)?;
            let png = encode_png(img.width(), img.height(), img.as_raw())?;
            write_atomic(&path, &png)?;
        }
        Ok(path)
    }

    /// The chain that ends at `id`, oldest first: its parent, the parent's parent, … A
    /// missing (deleted) ancestor ends the chain; a cycle (hand-edited records) is cut.
    pub fn chain(&self, id: &str) -> AppResult<Vec<ClipEntry>> {
        let mut out = vec![self.get(id)?];
        while let Some(parent) = out.last().and_then(|e| e.record.parent.clone()) {
            if out.iter().any(|e| e.record.id == parent) {
                break;
            }
            match self.get(&parent) {
                Ok(p) => out.push(p),
                Err(_) => break,
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Write the chain ending at `id` as one mp4 at `dest` (stream copy, no re-encode).
    /// Every part must have the same size and frame rate. Returns how many clips were joined.
    pub fn join(&self, id: &str, dest: &Path) -> AppResult<usize> {
        let chain = self.chain(id)?;
        if chain.len() < 2 {
            return Err(AppError::input(
                "this clip continues no other clip: nothing to join",
            ));
        }
        let first = &chain[0].record;
        if let Some(odd) = chain.iter().find(|e| {
            (e.record.width, e.record.height, e.record.fps)
                != (first.width, first.height, first.fps)
        }) {
            return Err(AppError::input(format!(
                "the clips differ in size or frame rate ({}×{} @ {} fps vs {}×{} @ {} fps): they cannot be joined without re-encoding",
                first.width,
                first.height,
                first.fps,
                odd.record.width,
                odd.record.height,
                odd.record.fps
            )));
        }
        self.check_destination(dest)?;
        let parts: Vec<PathBuf> = chain.iter().map(|e| e.clip.clone()).collect();
        wan::video::concat_mp4(&parts, dest)?;
        Ok(parts.len())
    }

    /// A new `.mp4` file in an existing folder outside the gallery.
    fn check_destination(&self, dest: &Path) -> AppResult<()> {
        let parent = dest.parent().filter(|p| p.is_dir()).ok_or_else(|| {
            AppError::input(format!("{}: the folder does not exist", dest.display()))
        })?;
        if dest.extension().and_then(|e| e.to_str()) != Some("mp4") {
            return Err(AppError::input("export to a .mp4 file"));
        }
        if parent.starts_with(&self.root) {
            return Err(AppError::input("export outside the gallery folder"));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use wan::config::Task;
    use wan::pipeline::SolverKind;

    fn record(id: &str, at: u64, parent: Option<&str>, size: (u32, u32)) -> ClipRecord {
        ClipRecord {
            id: id.into(),
            created_unix_ms: at,
            params: GenerateParams {
                task: Task::Ti2v5B,
                prompt: format!("clip {id}"),
                negative_prompt: None,
                size: (size.0 as i32, size.1 as i32),
                frame_num: 5,
                sample_steps: 2,
                sample_shift: 5.0,
                guide_scale: (5.0, 5.0),
                solver: SolverKind::Unipc,
                seed: at,
                image: None,
                step_cache: Default::default(),
                lora: None,
            },
            negative_prompt_used: String::new(),
            model: ModelIdentity {
                path: "/ckpt".into(),
                name: "tiny".into(),
                engine: "wan".into(),
            },
            width: size.0,
            height: size.1,
            frames: 5,
            fps: 24,
            timings: Timings::default(),
            wall_s: 1.0,
            parent: parent.map(str::to_string),
        }
    }

    /// Publish a clip whose frame `i` is flat grey `level + 30·i`, as a real H.264 mp4.
    fn add(g: &Gallery, rec: &ClipRecord, level: u8) -> ClipEntry {
        let staged = g.stage(&rec.id).unwrap();
        let (w, h) = (rec.width, rec.height);
        let frames = wan::video::Frames {
            width: w,
            height: h,
            frames: (0..rec.frames)
                .map(|i| vec![level + 30 * i as u8; (w * h * 3) as usize])
                .collect(),
        };
        wan::video::write_mp4(&staged.join(CLIP), &frames, rec.fps).unwrap();
        let png = encode_png(w, h, &frames.frames[0]).unwrap();
        write_atomic(&staged.join(POSTER), &png).unwrap();
        g.commit(rec).unwrap()
    }

    fn frame_count(p: &Path) -> usize {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(p)
            .output()
            .expect("ffprobe (installed by scripts/setup.sh)");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[test]
    fn last_frame_is_extracted_once_into_the_clip_folder() {
        let d = tempfile::tempdir().unwrap();
        let g = Gallery::open(d.path().join("g")).unwrap();
        add(&g, &record("1-0", 1, None, (32, 16)), 20);
        let png = g.last_frame("1-0").unwrap();
        assert_eq!(png, d.path().join("g/1-0").join(LAST_FRAME));
        let img = wan::video::load_rgb(&png).unwrap();
        assert_eq!(img.dimensions(), (32, 16));
        // Frame 4 of 5 is grey 20 + 120 = 140 (the poster, frame 0, is 20).
        let mean = img.as_raw().iter().map(|&v| v as f64).sum::<f64>() / img.as_raw().len() as f64;
        assert!((mean - 140.0).abs() < 3.0, "mean {mean}");
        // Reused, not extracted again; the entry still lists.
        let t = std::fs::metadata(&png).unwrap().modified().unwrap();
        assert_eq!(g.last_frame("1-0").unwrap(), png);
        assert_eq!(std::fs::metadata(&png).unwrap().modified().unwrap(), t);
        assert_eq!(g.list().unwrap().len(), 1);
        assert_eq!(g.last_frame("2-0").unwrap_err().code, "not_found");
        assert_eq!(g.last_frame("../x").unwrap_err().code, "input");
    }

    #[test]
    fn chains_follow_parents_and_join_without_reencoding() {
        let d = tempfile::tempdir().unwrap();
        let g = Gallery::open(d.path().join("g")).unwrap();
        add(&g, &record("1-0", 1, None, (32, 16)), 10);
        add(&g, &record("2-0", 2, Some("1-0"), (32, 16)), 40);
        add(&g, &record("3-0", 3, Some("2-0"), (32, 16)), 70);
        add(&g, &record("4-0", 4, Some("gone"), (32, 16)), 10);
        add(&g, &record("5-0", 5, Some("1-0"), (48, 16)), 10);
        let ids = |v: Vec<ClipEntry>| v.into_iter().map(|e| e.record.id).collect::<Vec<_>>();
        assert_eq!(ids(g.chain("3-0").unwrap()), ["1-0", "2-0", "3-0"]);
        assert_eq!(ids(g.chain("1-0").unwrap()), ["1-0"]);
        // A deleted ancestor ends the chain.
        assert_eq!(ids(g.chain("4-0").unwrap()), ["4-0"]);

        let out = d.path().join("joined.mp4");
        assert_eq!(g.join("3-0", &out).unwrap(), 3);
        assert_eq!(frame_count(&out), 15);
        let last = wan::video::last_frame(&out).unwrap();
        let mean =
            last.as_raw().iter().map(|&v| v as f64).sum::<f64>() / last.as_raw().len() as f64;
        assert!(
            (mean - 190.0).abs() < 3.0,
            "the joined clip ends with part 3: {mean}"
        );

        let refused = |id: &str, dest: &Path| g.join(id, dest).unwrap_err().message;
        assert!(refused("1-0", &d.path().join("a.mp4")).contains("nothing to join"));
        assert!(refused("5-0", &d.path().join("b.mp4")).contains("differ in size"));
        assert!(refused("3-0", &g.root().join("1-0/in.mp4")).contains("outside the gallery"));
        assert!(refused("3-0", &d.path().join("c.mov")).contains(".mp4"));
        assert!(!d.path().join("b.mp4").exists());
    }

    #[test]
    fn five_hundred_clips_list_newest_first_and_old_records_load() {
        let d = tempfile::tempdir().unwrap();
        let g = Gallery::open(d.path().join("g")).unwrap();
        for k in 0..500u64 {
            let dir = g.root().join(format!("{}-{k}", 1000 + k));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(CLIP), b"tiny").unwrap();
            fs::write(dir.join(POSTER), b"tiny").unwrap();
            let mut rec = record(&format!("{}-{k}", 1000 + k), 1000 + k, None, (32, 16));
            if k % 2 == 0 {
                rec.parent = Some(format!("{}-{}", 999 + k, k.saturating_sub(1)));
            }
            let mut json = serde_json::to_value(&rec).unwrap();
            if k == 7 {
                // Written before chains existed: no "parent" key at all.
                json.as_object_mut().unwrap().remove("parent");
            }
            fs::write(dir.join(RECORD), serde_json::to_vec(&json).unwrap()).unwrap();
        }
        let list = g.list().unwrap();
        assert_eq!(list.len(), 500);
        assert_eq!(list[0].record.id, "1499-499");
        assert_eq!(list[499].record.id, "1000-0");
        assert!(
            list.windows(2)
                .all(|w| w[0].record.created_unix_ms > w[1].record.created_unix_ms)
        );
        let old = list.iter().find(|e| e.record.id == "1007-7").unwrap();
        assert_eq!(old.record.parent, None);
        // A record without a parent is written without the key.
        let text = serde_json::to_string(&old.record).unwrap();
        assert!(!text.contains("parent"));
    }
}
