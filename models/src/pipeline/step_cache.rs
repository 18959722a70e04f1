//! Step caching: skip a DiT evaluation when the previous one predicts it well enough.
//!
//! **MagCache** (Ma et al. 2025, arXiv 2506.09045) reuses the residual of the block stack
//! (`blocks(h) − h`, token space) of the last computed step: the skipped step still runs the
//! stem (patch/time embedding) and the head on its own input and timestep. Whether to skip
//! comes from a per-step *magnitude ratio* table calibrated offline on the official model
//! (`‖r_t‖/‖r_{t−1}‖`, averaged): multiply the ratios since the last computed step, add
//! `|1 − product|` to an accumulated error, skip while that error stays below the threshold
//! and at most `K` steps in a row; the first `retention` fraction of steps (per expert for
//! A14B) always computes. Cond and uncond keep separate tables, accumulators and residuals,
//! as upstream (their decisions may differ; a step then runs only the computed branch).
//!
//! **EasyCache** (Zhou et al. 2025, arXiv 2507.02860) needs no table: at computed steps it
//! measures the transformation rate `k = mean|Δoutput| / mean|Δinput|`; at other steps it adds
//! `k · mean|x_t − x_{t−1}| / mean|last output|` to an accumulated error and reuses the last
//! transformation `output − input` (latent space: `v ≈ x_t + (v_c − x_c)`) while the error
//! stays below the threshold. The first `ret_steps` steps and the last step always compute;
//! the cond branch decides for both branches, as upstream.
//!
//! A14B: both caches are reset at the expert switch (the other expert's residuals and rates
//! say nothing about this one), so the first low-noise step always computes.
//!
//! **How a reused output enters the solver:** exactly like a computed one. The reused velocity
//! goes through classifier-free guidance, then `Solver::step`; UniPC converts it to its x0
//! prediction, stores it as the newest entry of its multistep history and uses it in the
//! corrector of the next step and in the predictor — nothing marks it as approximate, as in
//! the upstream implementations (which patch the model's forward, below the scheduler).
//!
//! Off by default, so every parity result holds; `magcache:0` computes every step and is
//! bit-identical to off.
use std::fmt;
use std::str::FromStr;

use mlx_rs::Array;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The step-cache setting of a generation (`generate --step_cache`), as text:
/// `off`, `magcache[:THRESH[:K[:RETENTION]]]`, `easycache[:THRESH[:RET_STEPS]]`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum StepCache {
    #[default]
    Off,
    MagCache {
        /// Upper bound of the accumulated error (upstream's recommended 0.06 by default).
        threshold: f64,
        /// Most consecutive skips (upstream `magcache_K`, default 2).
        k: usize,
        /// Fraction of steps that always compute; `None`: upstream's per-task value
        /// (ti2v-5B 0.2, t2v-A14B 0.4, i2v-A14B 0.1).
        retention: Option<f64>,
    },
    EasyCache {
        /// Upper bound of the accumulated error; `None`: upstream's per-task value (ti2v-5B
        /// 0.05, A14B 0.06).
        threshold: Option<f64>,
        /// Leading steps that always compute (upstream default 7).
        ret_steps: usize,
    },
}

impl fmt::Display for StepCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepCache::Off => write!(f, "off"),
            StepCache::MagCache {
                threshold,
                k,
                retention,
            } => {
                write!(f, "magcache:{threshold}:{k}")?;
                match retention {
                    Some(r) => write!(f, ":{r}"),
                    None => Ok(()),
                }
            }
            StepCache::EasyCache {
                threshold,
                ret_steps,
            } => match threshold {
                Some(t) => write!(f, "easycache:{t}:{ret_steps}"),
                None => write!(f, "easycache"),
            },
        }
    }
}

impl From<StepCache> for String {
    fn from(s: StepCache) -> Self {
        s.to_string()
    }
}

