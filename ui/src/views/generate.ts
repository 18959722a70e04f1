// Generate view: the form (validated here and again in Rust), image drop for
// image→video, the queue, progress with ETA, live previews, the finished clip.
import { el, byId } from "../dom";
import {
  asAppError,
  dialogs,
  ipc,
  type GenerateParams,
  type ImageInfo,
  type JobEvent,
  type QueueSnapshot,
  type LoraSpec,
  type TaskPreset,
} from "../ipc";
import * as form from "../form";
import * as speed from "../speed";
import { PreviewPlayer } from "../preview";
import { playClip } from "../clip";

const STAGE_TEXT: Record<string, string> = {
  load_models: "Loading models…",
  encode_text: "Encoding the prompt…",
  encode_image: "Encoding the image…",
  denoise: "Denoising…",
  decode: "Decoding video…",
  done: "Saving…",
};

export class GenerateView {
  private presets: TaskPreset[] = [];
  private image: ImageInfo | null = null;
  private lora: LoraSpec | null = null;
  private player: PreviewPlayer;

  constructor(
    private root: HTMLElement,
    private onFinished: () => void,
  ) {
    root.append(
      el(
        "form",
        { id: "gen-form", novalidate: true },
        el("label", { for: "prompt", text: "Prompt" }),
        el("textarea", { id: "prompt", rows: 3, placeholder: "Describe the video…" }),
        el("label", { for: "negative", text: "Negative prompt" }),
        el("textarea", { id: "negative", rows: 2 }),
        el(
          "div",
          { class: "row" },
          field("Task", el("select", { id: "task" })),
          field("Size", el("select", { id: "size" })),
          field("Width", el("input", { id: "width", type: "number", step: 16, min: 16 })),
          field("Height", el("input", { id: "height", type: "number", step: 16, min: 16 })),
        ),
        el(
          "div",
          { class: "row" },
          field("Frames (4n+1)", el("input", { id: "frames", type: "number", step: 4, min: 1 })),
          el("span", { id: "duration", class: "hint" }),
          field("Steps", el("input", { id: "steps", type: "number", min: 1, max: 200 })),
          field("Guidance", el("input", { id: "guidance", type: "number", step: 0.5, min: 0 })),
          field("Guidance (high noise)", el("input", { id: "guidance-high", type: "number", step: 0.5, min: 0 })),
          field("Shift", el("input", { id: "shift", type: "number", step: 0.5, min: 0.5 })),
          field(
            "Solver",
            el(
              "select",
              { id: "solver" },
              el("option", { value: "unipc", text: "UniPC (default)" }),
              el("option", { value: "dpm++", text: "DPM++" }),
              el("option", { value: "euler", text: "Euler" }),
            ),
          ),
          field("Seed", el("input", { id: "seed", type: "number", min: 0 })),
          el("button", { id: "seed-random", type: "button", text: "🎲", title: "Random seed" }),
        ),
        speed.speedRow(field),
        el(
          "div",
          { id: "image-zone", class: "dropzone" },
          el("span", { id: "image-hint", text: "Drop an image here for image→video, or " }),
          el("button", { id: "image-pick", type: "button", text: "choose…" }),
          el("img", { id: "image-preview", hidden: true, alt: "reference image" }),
          el("span", { id: "image-output-size", class: "hint" }),
          el("button", { id: "image-clear", type: "button", text: "Remove image", hidden: true }),
        ),
        el("div", { id: "memory", class: "hint" }),
        el("ul", { id: "errors", class: "errors" }),
        el("button", { id: "generate", type: "submit", class: "primary", text: "Generate" }),
        // The memory plan, next to Generate: "≈ 11.8 GB of 16.0 GB · q8 · tiled decode".
        el("span", { id: "plan", class: "hint plan" }),
      ),
      el(
        "aside",
        { id: "jobs" },
        el("h3", { text: "Now" }),
        el("div", { id: "progress-text", text: "Idle" }),
        el("progress", { id: "progress", max: 1, value: 0 }),
        el("ul", { id: "job-warnings", class: "hint warnings" }),
        el("canvas", { id: "preview", width: 64, height: 64 }),
        el("button", { id: "cancel", type: "button", text: "Cancel", disabled: true }),
        el("video", { id: "result", controls: true, loop: true, hidden: true }),
        el("h3", { text: "Queue" }),
        el("ol", { id: "queue" }),
      ),
    );
    this.player = new PreviewPlayer(byId(root, "preview"));
  }

