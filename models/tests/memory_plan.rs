//! The memory model against MLX's own counters: phased residency (umT5 released before the
//! DiT is read; a cached prompt never loads it), and the calibration at reduced widths.
//! Its own test binary: MLX's counters are process-wide, so its tests hold one lock.
use std::sync::Mutex;

use wan::memory::{Backend, Machine, Overrides};
use wan::pipeline::{CancelToken, GenerateParams, PhasedOptions, SolverKind, phases};
use wan::t5::cache::ContextCache;

mod common;

static MLX_COUNTERS: Mutex<()> = Mutex::new(());

fn tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wan-memory-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn umt5_is_released_before_the_dit_loads_and_a_cached_prompt_never_loads_it() {
    let _lock = MLX_COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(fx) = common::fixtures_dir() else {
        return;
    };
    let dir = fx.join("checkpoints/ti2v_tiny");
    let ck = wan::pipeline::check_folder(&dir, wan::config::Task::Ti2v5B).unwrap();
    let params = GenerateParams {
        task: wan::config::Task::Ti2v5B,
        prompt: "A red fox runs through fresh snow.".into(),
        negative_prompt: Some("blurry".into()),
        size: (96, 64),
        frame_num: 5,
        sample_steps: 2,
        sample_shift: 5.0,
        guide_scale: (5.0, 5.0),
        solver: SolverKind::Unipc,
        seed: 3,
        image: None,
        step_cache: Default::default(),
        lora: None,
    };
    let cache_dir = tmp("t5cache");
    let cache = ContextCache::new(&cache_dir, 8);
    let machine = Machine {
        bytes: 16 << 30,
        backend: Backend::current(),
    };
    let report = phases::plan_for(
        &ck,
        &params,
        machine,
        &Overrides::default(),
        Some(&cache),
        false,
    )
    .unwrap();
    assert!(report.fits && !report.plan.text_from_cache, "{report:?}");
    // umT5's weight bytes, independently of the pipeline: every parameter in the plan's
    // dtype (T5Encoder::load casts them all).
    let t5 = wan::t5::T5Config::infer(ck.t5_source().unwrap().as_ref()).unwrap();
    let src = ck.t5_source().unwrap();
    let n: u64 = src
        .tensor_names()
        .iter()
        .map(|k| {
            src.tensor_shape(k)
                .unwrap()
                .iter()
                .map(|&d| d as u64)
                .product::<u64>()
        })
        .sum();
    assert_eq!(n, t5.num_params());
    let t5_bytes = n * wan::quant::dtype_bytes(report.plan.t5_dtype) as u64;

    let run = |plan: wan::memory::Plan| {
        let opts = PhasedOptions {
            plan,
            preview_cache: None,
            context_cache: Some(ContextCache::new(&cache_dir, 8)),
            noise: None,
        };
        phases::generate(&ck, &params, opts, &mut |_| {}, &CancelToken::new()).unwrap()
    };
    let (video, first, rec) = run(report.plan.clone());
    assert!(!rec.context_from_cache);
    let text = rec.text_active_bytes.expect("umT5 was loaded");
    assert!(
        text >= rec.before_dit_active_bytes + t5_bytes,
        "active with umT5 {text}, before the DiT {}, umT5 weights {t5_bytes}",
        rec.before_dit_active_bytes
    );
    // Nothing of umT5 is left when the DiT is read: what remains is the two contexts.
    let contexts: u64 = [&first.contexts.0, &first.contexts.1]
        .iter()
        .map(|a| a.nbytes() as u64)
        .sum();
    assert!(rec.before_dit_active_bytes < t5_bytes, "{rec:?}");
    assert!(
        rec.before_dit_active_bytes <= contexts * 2 + (1 << 20),
        "{rec:?}"
    );
    let names: Vec<&str> = rec.phases.iter().map(|p| p.phase).collect();
    assert_eq!(names, ["text", "load", "denoise", "decode"]);

    // The same prompt again: both contexts from the cache, umT5 never loaded, same clip.
    let again = phases::plan_for(
        &ck,
        &params,
        machine,
        &Overrides::default(),
        Some(&cache),
        false,
    )
    .unwrap();
    assert!(again.plan.text_from_cache);
    assert_eq!(again.phases["text"], 0);
    let (video2, second, rec2) = run(again.plan);
    assert!(rec2.context_from_cache, "{rec2:?}");
    assert!(rec2.text_active_bytes.is_none(), "{rec2:?}");
    // Nothing was loaded (or released) in the text phase.
    assert_eq!(rec2.phases[0].peak_bytes, rec2.phases[0].active_after_bytes);
    assert_eq!(common::max_diff(&first.contexts.0, &second.contexts.0), 0.0);
    assert_eq!(common::max_diff(&video.frames, &video2.frames), 0.0);
    std::fs::remove_dir_all(&cache_dir).unwrap();
}

/// Predicted vs measured peak for the calibration points at reduced width (the same
/// formulas and copy counts as the full-size points in README), within ±15 %.
#[test]
fn the_memory_model_predicts_measured_peaks_within_15_percent() {
    let _lock = MLX_COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let k = Backend::current().constants();
    let points = wan::memory::calibrate::reduced_points();
    assert!(points.len() >= 6);
    let mut lines = Vec::new();
    for p in &points {
        let c = p.calibrate(k).unwrap();
        lines.push(format!(
            "{}: measured {} predicted {} ({:+.1} %)",
            c.name,
            c.measured_peak_bytes,
            c.predicted_peak_bytes,
            100.0 * c.error
        ));
        assert!(c.error.abs() <= 0.15, "{}", lines.join("\n"));
    }
    eprintln!("{}", lines.join("\n"));
}