impl TryFrom<String> for StepCache {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl FromStr for StepCache {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Input(format!(
                "--step_cache `{s}`: {why} (off, magcache[:THRESH[:K[:RETENTION]]] or \
                 easycache[:THRESH[:RET_STEPS]])"
            ))
        };
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or("");
        let nums: Vec<&str> = parts.collect();
        let num = |i: usize, what: &str| -> Result<Option<f64>> {
            match nums.get(i) {
                None => Ok(None),
                Some(v) => match v.parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                    _ => Err(bad(&format!("{what} must be a number ≥ 0, got `{v}`"))),
                },
            }
        };
        let int = |i: usize, what: &str| -> Result<Option<usize>> {
            match nums.get(i) {
                None => Ok(None),
                Some(v) => v
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| bad(&format!("{what} must be a whole number, got `{v}`"))),
            }
        };
        match kind {
            "off" | "none" if nums.is_empty() => Ok(StepCache::Off),
            "magcache" if nums.len() <= 3 => {
                let retention = num(2, "the retention ratio")?;
                if retention.is_some_and(|r| r > 1.0) {
                    return Err(bad("the retention ratio is a fraction of the steps (0..1)"));
                }
                Ok(StepCache::MagCache {
                    threshold: num(0, "the threshold")?.unwrap_or(0.06),
                    k: int(1, "K")?.unwrap_or(2),
                    retention,
                })
            }
            "easycache" if nums.len() <= 2 => Ok(StepCache::EasyCache {
                threshold: num(0, "the threshold")?,
                ret_steps: int(1, "the retained steps")?.unwrap_or(7),
            }),
            _ => Err(bad("unknown setting")),
        }
    }
}

/// Which upstream calibration a run uses (`Zehong-Ma/MagCache`, see [`mag_ratios`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagTable {
    Ti2vT2v,
    Ti2vI2v,
    T2vA14B,
    I2vA14B,
}

/// The official Wan2.2 MagCache calibration: mean magnitude ratios of consecutive block
/// residuals, interleaved cond/uncond from step 1 (step 0 has none), for the default step
/// counts (ti2v-5B: 50 steps, A14B: 40 steps over both experts). Data from
/// `MagCache4Wan2.2/magcache_generate.py` in github.com/Zehong-Ma/MagCache (commit df81cb18).
pub fn mag_ratios(table: MagTable) -> &'static [f64] {
    match table {
        MagTable::Ti2vT2v => &TI2V_T2V,
        MagTable::Ti2vI2v => &TI2V_I2V,
        MagTable::T2vA14B => &T2V_A14B,
        MagTable::I2vA14B => &I2V_A14B,
    }
}

#[rustfmt::skip]
const TI2V_T2V: [f64; 98] = [
    0.99505, 0.99389, 0.99441, 0.9957, 0.99558, 0.99551, 0.99499, 0.9945, 0.99534, 0.99548,
    0.99468, 0.9946, 0.99463, 0.99458, 0.9946, 0.99453, 0.99408, 0.99404, 0.9945, 0.99441,
    0.99409, 0.99398, 0.99403, 0.99397, 0.99382, 0.99377, 0.99349, 0.99343, 0.99377, 0.99378,
    0.9933, 0.99328, 0.99303, 0.99301, 0.99217, 0.99216, 0.992, 0.99201, 0.99201, 0.99202,
    0.99133, 0.99132, 0.99112, 0.9911, 0.99155, 0.99155, 0.98958, 0.98957, 0.98959, 0.98958,
    0.98838, 0.98835, 0.98826, 0.98825, 0.9883, 0.98828, 0.98711, 0.98709, 0.98562, 0.98561,
    0.98511, 0.9851, 0.98414, 0.98412, 0.98284, 0.98282, 0.98104, 0.98101, 0.97981, 0.97979,
    0.97849, 0.97849, 0.97557, 0.97554, 0.97398, 0.97395, 0.97171, 0.97166, 0.96917, 0.96913,
    0.96511, 0.96507, 0.96263, 0.96257, 0.95839, 0.95835, 0.95483, 0.95475, 0.94942, 0.94936,
    0.9468, 0.94678, 0.94583, 0.94594, 0.94843, 0.94872, 0.96949, 0.97015,
];

