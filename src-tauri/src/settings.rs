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

/// The folder File › Open Models Folder shows: the one holding the chosen checkpoint, else
/// the download folder (Models → Download).
pub fn models_dir(data_dir: &Path, settings: &Settings) -> PathBuf {
    settings
        .checkpoint_dir
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .or_else(|| settings.models_dir.clone())
        .unwrap_or_else(|| default_models_dir(data_dir))
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
    /// Prompts of queued jobs, newest first, without repeats, at most [`HISTORY_LEN`].
    pub prompt_history: Vec<String>,
    /// Light, dark, or whatever the system uses (the default).
    pub appearance: Appearance,
    /// Where Models → Download puts repos (default `<data dir>/models`).
    pub models_dir: Option<PathBuf>,
}

/// How many prompts the history keeps.
pub const HISTORY_LEN: usize = 50;

/// The window's colour scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Appearance {
    #[default]
    System,
    Light,
    Dark,
}

impl Appearance {
    /// The window theme to force (`None`: follow the system).
    pub fn theme(self) -> Option<tauri::Theme> {
        match self {
            Self::System => None,
            Self::Light => Some(tauri::Theme::Light),
            Self::Dark => Some(tauri::Theme::Dark),
        }
    }
}

/// Put `prompt` at the front of `history` (moving it if already there), keeping at most
/// [`HISTORY_LEN`]; blank prompts are not remembered.
pub fn remember_prompt(history: &mut Vec<String>, prompt: &str) {
    if prompt.trim().is_empty() {
        return;
    }
    history.retain(|p| p != prompt);
    history.insert(0, prompt.to_string());
    history.truncate(HISTORY_LEN);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_newest_first_unique_and_capped() {
        let mut h = Vec::new();
        for i in 0..60 {
            remember_prompt(&mut h, &format!("p{i}"));
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!((h[0].as_str(), h[49].as_str()), ("p59", "p10"));
        // A repeated prompt moves to the front instead of appearing twice.
        remember_prompt(&mut h, "p30");
        assert_eq!(h[0], "p30");
        assert_eq!(h.iter().filter(|p| *p == "p30").count(), 1);
        assert_eq!(h.len(), HISTORY_LEN);
        remember_prompt(&mut h, "  ");
        assert_eq!(h[0], "p30");
    }

    #[test]
    fn old_settings_files_still_load() {
        let dir = std::env::temp_dir().join(format!("wan-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("settings.json"), br#"{"checkpoint_dir": "/ckpt"}"#).unwrap();
        let s = Settings::load(&dir);
        assert_eq!(s.checkpoint_dir.as_deref(), Some(Path::new("/ckpt")));
        assert!(s.prompt_history.is_empty());
        assert_eq!(s.appearance, Appearance::System);
        let mut s2 = s.clone();
        s2.appearance = Appearance::Dark;
        remember_prompt(&mut s2.prompt_history, "a fox");
        s2.save(&dir).unwrap();
        assert_eq!(Settings::load(&dir), s2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
