//! Parity case `resize_ti2v`: the official ti2v-5B image preprocessing of PNGs stored in
//! the file (`input/<c>/file`), through the same functions the pipeline runs: loading as
//! Pillow's `convert("RGB")`, `best_output_size`, the LANCZOS resize, the crop, the tensor.
//! Sizes, crop boxes, the size table (its refused rows included), decoded samples, uint8
//! images and tensors are compared exactly; tensors too large to store are checked by their
//! stride-8 subsample, five 32×32 windows and the sha256 of the whole tensor.
use mlx_rs::Array;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare_abs, compare_exact};
use crate::video::image::PngSamples;
use crate::video::{Ti2vPlan, decode_rgb, ti2v_image};

fn exact(name: String, got: &[i64], fx: &Fixture) -> Result<Check> {
    let want = fx.get_vec_i64(&name)?;
    let shape = fx.get(&name)?.shape().to_vec();
    Ok(compare_exact(&name, got, &want, shape))
}

/// `start..end` by `step`, as an index array.
fn indices(start: i32, end: i32, step: usize) -> Array {
    let v: Vec<i32> = (start..end).step_by(step).collect();
    Array::from_slice(&v, &[v.len() as i32])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A check that two hex digests are equal.
fn digest_check(name: &str, got: &str, want: &str) -> Check {
    Check {
        name: name.into(),
        shape: vec![],
        err: if got == want { 0.0 } else { 1.0 },
        tol: 0.0,
        absolute: true,
        note: if got == want {
            "sha256 equal".into()
        } else {
            format!("sha256 {got} ≠ {want}")
        },
    }
}

fn u8s(img: &image::RgbImage) -> Vec<i64> {
    img.as_raw().iter().map(|&b| b as i64).collect()
}

pub fn resize_ti2v(fx: &Fixture) -> Result<Vec<Check>> {
    let multiple = fx.cfg_i64("dw")? as u32;
    if fx.cfg_i64("dh")? as u32 != multiple {
        return Err(Error::Unsupported(
            "resize_ti2v with dw ≠ dh (ti2v-5B uses one multiple)".into(),
        ));
    }
    let cases = fx
        .cfg("cases")?
        .as_array()
        .ok_or_else(|| Error::format(&fx.path, "config.cases is not a list"))?;
    let mut checks = Vec::new();
    for case in cases {
        let c = case["name"]
            .as_str()
            .ok_or_else(|| Error::format(&fx.path, "a case without a name"))?;
        one_case(fx, c, case, multiple, &mut checks)?;
    }
    size_table(fx, multiple, &mut checks)?;
    Ok(checks)
}

fn one_case(
    fx: &Fixture,
    c: &str,
    case: &Value,
    multiple: u32,
    checks: &mut Vec<Check>,
) -> Result<()> {
    let key = |kind: &str, what: &str| format!("{kind}/{c}/{what}");
    let bytes: Vec<u8> = fx
        .get_vec_i64(&key("input", "file"))?
        .into_iter()
        .map(|b| b as u8)
        .collect();
    // The stored samples (Pillow's image before `convert`), then the RGB image.
    if fx.has(&key("inter", "decoded")) {
        let png = PngSamples::decode(&bytes)?;
        let got: Vec<i64> = png.samples.iter().map(|&v| v as i64).collect();
        checks.push(exact(key("inter", "decoded"), &got, fx)?);
        if fx.has(&key("inter", "palette")) {
            let want_n = fx.get(&key("inter", "palette"))?.shape()[0] as usize;
            let got: Vec<i64> = png
                .palette
                .iter()
                .take(want_n)
                .flatten()
                .map(|&v| v as i64)
                .collect();
            checks.push(exact(key("inter", "palette"), &got, fx)?);
        }
    }
    let img = decode_rgb(&bytes)?;
    if fx.has(&key("input", "image")) {
        checks.push(exact(key("input", "image"), &u8s(&img), fx)?);
    } else if let Some(want) = case["rgb_sha256"].as_str() {
        let got = hex(&Sha256::digest(img.as_raw()));
        checks.push(digest_check(&key("input", "image_sha256"), &got, want));
    }

    let max_area = fx.get_vec_i64(&key("input", "max_area"))?[0];
    // The pipeline's own entry point: plan + tensor exactly as `generate --image` gets them.
    let (plan, tensor) = ti2v_image(&img, max_area.max(0) as u64, multiple)?;
    let (ow, oh) = plan.size;
    let (rw, rh) = plan.resize;
    let (x1, y1) = plan.crop;
    checks.push(exact(
        key("output", "size_wh"),
        &[ow as i64, oh as i64],
        fx,
    )?);
    checks.push(exact(
        key("inter", "resize_wh"),
        &[rw as i64, rh as i64],
        fx,
    )?);
    let crop_box = [x1, y1, x1 + ow as i64, y1 + oh as i64];
    checks.push(exact(key("inter", "crop_box"), &crop_box, fx)?);

    let resized = plan.resize(&img);
    if fx.has(&key("inter", "resized")) {
        checks.push(exact(key("inter", "resized"), &u8s(&resized), fx)?);
    }
    let tensor = tensor.reshape(&[3, oh as i32, ow as i32])?;
    if fx.has(&key("output", "image")) {
        let name = key("output", "image");
        checks.push(compare_abs(&name, &tensor, &fx.get(&name)?, 0.0)?);
    }
    if fx.has(&key("output", "image_stride8")) {
        let name = key("output", "image_stride8");
        let sub = tensor
            .take_axis(indices(0, oh as i32, 8), 1)?
            .take_axis(indices(0, ow as i32, 8), 2)?;
        checks.push(compare_abs(&name, &sub, &fx.get(&name)?, 0.0)?);
    }
    if let Some(windows) = case["windows_yx"].as_object() {
        for (wname, yx) in windows {
            let (y, x) = (yx[0].as_i64().unwrap_or(-1), yx[1].as_i64().unwrap_or(-1));
            let name = key("output", &format!("window_{wname}"));
            let want = fx.get(&name)?;
            let (wh, ww) = (want.shape()[1], want.shape()[2]);
            if y < 0 || x < 0 || y + wh as i64 > oh as i64 || x + ww as i64 > ow as i64 {
                return Err(Error::format(
                    &fx.path,
                    format!("{name} lies outside the image"),
                ));
            }
            let (y, x) = (y as i32, x as i32);
            let win = tensor
                .take_axis(indices(y, y + wh, 1), 1)?
                .take_axis(indices(x, x + ww, 1), 2)?;
            checks.push(compare_abs(&name, &win, &want, 0.0)?);
        }
    }
    if let Some(want) = case["output_sha256_f32"].as_str() {
        let planes = tensor
            .to_vec_cast::<f32>()
            .map_err(|e| Error::format(&fx.path, e.to_string()))?;
        let bytes: Vec<u8> = planes.iter().flat_map(|v| v.to_le_bytes()).collect();
        let got = hex(&Sha256::digest(&bytes));
        checks.push(digest_check(&key("output", "image_sha256"), &got, want));
    }
    Ok(())
}

/// `size_table/*`: one official run per (image size, area): the decisions, or `error = 1`
/// where the official code divides by zero (and we refuse).
fn size_table(fx: &Fixture, multiple: u32, checks: &mut Vec<Check>) -> Result<()> {
    if !fx.has("input/size_table/iw") {
        return Ok(());
    }
    let col = |n: &str| fx.get_vec_i64(n);
    let (iw, ih, area) = (
        col("input/size_table/iw")?,
        col("input/size_table/ih")?,
        col("input/size_table/max_area")?,
    );
    let names = [
        "output/size_table/ow",
        "output/size_table/oh",
        "inter/size_table/resize_w",
        "inter/size_table/resize_h",
        "inter/size_table/crop_x1",
        "inter/size_table/crop_y1",
        "output/size_table/error",
    ];
    let mut got: Vec<Vec<i64>> = vec![Vec::new(); names.len()];
    for i in 0..iw.len() {
        let row = match Ti2vPlan::new(
            iw[i].max(0) as u32,
            ih[i].max(0) as u32,
            area[i].max(0) as u64,
            multiple,
        ) {
            Ok(p) => [
                p.size.0 as i64,
                p.size.1 as i64,
                p.resize.0 as i64,
                p.resize.1 as i64,
                p.crop.0,
                p.crop.1,
                0,
            ],
            Err(Error::Input(_)) => [-1, -1, -1, -1, -1, -1, 1],
            Err(e) => return Err(e),
        };
        for (g, v) in got.iter_mut().zip(row) {
            g.push(v);
        }
    }
    for (name, g) in names.iter().zip(&got) {
        checks.push(exact(name.to_string(), g, fx)?);
    }
    Ok(())
}