#[rustfmt::skip]
const TI2V_I2V: [f64; 98] = [
    0.99512, 0.99559, 0.99559, 0.99561, 0.99595, 0.99577, 0.99512, 0.99512, 0.99546, 0.99534,
    0.99543, 0.99531, 0.99496, 0.99491, 0.99504, 0.99499, 0.99444, 0.99449, 0.99481, 0.99481,
    0.99435, 0.99435, 0.9943, 0.99431, 0.99411, 0.99406, 0.99373, 0.99376, 0.99413, 0.99405,
    0.99363, 0.99359, 0.99335, 0.99331, 0.99244, 0.99243, 0.99229, 0.99229, 0.99239, 0.99236,
    0.99163, 0.9916, 0.99149, 0.99151, 0.99191, 0.99192, 0.9898, 0.98981, 0.9899, 0.98987,
    0.98849, 0.98849, 0.98846, 0.98846, 0.98861, 0.98861, 0.9874, 0.98738, 0.98588, 0.98589,
    0.98539, 0.98534, 0.98444, 0.98439, 0.9831, 0.98309, 0.98119, 0.98118, 0.98001, 0.98,
    0.97862, 0.97859, 0.97555, 0.97558, 0.97392, 0.97388, 0.97152, 0.97145, 0.96871, 0.9687,
    0.96435, 0.96434, 0.96129, 0.96127, 0.95639, 0.95638, 0.95176, 0.95175, 0.94446, 0.94452,
    0.93972, 0.93974, 0.93575, 0.9359, 0.93537, 0.93552, 0.96655, 0.96616,
];

#[rustfmt::skip]
const T2V_A14B: [f64; 78] = [
    1.00124, 1.00155, 0.99822, 0.99851, 0.99696, 0.99687, 0.99703, 0.99732, 0.9966, 0.99679,
    0.99602, 0.99658, 0.99578, 0.99664, 0.99484, 0.9949, 0.99633, 0.996, 0.99659, 0.99683,
    0.99534, 0.99549, 0.99584, 0.99577, 0.99681, 0.99694, 0.99563, 0.99554, 0.9944, 0.99473,
    0.99594, 0.9964, 0.99466, 0.99461, 0.99453, 0.99481, 0.99389, 0.99365, 0.99391, 0.99406,
    0.99354, 0.99361, 0.99283, 0.99278, 0.99268, 0.99263, 0.99057, 0.99091, 0.99125, 0.99126,
    0.65523, 0.65252, 0.98808, 0.98852, 0.98765, 0.98736, 0.9851, 0.98535, 0.98311, 0.98339,
    0.9805, 0.9806, 0.97776, 0.97771, 0.97278, 0.97286, 0.96731, 0.96728, 0.95857, 0.95855,
    0.94385, 0.94385, 0.92118, 0.921, 0.88108, 0.88076, 0.80263, 0.80181,
];

#[rustfmt::skip]
const I2V_A14B: [f64; 78] = [
    0.99191, 0.99144, 0.99356, 0.99337, 0.99326, 0.99285, 0.99251, 0.99264, 0.99393, 0.99366,
    0.9943, 0.9943, 0.99276, 0.99288, 0.99389, 0.99393, 0.99274, 0.99289, 0.99316, 0.9931,
    0.99379, 0.99377, 0.99268, 0.99271, 0.99222, 0.99227, 0.99175, 0.9916, 0.91076, 0.91046,
    0.98931, 0.98933, 0.99087, 0.99088, 0.98852, 0.98855, 0.98895, 0.98896, 0.98806, 0.98808,
    0.9871, 0.98711, 0.98613, 0.98618, 0.98434, 0.98435, 0.983, 0.98307, 0.98185, 0.98187,
    0.98131, 0.98131, 0.9783, 0.97835, 0.97619, 0.9762, 0.97264, 0.9727, 0.97088, 0.97098,
    0.96568, 0.9658, 0.96045, 0.96055, 0.95322, 0.95335, 0.94579, 0.94594, 0.93297, 0.93311,
    0.91699, 0.9172, 0.89174, 0.89202, 0.8541, 0.85446, 0.79823, 0.79902,
];

/// Per-branch ratio sequences `[cond, uncond]` of length `steps` from an interleaved table:
/// step 0 gets 1.0, then the table; other step counts take the nearest calibrated step
/// (`round(i·(n−1)/(steps−1))`, ties to even like numpy), as upstream does.
pub fn ratios_for_steps(table: &[f64], steps: usize) -> [Vec<f64>; 2] {
    let branch = |b: usize| -> Vec<f64> {
        let src: Vec<f64> = std::iter::once(1.0)
            .chain(table.iter().skip(b).step_by(2).copied())
            .collect();
        let n = src.len();
        if steps == n {
            return src;
        }
        if steps <= 1 {
            return vec![src[n - 1]; steps];
        }
        let scale = (n - 1) as f64 / (steps - 1) as f64;
        (0..steps)
            .map(|i| src[((i as f64 * scale).round_ties_even() as usize).min(n - 1)])
            .collect()
    };
    [branch(0), branch(1)]
}