  private $<T extends HTMLElement = HTMLInputElement>(id: string): T {
    return byId<T>(this.root, id);
  }

  async init(): Promise<void> {
    const [presets, neg, settings] = await Promise.all([
      ipc.taskPresets(),
      ipc.defaultNegativePrompt(),
      ipc.getSettings(),
    ]);
    this.presets = presets;
    const task = this.$<HTMLSelectElement>("task");
    for (const p of presets) task.append(el("option", { value: p.task, text: p.task }));
    this.$<HTMLTextAreaElement>("negative").value = neg;
    this.$<HTMLTextAreaElement>("negative").dataset.default = neg;
    this.load(settings.last_params ?? form.defaults(presets[0]));
    task.addEventListener("change", () => this.load(form.defaults(this.preset(), this.$<HTMLTextAreaElement>("prompt").value)));
    this.$<HTMLSelectElement>("size").addEventListener("change", () => this.sizeChanged());
    this.$("seed-random").addEventListener("click", () => {
      this.$("seed").value = String(form.randomSeed());
    });
    this.$("image-pick").addEventListener("click", async () => {
      const p = await dialogs.pickImage().catch(() => null);
      if (p) await this.setImage(p);
    });
    this.$("image-clear").addEventListener("click", () => this.clearImage());
    this.$("fast-preset").addEventListener("click", async () => {
      const path = await dialogs.pickLora().catch(() => null);
      if (path) this.load(speed.fastPreset(this.params(), speed.loraFor(path)));
    });
    this.$("lora-clear").addEventListener("click", () => this.setLora(null));
    this.$("gen-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit();
    });
    this.$("gen-form").addEventListener("input", () => this.refresh());
    this.$("gen-form").addEventListener("change", () => this.refresh());
    // Drops land anywhere on the window; only act while this view is visible.
    await dialogs
      .onFileDrop((paths) => {
        if (!this.root.hidden && paths[0]) void this.setImage(paths[0]);
      })
      .catch(() => undefined);
    await ipc.onQueueChanged((s) => this.showQueue(s));
    this.showQueue(await ipc.queueSnapshot());
  }

  private preset(): TaskPreset {
    const t = this.$<HTMLSelectElement>("task").value;
    return this.presets.find((p) => p.task === t) ?? this.presets[0];
  }

  /** Put `p` into the form (task defaults, last run or a gallery re-run). */
  load(p: GenerateParams): void {
    this.$<HTMLSelectElement>("task").value = p.task;
    const preset = this.preset();
    const size = this.$<HTMLSelectElement>("size");
    size.replaceChildren(
      ...preset.sizes.map(([w, h]) => el("option", { value: `${w}*${h}`, text: `${w}×${h}` })),
      el("option", { value: "custom", text: "Custom…" }),
    );
    const key = `${p.size[0]}*${p.size[1]}`;
    size.value = preset.sizes.some(([w, h]) => `${w}*${h}` === key) ? key : "custom";
    this.$("width").value = String(p.size[0]);
    this.$("height").value = String(p.size[1]);
    this.$("width").step = String(preset.size_multiple[0]);
    this.$("height").step = String(preset.size_multiple[1]);
    this.$<HTMLTextAreaElement>("prompt").value = p.prompt;
    const neg = this.$<HTMLTextAreaElement>("negative");
    neg.value = p.negative_prompt ?? neg.dataset.default ?? "";
    this.$("frames").value = String(p.frame_num);
    this.$("steps").value = String(p.sample_steps);
    this.$("shift").value = String(p.sample_shift);
    this.$("guidance").value = String(p.guide_scale[0]);
    this.$("guidance-high").value = String(p.guide_scale[1]);
    this.$("guidance-high").closest("label")!.hidden = preset.guide_scale[0] === preset.guide_scale[1];
    this.$<HTMLSelectElement>("solver").value = p.solver;
    this.$("seed").value = String(p.seed);
    this.$<HTMLSelectElement>("step-cache").value = (p.step_cache ?? "off").split(":")[0];
    this.setLora(p.lora ?? null);
    this.$("image-zone").hidden = !preset.accepts_image;
    if (p.image) void this.setImage(p.image);
    else this.clearImage();
    this.sizeChanged();
  }

  private sizeChanged(): void {
    const v = this.$<HTMLSelectElement>("size").value;
    const custom = v === "custom";
    this.$("width").closest("label")!.hidden = !custom;
    this.$("height").closest("label")!.hidden = !custom;
    if (!custom) {
      const [w, h] = v.split("*");
      this.$("width").value = w;
      this.$("height").value = h;
    }
    this.refresh();
  }

  /** The form as GenerateParams. */
  params(): GenerateParams {
    const num = (id: string) => Number(this.$(id).value);
    const neg = this.$<HTMLTextAreaElement>("negative");
    const preset = this.preset();
    const g = num("guidance");
    const same = preset.guide_scale[0] === preset.guide_scale[1];
    const cache = this.$<HTMLSelectElement>("step-cache").value;
    return {
      task: preset.task,
      prompt: this.$<HTMLTextAreaElement>("prompt").value,
      negative_prompt: neg.value === neg.dataset.default ? null : neg.value,
      size: [num("width"), num("height")],
      frame_num: num("frames"),
      sample_steps: num("steps"),
      sample_shift: num("shift"),
      guide_scale: [g, same ? g : num("guidance-high")],
      solver: this.$<HTMLSelectElement>("solver").value as GenerateParams["solver"],
      seed: num("seed"),
      image: this.image?.path ?? null,
      // Speed settings travel only when used (older records have none).
      ...(cache !== "off" ? { step_cache: cache } : {}),
      ...(this.lora ? { lora: this.lora } : {}),
    };
  }

  private setLora(l: LoraSpec | null): void {
    this.lora = l;
    const path = l?.all ?? l?.high ?? l?.low ?? "";
    this.$("lora-name").textContent = l ? `LoRA: ${path.split(/[\\/]/).pop()} ×${l.scale}` : "";
    this.$("lora-clear").hidden = !l;
  }

  private estimateTimer: ReturnType<typeof setTimeout> | null = null;

  /** Re-validate and update the hints (duration, output size, memory). */
  refresh(): string[] {
    const p = this.params();
    const preset = this.preset();
    this.$("duration").textContent = `${form.duration(p.frame_num, preset.fps).toFixed(2)} s at ${preset.fps} fps`;
    if (this.image) {
      const out = form.imageOutputSize(p.task, [this.image.width, this.image.height], p.size);
      this.$("image-output-size").textContent = out
        ? `Output: ${out[0]}×${out[1]} (from the image's aspect ratio)`
        : "This image's aspect ratio is too extreme for this size's area: choose a larger size.";
    }
    const errs = form.validate(p, preset);
    this.$("errors").replaceChildren(...errs.map((e) => el("li", { text: e })));
    this.$<HTMLButtonElement>("generate").disabled = errs.length > 0;
    if (this.estimateTimer) clearTimeout(this.estimateTimer);
    if (!errs.length) this.estimateTimer = setTimeout(() => void this.estimate(p), 250);
    return errs;
  }

  /** The memory plan line next to Generate and, below the form, its phases or why no
   *  plan fits (Rust refuses such a run when queued). */
  private async estimate(p: GenerateParams): Promise<void> {
    const m = this.$("memory");
    const line = this.$("plan");
    try {
      const e = await ipc.memoryEstimate(p);
      line.textContent = e.summary;
      line.classList.toggle("bad", !e.fits);
      m.classList.toggle("bad", !e.fits);
      m.textContent = e.fits
        ? `Memory plan: ${Object.entries(e.phases)
            .map(([phase, b]) => `${phase} ${form.formatBytes(b)}`)
            .join(" · ")}`
        : `Does not fit: ${e.reason ?? ""}`;
    } catch (err) {
      line.textContent = "";
      m.textContent = asAppError(err).message;
    }
  }

  async setImage(path: string): Promise<void> {
    try {
      this.image = await ipc.readImage(path);
    } catch (e) {
      this.$("errors").replaceChildren(el("li", { text: asAppError(e).message }));
      return;
    }
    const img = this.$<HTMLImageElement>("image-preview");
    img.src = this.image.data_url;
    img.hidden = false;
    this.$("image-clear").hidden = false;
    this.$("image-hint").textContent = `Image→video: ${this.image.width}×${this.image.height} `;
    this.refresh();
  }

  private clearImage(): void {
    this.image = null;
    this.$<HTMLImageElement>("image-preview").hidden = true;
    this.$("image-clear").hidden = true;
    this.$("image-output-size").textContent = "";
    this.$("image-hint").textContent = "Drop an image here for image→video, or ";
    this.refresh();
  }

  async submit(): Promise<number | null> {
    if (this.refresh().length) return null;
    const p = this.params();
    // Events can arrive before `enqueue` resolves: the job id is filled in later.
    const job = { id: -1 };
    try {
      job.id = await ipc.enqueue(p, (e) => this.onEvent(job, e));
      return job.id;
    } catch (e) {
      const err = asAppError(e);
      this.$("errors").replaceChildren(el("li", { text: err.message, "data-code": err.code }));
      return null;
    }
  }

  private current: { id: number } | null = null;

  onEvent(job: { id: number }, e: JobEvent): void {
    const text = this.$("progress-text");
    const bar = this.$<HTMLProgressElement>("progress");
    const cancel = this.$<HTMLButtonElement>("cancel");
    switch (e.kind) {
      case "started":
        this.current = job;
        bar.value = 0;
        text.textContent = "Starting…";
        cancel.disabled = false;
        cancel.onclick = () => void ipc.cancelJob(job.id).catch(() => undefined);
        this.$("result").hidden = true;
        this.$("job-warnings").replaceChildren();
        break;
      case "stage":
        text.textContent = STAGE_TEXT[e.stage] ?? e.stage;
        break;
      case "step":
        bar.value = e.step / e.total;
        text.textContent = `Step ${e.step}/${e.total} · ${form.formatSeconds(e.elapsed_s)} elapsed · ETA ${form.formatSeconds(e.eta_s)}`;
        if (e.preview) this.player.show(e.preview, e.sent_ms);
        break;
      case "decode":
        text.textContent = `Decoding ${e.done}/${e.total}…`;
        break;
      case "warning":
        this.$("job-warnings").append(el("li", { text: e.message }));
        break;
      case "finished": {
        this.done(`Done in ${form.formatSeconds(e.clip.record.wall_s)}`);
        bar.value = 1;
        const v = this.$<HTMLVideoElement>("result");
        v.poster = ipc.fileUrl(e.clip.poster);
        playClip(v, e.clip.clip);
        v.hidden = false;
        this.onFinished();
        break;
      }
      case "failed":
        this.done(`Failed: ${e.error.message}`);
        break;
      case "cancelled":
        if (this.current === job) this.done("Cancelled");
        break;
    }
  }

  private done(msg: string): void {
    this.$("progress-text").textContent = msg;
    this.$<HTMLButtonElement>("cancel").disabled = true;
    this.player.stop();
    this.current = null;
  }

  showQueue(s: QueueSnapshot): void {
    const badge = document.getElementById("queue-badge");
    const n = s.pending.length + (s.running ? 1 : 0);
    if (badge) badge.textContent = n ? `${n} job${n > 1 ? "s" : ""}` : "";
    this.$("queue").replaceChildren(
      ...s.pending.map((j, i) =>
        el(
          "li",
          { "data-job": j.id },
          el("span", {
            text:
              j.kind === "convert"
                ? j.prompt
                : `${j.prompt.slice(0, 40)} · ${j.size[0]}×${j.size[1]} · ${j.steps} steps`,
          }),
          button("↑", "Move up", () => void ipc.moveJob(j.id, Math.max(0, i - 1)), i === 0),
          button("×", "Remove", () => void ipc.cancelJob(j.id)),
        ),
      ),
    );
  }
}

function field(label: string, input: HTMLElement): HTMLLabelElement {
  return el("label", { class: "field" }, el("span", { text: label }), input);
}

function button(text: string, title: string, f: () => void, disabled = false): HTMLButtonElement {
  const b = el("button", { type: "button", text, title, disabled });
  b.addEventListener("click", f);
  return b;
}
