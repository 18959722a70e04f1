//! Frames in and out: conditioning images (loaded as Pillow does, resized and cropped by the
//! official rules), mp4 / PNG output, and the last frame / concatenation of clips
//! (continuing a clip).
pub mod extend;
pub mod ffmpeg;
pub mod image;
pub mod mp4;
pub mod preprocess;
pub mod resize;

pub use self::image::{decode_rgb, load_rgb, to_tensor};
pub use extend::{concat_mp4, last_frame};
pub use mp4::{Frames, frames_from_video, write_mp4, write_png_frames};
pub use preprocess::{
    Ti2vPlan, best_output_size, conditioned_size, i2v_a14b_image, i2v_a14b_size, ti2v_image,
};