/// What happened to one branch at one step (recorded in the sidecar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    Computed,
    Reused,
}

/// One step of the record: the decision per branch (`uncond` absent without CFG).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub timestep: i64,
    /// A14B: true for the high-noise expert.
    pub high_noise: bool,
    pub cond: Use,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncond: Option<Use>,
}

/// Count of branch evaluations of the DiT in a record (a CFG step computes two).
pub fn dit_evaluations(record: &[StepRecord]) -> usize {
    record
        .iter()
        .map(|r| {
            [Some(r.cond), r.uncond]
                .iter()
                .filter(|u| **u == Some(Use::Computed))
                .count()
        })
        .sum()
}

/// Where the run stands, for the decisions.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub steps: usize,
    /// A14B: steps run by the high-noise expert (they come first); `None` for one model.
    pub high_steps: Option<usize>,
    /// The calibration for MagCache.
    pub table: MagTable,
}

/// MagCache's accumulators for one branch.
#[derive(Debug, Clone)]
struct MagBranch {
    ratio: f64,
    err: f64,
    skipped: usize,
    residual: Option<Array>,
}

impl Default for MagBranch {
    fn default() -> Self {
        Self {
            ratio: 1.0,
            err: 0.0,
            skipped: 0,
            residual: None,
        }
    }
}

/// EasyCache's state (decided on the cond branch).
#[derive(Default)]
struct EasyState {
    err: f64,
    rate: Option<f64>,
    prev_input: Option<Array>,
    /// Input and cond output at the last computed step.
    computed_input: Option<Array>,
    computed_output: Option<Array>,
    /// `output − input` of the last computed step, per branch.
    transform: [Option<Array>; 2],
}

/// The per-run state of a step cache.
pub struct StepCacheState {
    setting: StepCache,
    schedule: Schedule,
    ratios: [Vec<f64>; 2],
    mag: [MagBranch; 2],
    easy: EasyState,
    /// Expert of the previous step (A14B reset at the switch).
    expert: Option<bool>,
    pub record: Vec<StepRecord>,
}

fn mean_abs(a: &Array) -> Result<f64> {
    Ok(a.abs()?.mean(None)?.item_cast::<f32>() as f64)
}

impl StepCacheState {
    pub fn new(setting: StepCache, schedule: Schedule) -> Self {
        Self::with_table(setting, schedule, mag_ratios(schedule.table))
    }

    /// Like [`Self::new`] with an explicit interleaved ratio table (tests, calibration).
    pub fn with_table(setting: StepCache, schedule: Schedule, table: &[f64]) -> Self {
        Self {
            setting,
            ratios: ratios_for_steps(table, schedule.steps),
            schedule,
            mag: Default::default(),
            easy: EasyState::default(),
            expert: None,
            record: Vec::new(),
        }
    }

    pub fn setting(&self) -> StepCache {
        self.setting
    }

    /// Whether MagCache needs block residuals from the model.
    pub fn wants_residual(&self) -> bool {
        matches!(self.setting, StepCache::MagCache { .. })
    }

    fn retention_default(&self) -> f64 {
        match self.schedule.table {
            MagTable::Ti2vT2v | MagTable::Ti2vI2v => 0.2,
            MagTable::T2vA14B => 0.4,
            MagTable::I2vA14B => 0.1,
        }
    }

    /// Upstream's "always compute" window, in its counter of model calls (`2·step + branch`).
    fn mag_retained(&self, cnt: usize, retention: f64) -> bool {
        let num = 2 * self.schedule.steps;
        let cnt_f = cnt as f64;
        match (self.schedule.high_steps, self.schedule.table) {
            (None, _) => cnt < (num as f64 * retention) as usize,
            (Some(h), MagTable::I2vA14B) => {
                let split = 2 * h;
                cnt < (split as f64 + (num - split) as f64 * retention) as usize
            }
            (Some(h), _) => {
                let split = 2 * h;
                cnt < (split as f64 * retention) as usize
                    || (cnt >= split && cnt_f <= (num - split) as f64 * retention + split as f64)
            }
        }
    }

