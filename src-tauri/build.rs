//! tauri.conf.json lives at the repository root (design card); paths in it are relative
//! to that file. The UI is built by npm (`ui/dist`); when it has not been built (plain
//! `cargo test --workspace`), a placeholder page is embedded instead so the Rust side
//! always compiles — `scripts/e2e-app.sh` and `cargo tauri build` build the real UI first.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("../ui/dist");
    println!(
        "cargo:rerun-if-changed={}",
        dist.join("index.html").display()
    );
    if !dist.join("index.html").is_file() && std::env::var_os("TAURI_CONFIG").is_none() {
        let out =
            PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("ui-placeholder");
        std::fs::create_dir_all(&out).expect("create the placeholder UI folder");
        std::fs::write(
            out.join("index.html"),
            "<!doctype html><title>Wan Studio</title><p>UI not built: run \
             <code>npm --prefix ui ci &amp;&amp; npm --prefix ui run build</code>, then rebuild.</p>",
        )
        .expect("write the placeholder UI");
        let cfg = serde_json::json!({ "build": { "frontendDist": out } }).to_string();
        println!("cargo:rustc-env=TAURI_CONFIG={cfg}");
        // SAFETY: build scripts are single-threaded; tauri-build reads it below.
        unsafe { std::env::set_var("TAURI_CONFIG", &cfg) };
    }
    let attrs = tauri_build::Attributes::new().config_path("../tauri.conf.json");
    if let Err(e) = tauri_build::try_build(attrs) {
        panic!("tauri-build: {e:#}");
    }
}
