//! The `generate` binary: valid mp4s on the tiny official folders (checked with ffprobe),
//! cancellation, and a clear error for each kind of bad input.
use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_generate"));
    // Prompt contexts go to a per-run folder, not the user's cache.
    c.env(
        "WAN_CACHE_DIR",
        std::env::temp_dir().join(format!("wan-gen-cache-{}", std::process::id())),
    );
    c
}

fn ckpt(name: &str) -> Option<PathBuf> {
    Some(common::fixtures_dir()?.join("checkpoints").join(name))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wan-gen-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run with `args` and assert a failure whose message says `code` and contains `needle`.
fn refused(args: &[&str], code: &str, needle: &str) {
    let o = bin().args(args).output().unwrap();
    let e = stderr(&o);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(e.contains(&format!("[{code}]")), "{args:?}: {e}");
    assert!(e.contains(needle), "{args:?}: expected `{needle}` in {e}");
}

#[test]
fn each_validation_error_is_clear() {
    let Some(ti2v) = ckpt("ti2v_tiny") else {
        return;
    };
    let t = ti2v.to_str().unwrap();
    let base = ["--task", "ti2v-5B", "--ckpt_dir", t, "--size", "1280*704"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter()
            .map(|s| s.to_string())
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |v: Vec<String>, code: &str, needle: &str| {
        let r: Vec<&str> = v.iter().map(String::as_str).collect();
        refused(&r, code, needle);
    };
    run(with(&["--frame_num", "8"]), "input", "4n+1");
    refused(
        &["--task", "ti2v-5B", "--ckpt_dir", t, "--size", "1280*720"],
        "input",
        "not supported for ti2v-5B",
    );
    refused(
        &["--task", "ti2v-5B", "--ckpt_dir", t, "--size", "12x"],
        "input",
        "W*H",
    );
    refused(
        &["--task", "t2v-5B", "--ckpt_dir", t],
        "input",
        "unknown task",
    );
    run(
        with(&["--sample_solver", "ddim"]),
        "input",
        "unknown solver",
    );
    run(with(&["--sample_steps", "0"]), "input", "sample_steps");
    run(with(&["--dtype", "f16"]), "input", "--dtype");
    run(with(&["--memory", "lots"]), "input", "memory `lots`");
    run(with(&["--vae_tile", "2"]), "input", "--vae_tile");
    run(with(&["--token_chunks", "0"]), "input", "--token_chunks");
    // No plan fits 121 frames at 720p in 1 GB (the CPU's attention scores alone are
    // gigabytes): refused before anything is loaded, with what would fit.
    run(
        with(&["--frame_num", "121", "--memory", "1GB"]),
        "memory",
        "would fit:",
    );
    run(with(&["--step_cache", "fast"]), "input", "--step_cache");
    run(with(&["--step_cache", "magcache:x"]), "input", "threshold");
    run(
        with(&["--lora_high", "/no/such/high.safetensors"]),
        "missing",
        "high.safetensors",
    );
    let missing = ti2v.join("no-such-dir");
    refused(
        &[
            "--task",
            "ti2v-5B",
            "--ckpt_dir",
            missing.to_str().unwrap(),
            "--size",
            "1280*704",
        ],
        "missing",
        "no-such-dir",
    );
    // A ti2v folder for an A14B task: mismatched files.
    refused(
        &["--task", "t2v-A14B", "--ckpt_dir", t, "--size", "832*480"],
        "input",
        "wrong --ckpt_dir or --task",
    );
    // Unreadable and missing images.
    let dir = tmpdir("val");
    let bad = dir.join("bad.png");
    std::fs::write(&bad, b"definitely not an image").unwrap();
    run(
        with(&[
            "--image",
            Box::leak(bad.to_str().unwrap().to_string().into_boxed_str()),
        ]),
        "input",
        "cannot read image",
    );
    run(
        with(&["--image", "/no/such/image.png"]),
        "missing",
        "image.png",
    );
    refused(
        &["--task", "i2v-A14B", "--ckpt_dir", t, "--size", "832*480"],
        "input",
        "needs --image",
    );
    // A 3000×100 strip at the area 96·64: the official best_output_size divides by zero;
    // refused before any model loads.
    let strip = dir.join("strip.png");
    image::RgbImage::new(3000, 100).save(&strip).unwrap();
    refused(
        &[
            "--task",
            "ti2v-5B",
            "--ckpt_dir",
            t,
            "--size",
            "96*64",
            "--any_size",
            "--image",
            strip.to_str().unwrap(),
        ],
        "input",
        "cannot be fitted to the area 6144",
    );
    // Output folder that does not exist.
    run(
        with(&["--save_file", "/no/such/folder/out.mp4"]),
        "missing",
        "/no/such/folder",
    );
    assert!(std::fs::read_dir(&dir).unwrap().count() == 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// No ffmpeg anywhere (empty search path, no WAN_FFMPEG): refused before any weight is
/// loaded, with the platform's install hint, and nothing written.
#[test]
fn missing_ffmpeg_is_refused_before_loading() {
    let Some(ti2v) = ckpt("ti2v_tiny") else {
        return;
    };
    let dir = tmpdir("noffmpeg");
    let out = dir.join("clip.mp4");
    let o = bin()
        .env_remove(wan::video::ffmpeg::FFMPEG_ENV)
        .env(wan::video::ffmpeg::SEARCH_PATH_ENV, "")
        .args(["--task", "ti2v-5B", "--ckpt_dir", ti2v.to_str().unwrap()])
        .args(["--size", "1280*704", "--save_file", out.to_str().unwrap()])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(
        e.contains("[ffmpeg]") && e.contains("ffmpeg was not found"),
        "{e}"
    );
    let hint = if cfg!(target_os = "macos") {
        "brew install ffmpeg"
    } else {
        "apt-get install ffmpeg"
    };
    assert!(e.contains(hint), "{e}");
    assert!(!e.contains("loading"), "weights were loaded first: {e}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run `generate`, check the mp4 and sidecar; returns what it printed on stderr.
fn generate_ok(tag: &str, args: &[&str], want: (u32, u32, u32)) -> String {
    generate_sidecar(tag, args, want).0
}

/// [`generate_ok`], also returning the sidecar.
fn generate_sidecar(
    tag: &str,
    args: &[&str],
    want: (u32, u32, u32),
) -> (String, serde_json::Value) {
    let dir = tmpdir(tag);
    let out = dir.join("clip.mp4");
    let o = bin()
        .args(args)
        .args(["--save_file", out.to_str().unwrap(), "--base_seed", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{tag}: {}", stderr(&o));
    let (codec, w, h, n, _) = common::probe(&out);
    assert_eq!((codec.as_str(), w, h, n), ("h264", want.0, want.1, want.2));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("clip.mp4.json")).unwrap()).unwrap();
    assert_eq!(side["seed"], 1);
    assert!(side["checkpoint"]["files"].as_array().unwrap().len() > 3);
    // The memory plan it ran with (f32 on the CPU backend) and what each phase used.
    assert_eq!(side["plan"]["fits"], true, "{}", side["plan"]);
    assert_eq!(side["dtype"], side["plan"]["plan"]["dtype"]);
    let phases: Vec<&str> = side["memory"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert!(
        phases.ends_with(&["load", "denoise", "decode"]),
        "{phases:?}"
    );
    assert!(stderr(&o).contains("plan (cpu): ≈ "), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
    (stderr(&o), side)
}

#[test]
fn ti2v_text_to_video_writes_a_valid_mp4() {
    let Some(c) = ckpt("ti2v_tiny") else { return };
    let log = generate_ok(
        "ti2v",
        &[
            "--task",
            "ti2v-5B",
            "--ckpt_dir",
            c.to_str().unwrap(),
            "--size",
            "1280*704",
            "--frame_num",
            "9",
            "--sample_steps",
            "2",
            "--prompt",
            "A red fox runs.",
            "--negative_prompt",
            "blurry",
        ],
        (1280, 704, 9),
    );
    assert!(
        !log.contains("warning"),
        "short prompts need no warning: {log}"
    );
    // The same prompts again: the contexts come from the cache, umT5 is never loaded; the
    // blocks pinned to 3 token chunks (the plan keeps the pin and the sidecar records it).
    let (log, side) = generate_sidecar(
        "ti2v-again",
        &[
            "--task",
            "ti2v-5B",
            "--ckpt_dir",
            c.to_str().unwrap(),
            "--size",
            "1280*704",
            "--frame_num",
            "1",
            "--sample_steps",
            "1",
            "--prompt",
            "A red fox runs.",
            "--negative_prompt",
            "blurry",
            "--token_chunks",
            "3",
        ],
        (1280, 704, 1),
    );
    assert_eq!(side["plan"]["plan"]["token_chunks"], 3, "{}", side["plan"]);
    assert!(log.contains("3 token chunks"), "{log}");
    assert_eq!(side["context_from_cache"], true, "{log}");
    assert!(side["memory"]["text_active_bytes"].is_null(), "{side}");
    assert!(log.contains("cached prompt"), "{log}");
}

#[test]
fn ti2v_image_to_video_writes_a_valid_mp4() {
    let Some(c) = ckpt("ti2v_tiny") else { return };
    let img = c.parent().unwrap().join("e2e_ti2v_i2v_image.png");
    // A 64×96 image and the 1280*704 area: best_output_size keeps the 2:3 aspect.
    let (w, h) = wan::video::best_output_size(64, 96, 32, 32, 1280 * 704).unwrap();
    generate_ok(
        "ti2v-i2v",
        &[
            "--task",
            "ti2v-5B",
            "--ckpt_dir",
            c.to_str().unwrap(),
            "--size",
            "1280*704",
            "--frame_num",
            "9",
            "--sample_steps",
            "2",
            "--prompt",
            "A white cat.",
            "--negative_prompt",
            "blurry",
            "--image",
            img.to_str().unwrap(),
        ],
        (w, h, 9),
    );
}

/// `generate --task i2v-A14B --image` replays the official `e2e_i2v_a14b` run (its noise
/// injected with `--noise`): an mp4 of the official output size (80×32 from a 72×40 image,
/// not the `--size`), and frames equal to the official video up to uint8 rounding.
#[test]
fn i2v_a14b_image_to_video_replays_the_official_run() {
    let Some(fx_path) = common::fixture("e2e_i2v_a14b.safetensors") else {
        return;
    };
    let fx = wan::fixture::Fixture::open(&fx_path).unwrap();
    let cli = |k: &str| fx.cfg(&format!("cli_equivalent.{k}")).unwrap().clone();
    let s = |k: &str| cli(k).as_str().unwrap().to_string();
    let fixtures = fx_path.parent().unwrap();
    let ckpt = fixtures.join(s("ckpt_dir"));
    let image = fixtures.join("checkpoints").join(s("image"));
    let wh = fx.cfg("effective.output_wh").unwrap();
    let (ow, oh) = (
        wh[0].as_u64().unwrap() as u32,
        wh[1].as_u64().unwrap() as u32,
    );
    let video = fx.get_f32("output/video").unwrap(); // [3, F, H, W] in [−1, 1]
    let frames = video.shape()[1] as u32;
    assert_ne!(
        (ow, oh),
        wan::config::parse_size(&s("size"))
            .map(|(w, h)| (w as u32, h as u32))
            .unwrap()
    );

    let dir = tmpdir("i2v-a14b");
    let (out, pngs) = (dir.join("clip.mp4"), dir.join("frames"));
    let o = bin()
        .args(["--task", &s("task"), "--ckpt_dir", ckpt.to_str().unwrap()])
        .args([
            "--image",
            image.to_str().unwrap(),
            "--size",
            &s("size"),
            "--any_size",
        ])
        .args(["--frame_num", &cli("frame_num").to_string()])
        .args(["--sample_steps", &cli("sample_steps").to_string()])
        .args(["--sample_solver", &s("sample_solver")])
        .args([
            "--prompt",
            &s("prompt"),
            "--negative_prompt",
            &s("n_prompt"),
        ])
        .args(["--base_seed", &cli("base_seed").to_string()])
        .args(["--noise", fx_path.to_str().unwrap()])
        .args(["--frames_dir", pngs.to_str().unwrap()])
        .args(["--save_file", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (codec, w, h, n, pix) = common::probe(&out);
    assert_eq!(
        (codec.as_str(), w, h, n, pix.as_str()),
        ("h264", ow, oh, frames, "yuv420p")
    );

    // The official uint8 frames: trunc((x + 1) / 2 · 255) of the recorded video.
    let v: Vec<f32> = video.to_vec_cast::<f32>().unwrap();
    let (hh, ww) = (oh as usize, ow as usize);
    let mut worst = 0i32;
    for f in 0..frames as usize {
        let png = image::open(pngs.join(format!("frame_{f:05}.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!(png.dimensions(), (ow, oh));
        for (i, p) in png.pixels().enumerate() {
            for c in 0..3 {
                let x = v[((c * frames as usize + f) * hh + i / ww) * ww + i % ww];
                let want = ((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0) as i32;
                worst = worst.max((p.0[c] as i32 - want).abs());
            }
        }
    }
    // Float differences of ~1e-5 can only flip a level at a rounding boundary.
    assert!(
        worst <= 1,
        "frames differ from the official video by {worst} levels"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn t2v_a14b_writes_a_valid_mp4() {
    let Some(c) = ckpt("t2v_a14b_tiny") else {
        return;
    };
    // Longer than the tiny encoder's text length: a warning, not an error.
    let long_negative = "blurry, ".repeat(60);
    let log = generate_ok(
        "a14b",
        &[
            "--task",
            "t2v-A14B",
            "--ckpt_dir",
            c.to_str().unwrap(),
            "--size",
            "832*480",
            "--frame_num",
            "5",
            "--sample_steps",
            "2",
            "--prompt",
            "Two cats box.",
            "--negative_prompt",
            &long_negative,
        ],
        (832, 480, 5),
    );
    assert!(
        log.contains("warning: the negative prompt is longer than the"),
        "{log}"
    );
    assert!(!log.contains("warning: the prompt"), "{log}");
}

/// `--step_cache magcache:0.06` with 6 steps: the sidecar lists, per step and branch, what
/// was computed and what reused, following the official calibration (`TI2V_T2V`): nearest
/// calibrated steps 0, 10, 20, 29, 39, 49; cond ratios .9945 (step 1), .99201 (2), .97171 (4),
/// .96949 (5); retention 0.2 keeps model calls < 2 (step 0) computed; then step 1 reuses
/// (error .0055), step 2 reuses (.0189, 2 skips), step 3 computes (K = 2), step 4 reuses
/// (.0283), step 5 computes (.0283 + .0579 ≥ .06). The uncond ratios give the same.
#[test]
fn sidecar_records_computed_and_reused_steps() {
    let Some(c) = ckpt("ti2v_tiny") else { return };
    let dir = tmpdir("magcache");
    let out = dir.join("clip.mp4");
    let o = bin()
        .args([
            "--task",
            "ti2v-5B",
            "--ckpt_dir",
            c.to_str().unwrap(),
            "--size",
            "256*160",
            "--any_size",
            "--frame_num",
            "5",
            "--sample_steps",
            "6",
            "--prompt",
            "A red fox runs.",
            "--step_cache",
            "magcache:0.06",
            "--base_seed",
            "3",
            "--save_file",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("clip.mp4.json")).unwrap()).unwrap();
    let sc = &side["step_cache"];
    assert_eq!(sc["setting"], "magcache:0.06:2", "{sc}");
    assert_eq!(side["params"]["step_cache"], "magcache:0.06:2");
    let steps = sc["steps"].as_array().unwrap();
    let list = |branch: &str| -> Vec<String> {
        steps
            .iter()
            .map(|s| s[branch].as_str().unwrap().to_string())
            .collect()
    };
    let want = [
        "computed", "reused", "reused", "computed", "reused", "computed",
    ];
    assert_eq!(list("cond"), want);
    assert_eq!(list("uncond"), want);
    assert_eq!(sc["dit_evaluations"], 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C (SIGINT) during sampling: exit code 130 within about one step, nothing written.
#[test]
fn sigint_cancels_within_a_step_and_leaves_no_file() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let Some(c) = ckpt("ti2v_tiny") else { return };
    let dir = tmpdir("cancel");
    let out = dir.join("clip.mp4");
    let mut child = bin()
        .args([
            "--task",
            "ti2v-5B",
            "--ckpt_dir",
            c.to_str().unwrap(),
            "--size",
            "1280*704",
            "--frame_num",
            "9",
            "--sample_steps",
            "50",
            "--prompt",
            "A fox.",
            "--negative_prompt",
            "blurry",
            "--save_file",
            out.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut step_time = None;
    let t0 = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("step 1/") {
            step_time = Some(t0.elapsed());
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "no step reported");
    }
    assert!(
        step_time.is_some(),
        "the run ended before a step was reported"
    );
    let sent = Instant::now();
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("cancelled")), "{rest:?}");
    // At most the step in flight finishes (generous bound for a loaded machine).
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        rest.iter().filter(|l| l.starts_with("step ")).count() <= 1,
        "{rest:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "files left: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A quantized folder round-trips: `convert --quantize q8` → `inspect_model` (precision per
/// component) → `generate` (ffprobe-checked mp4, sidecar says q8); and `generate
/// --quantize q4` quantizes a dense folder at load. Bad settings are refused up front.
#[test]
fn quantized_folder_round_trips_convert_inspect_generate() {
    let Some(c) = ckpt("t2v_a14b_tiny") else {
        return;
    };
    let dir = tmpdir("quant");
    let q8 = dir.join("a14b-q8");
    let o = Command::new(env!("CARGO_BIN_EXE_convert"))
        .args([
            c.to_str().unwrap(),
            q8.to_str().unwrap(),
            "--quantize",
            "q8",
        ])
        .args(["--group-size", "32", "--quantize-t5", "q8"])
        .output()
        .unwrap();
    assert!(o.status.success(), "convert: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("DiT block Linears quantized: q8 (group 32)"),
        "{out}"
    );

    let o = Command::new(env!("CARGO_BIN_EXE_inspect_model"))
        .args([q8.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "inspect: {}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let precision: Vec<(String, String)> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("kind"), s("precision"))
        })
        .collect();
    let want = |kind: &str, p: &str| (kind.to_string(), p.to_string());
    assert_eq!(
        precision,
        [
            want("dit", "q8 (group 32) × 20 Linears + bf16"),
            want("dit", "q8 (group 32) × 20 Linears + bf16"),
            want("t5", "q8 (group 32) × 14 Linears + bf16"),
            want("vae", "bf16"),
        ]
    );
    assert_eq!(r["folder"]["quantization"]["dit"]["spec"]["bits"], 8);

    let args = |ckpt: &std::path::Path| -> Vec<String> {
        [
            "--task",
            "t2v-A14B",
            "--ckpt_dir",
            ckpt.to_str().unwrap(),
            "--size",
            "80*48",
            "--any_size",
            "--frame_num",
            "5",
            "--sample_steps",
            "2",
            "--prompt",
            "Two cats box.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a: Vec<String> = args(&q8);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    generate_ok("quant-q8", &a, (80, 48, 5));

    let mut a: Vec<String> = args(&c);
    a.extend([
        "--quantize".into(),
        "q4".into(),
        "--group_size".into(),
        "32".into(),
    ]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    generate_ok("quant-q4", &a, (80, 48, 5));

    // A14B tiny has dim 64: group 128 cannot pack it, named before any model loads.
    let mut bad: Vec<String> = args(&c);
    bad.extend([
        "--quantize".into(),
        "q8".into(),
        "--group_size".into(),
        "128".into(),
    ]);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    refused(&bad, "weights", "group size 128");
    let mut bad: Vec<String> = args(&c);
    bad.extend(["--quantize".into(), "q3".into()]);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    refused(&bad, "input", "q8 or q4");
    // a q8 folder cannot become q4
    let mut bad: Vec<String> = args(&q8);
    bad.extend([
        "--quantize".into(),
        "q4".into(),
        "--group_size".into(),
        "32".into(),
    ]);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    refused(&bad, "input", "already quantized");
    let _ = std::fs::remove_dir_all(&dir);
}
