//! Parity cases `sched_unipc` / `sched_dpmpp`: the official synthetic sampling loop
//! `v_i = 0.3·x + r_i; x = step(v_i, t_i, x)` for every run tag in the file.
use mlx_rs::Array;
use mlx_rs::ops::indexing::IndexOp;

use crate::error::{Error, Result};
use crate::fixture::{Check, Fixture, compare, compare_abs, compare_exact};
use crate::pipeline::SolverKind;
use crate::solvers::Solver;

/// README: samples / x0 ≤ 1e-5, sigmas 1e-6 absolute, timesteps exact.
const TOL_SAMPLE: f64 = 1e-5;
const TOL_SIGMA: f64 = 1e-6;

pub fn sched(fx: &Fixture, kind: SolverKind) -> Result<Vec<Check>> {
    let runs = fx
        .cfg("runs")?
        .as_object()
        .ok_or_else(|| Error::format(&fx.path, "config.runs is not an object"))?;
    let mut checks = Vec::new();
    for (tag, run) in runs {
        let num = |k: &str| {
            run.get(k)
                .and_then(|v| v.as_f64())
                .ok_or_else(|| Error::format(&fx.path, format!("config.runs.{tag}.{k} missing")))
        };
        let steps = num("steps")? as usize;
        let shift = num("shift")?;
        let mut solver = Solver::new(kind, steps, shift)?;

        let want_t = fx.get_vec_i64(&format!("output/{tag}/timesteps"))?;
        checks.push(compare_exact(
            &format!("output/{tag}/timesteps"),
            solver.timesteps(),
            &want_t,
            vec![want_t.len() as i32],
        ));
        let sig = &solver.schedule().sigmas;
        checks.push(compare_abs(
            &format!("output/{tag}/sigmas"),
            &Array::from_slice(sig, &[sig.len() as i32]),
            &fx.get(&format!("output/{tag}/sigmas"))?,
            TOL_SIGMA,
        )?);

        let mut x = fx.get_f32(&format!("input/{tag}/x_init"))?;
        let r = fx.get_f32(&format!("input/{tag}/r"))?;
        let mut samples = Vec::with_capacity(steps);
        let mut x0s = Vec::with_capacity(steps);
        let mut vs = Vec::with_capacity(steps);
        for i in 0..steps {
            let v = x.multiply(Array::from_f32(0.3))?.add(r.index(i as i32))?;
            let out = solver.step(&v, i, &x)?;
            mlx_rs::transforms::eval([&out.sample, &out.x0])?;
            x = out.sample;
            samples.push(x.clone());
            x0s.push(out.x0);
            vs.push(v);
        }
        for (name, got) in [
            (format!("output/{tag}/samples"), samples),
            (format!("inter/{tag}/x0_pred"), x0s),
            (format!("inter/{tag}/model_output"), vs),
        ] {
            if fx.has(&name) {
                let got = mlx_rs::ops::stack(&got, 0)?;
                checks.push(compare(&name, &got, &fx.get(&name)?, TOL_SAMPLE)?);
            }
        }
    }
    Ok(checks)
}