    /// Start step `i` (timestep `t`, expert `high`) with `branches` (1 or 2) evaluations on
    /// the model input `x`: what each branch does.
    pub fn decide(
        &mut self,
        i: usize,
        t: i64,
        high: bool,
        branches: usize,
        x: &Array,
    ) -> Result<Vec<Use>> {
        if self.expert.is_some_and(|e| e != high) {
            self.mag = Default::default();
            self.easy = EasyState::default();
        }
        self.expert = Some(high);
        let uses = match self.setting {
            StepCache::Off => vec![Use::Computed; branches],
            StepCache::MagCache {
                threshold,
                k,
                retention,
            } => {
                let r = retention.unwrap_or_else(|| self.retention_default());
                (0..branches)
                    .map(|b| {
                        if self.mag_retained(2 * i + b, r) {
                            return Use::Computed;
                        }
                        let m = &mut self.mag[b];
                        m.ratio *= self.ratios[b][i];
                        m.skipped += 1;
                        m.err += (1.0 - m.ratio).abs();
                        if m.err < threshold && m.skipped <= k && m.residual.is_some() {
                            Use::Reused
                        } else {
                            *m = MagBranch {
                                residual: m.residual.take(),
                                ..Default::default()
                            };
                            Use::Computed
                        }
                    })
                    .collect()
            }
            StepCache::EasyCache {
                threshold,
                ret_steps,
            } => {
                let thresh = threshold.unwrap_or(match self.schedule.table {
                    MagTable::Ti2vT2v | MagTable::Ti2vI2v => 0.05,
                    _ => 0.06,
                });
                let e = &mut self.easy;
                let u = if i < ret_steps || i + 1 >= self.schedule.steps {
                    e.err = 0.0;
                    Use::Computed
                } else {
                    match (&e.prev_input, e.rate, &e.computed_output) {
                        (Some(prev), Some(rate), Some(out)) if e.transform[0].is_some() => {
                            let change = mean_abs(&x.subtract(prev)?)?;
                            e.err += rate * change / mean_abs(out)?.max(f64::MIN_POSITIVE);
                            if e.err < thresh {
                                Use::Reused
                            } else {
                                e.err = 0.0;
                                Use::Computed
                            }
                        }
                        _ => Use::Computed,
                    }
                };
                e.prev_input = Some(x.clone());
                vec![u; branches]
            }
        };
        self.record.push(StepRecord {
            step: i,
            timestep: t,
            high_noise: high,
            cond: uses[0],
            uncond: uses.get(1).copied(),
        });
        Ok(uses)
    }

    /// MagCache: the stored block residual of `branch` (`[1, L, D]`) for a reused step.
    pub fn residual(&self, branch: usize) -> Result<&Array> {
        self.mag[branch]
            .residual
            .as_ref()
            .ok_or_else(|| Error::Input("step cache: no residual to reuse".into()))
    }

    /// MagCache: keep the block residual of a computed `branch`.
    pub fn store_residual(&mut self, branch: usize, residual: Array) {
        self.mag[branch].residual = Some(residual);
    }

    /// EasyCache: the reused output of `branch` for input `x` (`x + (v_c − x_c)`).
    pub fn reuse_output(&self, branch: usize, x: &Array) -> Result<Array> {
        let t = self.easy.transform[branch]
            .as_ref()
            .ok_or_else(|| Error::Input("step cache: no transformation to reuse".into()))?;
        Ok(x.add(t)?)
    }

