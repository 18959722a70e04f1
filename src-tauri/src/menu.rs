//! The native menu bar: File (open an image, the models folder, the gallery folder), Edit
//! (the standard items, without which ⌘C/⌘V do nothing in a macOS webview), View (the three
//! views, ⌘1/⌘2/⌘3), Job (generate ⌘↵, cancel ⌘.), and on macOS the app and Window menus.
//! "CmdOrCtrl" is ⌘ on macOS and Ctrl elsewhere. Items that act on the form are forwarded
//! to the window as a [`MENU_EVENT`] carrying the item id; folder items are handled here.
use std::path::Path;

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::{AppHandle, Emitter, Manager, Wry};

use crate::commands::AppState;

/// The event the window receives for menu items it handles (payload: the item id).
pub const MENU_EVENT: &str = "menu";

/// Items forwarded to the window, with their accelerators (the UI binds the same keys, so
/// a shortcut works whichever side sees the key first; it ignores the echo).
pub const WINDOW_ITEMS: [(&str, &str, Option<&str>); 6] = [
    ("open-image", "Open Image…", Some("CmdOrCtrl+O")),
    ("view-generate", "Generate", Some("CmdOrCtrl+1")),
    ("view-gallery", "Gallery", Some("CmdOrCtrl+2")),
    ("view-models", "Models", Some("CmdOrCtrl+3")),
    ("generate", "Generate Now", Some("CmdOrCtrl+Enter")),
    ("cancel", "Cancel Current Job", Some("CmdOrCtrl+Period")),
];
pub const OPEN_MODELS_FOLDER: &str = "open-models-folder";
pub const REVEAL_GALLERY: &str = "reveal-gallery";

fn item(app: &AppHandle, id: &str) -> tauri::Result<MenuItem<Wry>> {
    let (_, text, accel) = WINDOW_ITEMS
        .iter()
        .find(|(i, ..)| *i == id)
        .copied()
        .unwrap_or((id, id, None));
    MenuItem::with_id(app, id, text, true, accel)
}

/// The whole menu bar.
pub fn build(app: &AppHandle) -> tauri::Result<Menu<Wry>> {
    let sep = || PredefinedMenuItem::separator(app);
    let file = Submenu::with_items(
        app,
        "File",
        true,
        &[
            &item(app, "open-image")?,
            &MenuItem::with_id(
                app,
                OPEN_MODELS_FOLDER,
                "Open Models Folder",
                true,
                None::<&str>,
            )?,
            &MenuItem::with_id(
                app,
                REVEAL_GALLERY,
                "Reveal Gallery Folder",
                true,
                None::<&str>,
            )?,
            &sep()?,
            &PredefinedMenuItem::close_window(app, None)?,
            #[cfg(not(target_os = "macos"))]
            &PredefinedMenuItem::quit(app, None)?,
        ],
    )?;
    let edit = Submenu::with_items(
        app,
        "Edit",
        true,
        &[
            &PredefinedMenuItem::undo(app, None)?,
            &PredefinedMenuItem::redo(app, None)?,
            &sep()?,
            &PredefinedMenuItem::cut(app, None)?,
            &PredefinedMenuItem::copy(app, None)?,
            &PredefinedMenuItem::paste(app, None)?,
            &PredefinedMenuItem::select_all(app, None)?,
        ],
    )?;
    let view = Submenu::with_items(
        app,
        "View",
        true,
        &[
            &item(app, "view-generate")?,
            &item(app, "view-gallery")?,
            &item(app, "view-models")?,
            #[cfg(target_os = "macos")]
            &sep()?,
            #[cfg(target_os = "macos")]
            &PredefinedMenuItem::fullscreen(app, None)?,
        ],
    )?;
    let job = Submenu::with_items(
        app,
        "Job",
        true,
        &[&item(app, "generate")?, &item(app, "cancel")?],
    )?;
    #[cfg(target_os = "macos")]
    {
        let name = app.package_info().name.clone();
        let app_menu = Submenu::with_items(
            app,
            &name,
            true,
            &[
                &PredefinedMenuItem::about(app, None, None)?,
                &sep()?,
                &PredefinedMenuItem::services(app, None)?,
                &sep()?,
                &PredefinedMenuItem::hide(app, None)?,
                &PredefinedMenuItem::hide_others(app, None)?,
                &PredefinedMenuItem::show_all(app, None)?,
                &sep()?,
                &PredefinedMenuItem::quit(app, None)?,
            ],
        )?;
        let window = Submenu::with_items(
            app,
            "Window",
            true,
            &[
                &PredefinedMenuItem::minimize(app, None)?,
                &PredefinedMenuItem::maximize(app, None)?,
            ],
        )?;
        Menu::with_items(app, &[&app_menu, &file, &edit, &view, &job, &window])
    }
    #[cfg(not(target_os = "macos"))]
    Menu::with_items(app, &[&file, &edit, &view, &job])
}

/// Open `dir` in Finder / the file manager.
pub fn open_folder(dir: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "macos")]
    let mut cmd = std::process::Command::new("open");
    #[cfg(not(target_os = "macos"))]
    let mut cmd = std::process::Command::new("xdg-open");
    cmd.arg(dir).spawn().map(|_| ())
}

/// A menu item was chosen.
pub fn on_event(app: &AppHandle, id: &str) {
    if WINDOW_ITEMS.iter().any(|(i, ..)| *i == id) {
        let _ = app.emit(MENU_EVENT, id);
        return;
    }
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    let dir = match id {
        OPEN_MODELS_FOLDER => crate::settings::models_dir(&state.data_dir, &state.settings()),
        REVEAL_GALLERY => state.gallery.root().to_path_buf(),
        _ => return,
    };
    let opened = std::fs::create_dir_all(&dir).and_then(|_| open_folder(&dir));
    if let Err(e) = opened {
        let _ = app.emit(
            MENU_EVENT,
            format!("error:cannot open {}: {e}", dir.display()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::WINDOW_ITEMS;

    /// The page binds the same keys (`ui/src/shortcuts.ts`, `SHORTCUTS`): every forwarded
    /// item's id is an action there, with the key of its accelerator.
    #[test]
    fn accelerators_match_the_page_shortcuts() {
        let ts = include_str!("../../ui/src/shortcuts.ts");
        let table = &ts[ts.find("SHORTCUTS").expect("SHORTCUTS in shortcuts.ts")..];
        let table = &table[..table.find("};").expect("end of SHORTCUTS")];
        for (id, _, accel) in WINDOW_ITEMS {
            let key = accel
                .and_then(|a| a.strip_prefix("CmdOrCtrl+"))
                .unwrap_or_else(|| panic!("{id}: no CmdOrCtrl accelerator"));
            let key = match key {
                "Period" => ".".to_string(),
                "Enter" => "Enter".to_string(),
                k => k.to_lowercase(),
            };
            let entry = [format!("{id}: \"{key}\""), format!("\"{id}\": \"{key}\"")];
            assert!(
                entry.iter().any(|e| table.contains(e.as_str())),
                "{id} → {key} is not in ui/src/shortcuts.ts: {table}"
            );
        }
        assert_eq!(table.matches(": \"").count(), WINDOW_ITEMS.len());
    }
}
