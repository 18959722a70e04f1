// Speed settings of the Generate form: step caching and the "Fast (4 steps)" preset, which
// applies a speed LoRA (e.g. Lightning) with the sampler it was distilled for.
import { el } from "./dom";
import type { GenerateParams, LoraSpec } from "./ipc";

/** Lightning ships one LoRA per A14B expert under these names, side by side. */
const EXPERT_FILES = ["high_noise_model.safetensors", "low_noise_model.safetensors"];

/** What to load for a picked file: its folder when it is one half of a Lightning pair. */
export function loraFor(path: string, scale = 1): LoraSpec {
  const sep = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const name = path.slice(sep + 1);
  return { scale, all: EXPERT_FILES.includes(name) && sep > 0 ? path.slice(0, sep) : path };
}

/** The Fast preset: the LoRA plus Euler, 4 steps, shift 5, guidance 1 (no uncond pass). */
export function fastPreset(p: GenerateParams, lora: LoraSpec): GenerateParams {
  return { ...p, lora, solver: "euler", sample_steps: 4, sample_shift: 5, guide_scale: [1, 1] };
}

/** The form row: step cache select, the Fast button, the chosen LoRA and its remove button. */
export function speedRow(field: (label: string, input: HTMLElement) => HTMLElement): HTMLElement {
  return el(
    "div",
    { class: "row", id: "speed" },
    field(
      "Step cache",
      el(
        "select",
        { id: "step-cache", title: "Reuse DiT evaluations across steps (off = the official loop)" },
        el("option", { value: "off", text: "Off" }),
        el("option", { value: "magcache", text: "MagCache (calibrated)" }),
        el("option", { value: "easycache", text: "EasyCache (adaptive)" }),
      ),
    ),
    el("button", {
      id: "fast-preset",
      type: "button",
      text: "Fast (4 steps)…",
      title: "Choose a speed LoRA (Lightning): Euler, 4 steps, shift 5, guidance 1",
    }),
    el("span", { id: "lora-name", class: "hint" }),
    el("button", { id: "lora-clear", type: "button", text: "Remove LoRA", hidden: true }),
  );
}
