//! Where the app keeps its files, and the settings that persist across launches.
//!
//! Data dir: `WAN_STUDIO_DATA_DIR` if set (tests, E2E), else the platform data dir from
//! `directories` (`~/Library/Application Support/studio.wan.app`, `~/.local/share/wan-studio`).
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use wan::pipeline::GenerateParams;

use crate::error::{AppError, AppResult};
use crate::gallery::write_atomic;

pub const DATA_DIR_ENV: &str = "WAN_STUDIO_DATA_DIR";

pub fn data_dir() -> AppResult<PathBuf> {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("studio", "wan", "Wan Studio")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or_else(|| AppError::new("io", "no home directory to keep the gallery in"))
}

/// Previewers fitted for folders that ship none, keyed by VAE file (see
/// `wan::vae::preview::ensure_previewer`); shared by generations and conversions.
pub fn preview_cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("previewers")
}

/// Prompt contexts (`wan::t5::cache`): a prompt seen before never loads umT5.
pub fn context_cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("t5-contexts")
}

/// Default home of downloaded models (Models → Download; user-changeable).
pub fn default_models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The checkpoint folder chosen in the Models view.
    pub checkpoint_dir: Option<PathBuf>,
    /// The Generate form as last submitted (restored on launch).
    pub last_params: Option<GenerateParams>,
    /// Where Models → Download puts repos (default `<data dir>/models`).
    pub models_dir: Option<PathBuf>,
}

impl Settings {
    fn path(dir: &Path) -> PathBuf {
        dir.join("settings.json")
    }

    /// Load; a missing or unreadable file gives the defaults (a corrupt settings file must
    /// not keep the app from starting).
    pub fn load(dir: &Path) -> Self {
        fs::read(Self::path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, dir: &Path) -> AppResult<()> {
        fs::create_dir_all(dir).map_err(|e| AppError::io("creating the data folder", e))?;
        write_atomic(&Self::path(dir), &serde_json::to_vec_pretty(self)?)
    }
}

/// The live settings, shared by the commands and the worker (a finished conversion may
/// select its output folder), written to disk on every change.
#[derive(Debug)]
pub struct SettingsStore {
    dir: PathBuf,
    current: Mutex<Settings>,
}

impl SettingsStore {
    /// Load from `dir` (defaults if missing or corrupt).
    pub fn open(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            current: Mutex::new(Settings::load(dir)),
        }
    }

    pub fn get(&self) -> Settings {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Change and persist; if saving fails the change is not kept either, so memory and
    /// disk never disagree.
    pub fn update(&self, change: impl FnOnce(&mut Settings)) -> AppResult<()> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = cur.clone();
        change(&mut next);
        next.save(&self.dir)?;
        *cur = next;
        Ok(())
    }
}
