//! Frames in and out: conditioning images (official resize rules), mp4 / PNG output, and
//! the last frame / concatenation of clips (continuing a clip).
pub mod extend;
pub mod image;
pub mod mp4;

pub use self::image::{best_output_size, i2v_a14b_image, i2v_a14b_size, load_rgb, ti2v_image};
pub use extend::{concat_mp4, last_frame};
pub use mp4::{Frames, frames_from_video, write_mp4, write_png_frames};
