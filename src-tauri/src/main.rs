// No console window on Windows release builds (harmless elsewhere).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // `--self-check`: report kernels, MLX and ffmpeg without a window (CI, first runs).
    if std::env::args().nth(1).as_deref() == Some("--self-check") {
        std::process::exit(wan_studio::selfcheck::run());
    }
    wan_studio::run()
}