    /// EasyCache: record the computed output `v` of `branch` for input `x` (the cond branch
    /// also updates the transformation rate).
    pub fn store_output(&mut self, branch: usize, x: &Array, v: &Array) -> Result<()> {
        if !matches!(self.setting, StepCache::EasyCache { .. }) {
            return Ok(());
        }
        let e = &mut self.easy;
        if branch == 0 {
            if let (Some(out), Some(inp)) = (&e.computed_output, &e.computed_input) {
                let din = mean_abs(&x.subtract(inp)?)?;
                if din > 0.0 {
                    e.rate = Some(mean_abs(&v.subtract(out)?)? / din);
                }
            }
            e.computed_input = Some(x.clone());
            e.computed_output = Some(v.clone());
        }
        e.transform[branch] = Some(v.subtract(x)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_print() {
        assert_eq!("off".parse::<StepCache>().unwrap(), StepCache::Off);
        assert_eq!(
            "magcache".parse::<StepCache>().unwrap(),
            StepCache::MagCache {
                threshold: 0.06,
                k: 2,
                retention: None
            }
        );
        let m: StepCache = "magcache:0.1:3:0.25".parse().unwrap();
        assert_eq!(m.to_string(), "magcache:0.1:3:0.25");
        assert_eq!(m.to_string().parse::<StepCache>().unwrap(), m);
        let e: StepCache = "easycache:0.05".parse().unwrap();
        assert_eq!(
            e,
            StepCache::EasyCache {
                threshold: Some(0.05),
                ret_steps: 7
            }
        );
        for bad in [
            "fast",
            "magcache:x",
            "magcache:-1",
            "magcache:0.1:2:3",
            "off:1",
            "",
        ] {
            let err = bad.parse::<StepCache>().unwrap_err().to_string();
            assert!(err.contains("--step_cache"), "{bad}: {err}");
        }
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"magcache:0.1:3:0.25\"");
        assert_eq!(serde_json::from_str::<StepCache>(&json).unwrap(), m);
    }

    #[test]
    fn tables_have_the_calibrated_lengths() {
        // 50 steps for ti2v-5B, 40 for A14B: (steps − 1) interleaved pairs
        assert_eq!(mag_ratios(MagTable::Ti2vT2v).len(), 2 * 49);
        assert_eq!(mag_ratios(MagTable::Ti2vI2v).len(), 2 * 49);
        assert_eq!(mag_ratios(MagTable::T2vA14B).len(), 2 * 39);
        assert_eq!(mag_ratios(MagTable::I2vA14B).len(), 2 * 39);
        let [c, u] = ratios_for_steps(mag_ratios(MagTable::Ti2vT2v), 50);
        assert_eq!(
            (c[0], u[0], c[1], u[1], c[49]),
            (1.0, 1.0, 0.99505, 0.99389, 0.96949)
        );
    }

    #[test]
    fn ratios_interpolate_to_the_nearest_calibrated_step() {
        // 5 calibrated steps (1 + 4 pairs) → 3 steps: indices round(i·4/2) = 0, 2, 4;
        // → 4 steps: round(i·4/3) = round(0, 1.33, 2.67, 4) = 0, 1, 3, 4
        let t = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2];
        let [c, u] = ratios_for_steps(&t, 3);
        assert_eq!(c, vec![1.0, 0.7, 0.3]);
        assert_eq!(u, vec![1.0, 0.6, 0.2]);
        let [c, _] = ratios_for_steps(&t, 4);
        assert_eq!(c, vec![1.0, 0.9, 0.5, 0.3]);
        // 9 calibrated steps → 5: i·8/4 = 2i exactly; ties to even: 3 steps of a 4-step
        // table → i·3/2 = 0, 1.5, 3 → 0, 2, 3
        let t4 = [0.9, 0.9, 0.8, 0.8, 0.7, 0.7];
        let [c, _] = ratios_for_steps(&t4, 3);
        assert_eq!(c, vec![1.0, 0.8, 0.7]);
    }

    fn schedule(steps: usize, high: Option<usize>, table: MagTable) -> Schedule {
        Schedule {
            steps,
            high_steps: high,
            table,
        }
    }

    fn run_mag(state: &mut StepCacheState, steps: usize, high: impl Fn(usize) -> bool) -> Vec<Use> {
        let x = Array::from_f32(0.0);
        (0..steps)
            .map(|i| {
                let u = state.decide(i, 1000 - i as i64, high(i), 1, &x).unwrap()[0];
                if u == Use::Computed {
                    state.store_residual(0, Array::from_f32(i as f32));
                }
                u
            })
            .collect()
    }

