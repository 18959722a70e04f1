//! mp4 output through the system ffmpeg: valid H.264 per ffprobe, atomic, clear errors.

mod common;

use common::probe;
use mlx_rs::Array;
use wan::video::{frames_from_video, write_mp4, write_png_frames};

#[test]
fn mp4_is_h264_yuv420p_with_every_frame_and_errors_are_clear() {
    let dir = std::env::temp_dir().join(format!("wan-mp4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // [3, 5, 32, 48] ramp in [−1, 1].
    let n = 3 * 5 * 32 * 48;
    let data: Vec<f32> = (0..n).map(|i| (i % 97) as f32 / 48.0 - 1.0).collect();
    let video = Array::from_slice(&data, &[3, 5, 32, 48]);
    let frames = frames_from_video(&video).unwrap();
    let path = dir.join("clip.mp4");
    write_mp4(&path, &frames, 24).unwrap();
    let (codec, w, h, count, pix) = probe(&path);
    assert_eq!(
        (codec.as_str(), w, h, count, pix.as_str()),
        ("h264", 48, 32, 5, "yuv420p")
    );
    // No temporary file left beside the output.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["clip.mp4".to_string()]);

    write_png_frames(&dir.join("frames"), &frames).unwrap();
    assert!(dir.join("frames/frame_00004.png").is_file());

    // A missing ffmpeg is a clear error naming the bad setting and leaves nothing behind.
    unsafe { std::env::set_var("WAN_FFMPEG", dir.join("no-such-ffmpeg")) };
    let err = write_mp4(&dir.join("x.mp4"), &frames, 24).unwrap_err();
    unsafe { std::env::remove_var("WAN_FFMPEG") };
    assert_eq!(err.code(), "ffmpeg");
    assert!(err.to_string().contains("no-such-ffmpeg"), "{err}");
    assert!(!dir.join("x.mp4").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
