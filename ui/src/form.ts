// Pure form logic (no DOM, no IPC): the UI half of validation, durations, the output
// size an image run will use. Mirrors wan::config and the official size rules.
import type { GenerateParams, TaskPreset } from "./ipc";

export const MAX_PROMPT_CHARS = 4000;
export const MAX_PIXELS = 1920 * 1088;
export const MAX_FRAMES = 241;
/** At most this many variations per Generate. */
export const MAX_VARIATIONS = 16;
/** Prompts kept in the history (as in Rust's settings). */
export const HISTORY_LEN = 50;

/** Seconds of video for `frames` at `fps`. */
export function duration(frames: number, fps: number): number {
  return fps > 0 ? frames / fps : 0;
}

/** Nearest valid 4n+1 frame count (≥1). */
export function snapFrames(n: number): number {
  if (!Number.isFinite(n) || n < 1) return 1;
  return Math.round((n - 1) / 4) * 4 + 1;
}

export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/** Every problem with `p` for `preset`, as messages (empty = valid). */
export function validate(p: GenerateParams, preset: TaskPreset): string[] {
  const errs: string[] = [];
  if (p.prompt.trim() === "") errs.push("The prompt is empty.");
  if (p.prompt.length > MAX_PROMPT_CHARS || (p.negative_prompt?.length ?? 0) > MAX_PROMPT_CHARS)
    errs.push(`Prompts are limited to ${MAX_PROMPT_CHARS} characters.`);
  const [w, h] = p.size;
  const [mw, mh] = preset.size_multiple;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0) || w % mw || h % mh)
    errs.push(`Size must be a multiple of ${mw}×${mh}.`);
  else if (w * h > MAX_PIXELS) errs.push("Size is larger than 1920×1088.");
  if (!Number.isInteger(p.frame_num) || p.frame_num < 1 || (p.frame_num - 1) % 4)
    errs.push("Frames must be 4n+1 (1, 5, 9, …, 81, 121).");
  else if (p.frame_num > MAX_FRAMES) errs.push(`At most ${MAX_FRAMES} frames.`);
  if (!Number.isInteger(p.sample_steps) || p.sample_steps < 1 || p.sample_steps > 200)
    errs.push("Steps must be between 1 and 200.");
  if (!(p.sample_shift > 0 && p.sample_shift <= 100)) errs.push("Shift must be in (0, 100].");
  if (!p.guide_scale.every((g) => Number.isFinite(g) && g >= 0 && g <= 30))
    errs.push("Guidance must be between 0 and 30.");
  if (preset.needs_image && !p.image) errs.push(`${p.task} needs an image.`);
  if (!preset.accepts_image && p.image) errs.push(`${p.task} is text-only: remove the image.`);
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > Number.MAX_SAFE_INTEGER)
    errs.push("The seed must be a whole number ≥ 0.");
  return errs;
}

/** Problems with a variations count `n` starting at `seed` (empty = valid). */
export function validateVariations(n: number, seed: number): string[] {
  if (!Number.isInteger(n) || n < 1 || n > MAX_VARIATIONS) return [`Variations must be between 1 and ${MAX_VARIATIONS}.`];
  if (Number.isInteger(seed) && seed > Number.MAX_SAFE_INTEGER - (n - 1)) return ["The seed is too large for that many variations."];
  return [];
}

/** The seeds of `n` variations: `seed`, `seed + 1`, … (n ≥ 1). */
export function variationSeeds(seed: number, n: number): number[] {
  return Array.from({ length: Math.max(1, Math.floor(n) || 1) }, (_, i) => seed + i);
}

/**
 * The output (W, H) a run with an image will use: with an image only the area of the
 * chosen size counts (official behaviour). ti2v-5B: `best_output_size` with multiple 32;
 * i2v-A14B: latent grid from the aspect ratio (multiple 16). `null` when the official
 * rules cannot fit the image to the area (they divide by zero; Rust refuses the run).
 */
export function imageOutputSize(
  task: string,
  image: [number, number],
  size: [number, number],
): [number, number] | null {
  const out = officialSize(task, image, size);
  return out.every((v) => Number.isFinite(v) && v > 0) ? out : null;
}

function officialSize(task: string, image: [number, number], size: [number, number]): [number, number] {
  const [iw, ih] = image;
  const area = size[0] * size[1];
  if (task === "i2v-A14B") {
    const ar = ih / iw;
    const latH = Math.floor(Math.floor(Math.sqrt(area * ar) / 8) / 2) * 2;
    const latW = Math.floor(Math.floor(Math.sqrt(area / ar) / 8) / 2) * 2;
    return [latW * 8, latH * 8];
  }
  const d = 32;
  const ratio = iw / ih;
  const ow = Math.sqrt(area * ratio);
  const oh = area / ow;
  const ow1 = Math.floor(ow / d) * d;
  const oh1 = Math.floor(area / ow1 / d) * d;
  const oh2 = Math.floor(oh / d) * d;
  const ow2 = Math.floor(area / oh2 / d) * d;
  const dev = (w: number, h: number) => Math.max(w / h / ratio, ratio / (w / h));
  return dev(ow1, oh1) < dev(ow2, oh2) ? [ow1, oh1] : [ow2, oh2];
}

/** Defaults of a task as form values. */
export function defaults(preset: TaskPreset, prompt = ""): GenerateParams {
  return {
    task: preset.task,
    prompt,
    negative_prompt: null,
    size: preset.sizes[0] ?? [preset.size_multiple[0] * 8, preset.size_multiple[1] * 8],
    frame_num: preset.frame_num,
    sample_steps: preset.sample_steps,
    sample_shift: preset.sample_shift,
    guide_scale: preset.guide_scale,
    solver: "unipc",
    seed: randomSeed(),
    image: null,
  };
}

export function formatBytes(b: number): string {
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}