    #[test]
    fn magcache_follows_the_rule_on_a_hand_made_table() {
        use Use::{Computed as C, Reused as R};
        // 8 steps, cond ratios after step 0: .99 .99 .90 .99 .99 .99 .99; retention 0.25 →
        // calls 2i < 4 always compute: steps 0, 1.
        let t = [
            0.99, 0.99, 0.99, 0.99, 0.90, 0.90, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99,
        ];
        let s = StepCache::MagCache {
            threshold: 0.025,
            k: 2,
            retention: Some(0.25),
        };
        let mut st = StepCacheState::with_table(s, schedule(8, None, MagTable::Ti2vT2v), &t);
        // step 2: ratio .99 → err .01 < .025, 1 skip → R
        // step 3: ratio .99·.90 = .891 → err .01 + .109 → C (reset)
        // step 4: .99 → .01 → R; step 5: .99² = .9801 → .01 + .0199 = .0299 → C
        // step 6: .01 → R; step 7: .0299 → C
        assert_eq!(run_mag(&mut st, 8, |_| false), vec![C, C, R, C, R, C, R, C]);
        // K = 1 and a loose threshold: never two skips in a row
        let s = StepCache::MagCache {
            threshold: 1.0,
            k: 1,
            retention: Some(0.25),
        };
        let mut st = StepCacheState::with_table(s, schedule(8, None, MagTable::Ti2vT2v), &t);
        assert_eq!(run_mag(&mut st, 8, |_| false), vec![C, C, R, C, R, C, R, C]);
        // threshold 0: every step computes
        let s = StepCache::MagCache {
            threshold: 0.0,
            k: 2,
            retention: Some(0.0),
        };
        let mut st = StepCacheState::with_table(s, schedule(8, None, MagTable::Ti2vT2v), &t);
        assert!(run_mag(&mut st, 8, |_| false).iter().all(|u| *u == C));
    }

    #[test]
    fn a14b_state_resets_at_the_expert_switch() {
        use Use::{Computed as C, Reused as R};
        // 10 steps, 5 high + 5 low, ratios all 0.999, loose threshold, K = 2, retention 0
        // (t2v windows: none before the switch; calls 10 ≤ cnt ≤ 10 → step 5 computes).
        let t = [0.999; 18];
        let s = StepCache::MagCache {
            threshold: 1.0,
            k: 2,
            retention: Some(0.0),
        };
        let mut st = StepCacheState::with_table(s, schedule(10, Some(5), MagTable::T2vA14B), &t);
        let got = run_mag(&mut st, 10, |i| i < 5);
        // high: C R R C R — then the switch: counters restart, so the low expert skips
        // twice again before computing (steps 6, 7 reused, 8 computed). Carrying the high
        // expert's count (1 skip at step 4) over would compute at step 7 instead.
        assert_eq!(got, vec![C, R, R, C, R, C, R, R, C, R]);
        // without the reset the low expert would have reused the high expert's residual:
        // the record shows which expert ran each step
        assert!(st.record[..5].iter().all(|r| r.high_noise));
        assert!(st.record[5..].iter().all(|r| !r.high_noise));
        // i2v-A14B retention window: every high-noise step computes
        let mut st = StepCacheState::with_table(s, schedule(10, Some(5), MagTable::I2vA14B), &t);
        let got = run_mag(&mut st, 10, |i| i < 5);
        assert_eq!(&got[..6], &[C, C, C, C, C, C]);
    }

    #[test]
    fn easycache_reuses_while_the_predicted_change_is_small() {
        use Use::{Computed as C, Reused as R};
        let s = StepCache::EasyCache {
            threshold: Some(0.3),
            ret_steps: 2,
        };
        let mut st = StepCacheState::new(s, schedule(7, None, MagTable::Ti2vT2v));
        // input moves by 1 each step, output = 2·input (rate 2), |output| ≈ 20:
        // predicted change per step 2·1/20 = 0.1 → two reuses (0.1, 0.2), third 0.3 → C
        let mut uses = Vec::new();
        for i in 0..7 {
            let x = Array::from_slice(&[10.0 + i as f32], &[1]);
            let u = st.decide(i, 900, false, 2, &x).unwrap();
            assert_eq!(u[0], u[1], "uncond follows cond");
            if u[0] == C {
                for b in 0..2 {
                    let v = x.multiply(Array::from_f32(2.0)).unwrap();
                    st.store_output(b, &x, &v).unwrap();
                }
            } else {
                // reused: x + (v_c − x_c) with the last computed transformation
                let v: Vec<f32> = st.reuse_output(0, &x).unwrap().as_slice().to_vec();
                assert_eq!(v, vec![10.0 + i as f32 + 11.0]);
            }
            uses.push(u[0]);
        }
        // steps 0, 1 retained (rate 2 known after step 1); steps 2–4 reuse with predicted
        // errors 2·1/22 = .09, .18, .27; step 5 would reach .36 ≥ .3 → computes; the last
        // step always computes.
        assert_eq!(uses, vec![C, C, R, R, R, C, C]);
        assert_eq!(
            dit_evaluations(&st.record),
            2 * uses.iter().filter(|u| **u == C).count()
        );
    }
}
