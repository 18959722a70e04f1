// Generate view: the composer on the left (prompt with its history, image, settings in
// collapsible groups, variations and the Generate button with its status line), the stage
// on the right (progress, live previews, the finished clip) and the queue below it. The
// form is validated here and again in Rust.
import { el, byId } from "../dom";
import {
  asAppError,
  dialogs,
  ipc,
  type ClipEntry,
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
import { filterHistory } from "../clips";
import { withShortcut } from "../shortcuts";

const STAGE_TEXT: Record<string, string> = {
  load_models: "Loading models…",
  encode_text: "Encoding the prompt…",
  encode_image: "Encoding the image…",
  denoise: "Denoising…",
  decode: "Decoding video…",
  done: "Saving…",
};

/** The clip a continuation starts from, and the image (its last frame) it uses. */
export interface Continuation {
  id: string;
  prompt: string;
  image: string;
}

export class GenerateView {
  private presets: TaskPreset[] = [];
  private image: ImageInfo | null = null;
  private lora: LoraSpec | null = null;
  private player: PreviewPlayer;
  private history: string[] = [];
  private continuation: Continuation | null = null;
  /** The running job (from the queue), whichever window or view queued it. */
  private runningId: number | null = null;

  constructor(
    private root: HTMLElement,
    private onFinished: () => void,
  ) {
    const group = (id: string, title: string, open: boolean, ...body: HTMLElement[]) =>
      el(
        "details",
        { id, class: "group", open },
        el("summary", {}, title, el("span", { class: "summary-value" })),
        el("div", { class: "group-body" }, ...body),
      );
    root.append(
      el(
        "form",
        { id: "gen-form", novalidate: true },
        el(
          "div",
          { class: "composer-scroll" },
          el(
            "div",
            { class: "history" },
            el(
              "div",
              { class: "prompt-head" },
              el("label", { for: "prompt", text: "Prompt" }),
              el("button", {
                id: "history-toggle",
                type: "button",
                class: "quiet",
                text: "History",
                title: "Recent prompts (the last 50), searchable",
                "aria-expanded": "false",
                "aria-controls": "history",
              }),
            ),
            el("textarea", { id: "prompt", rows: 4, placeholder: "Describe the video…" }),
            el(
              "div",
              { id: "history", hidden: true },
              el("input", { id: "history-search", type: "search", placeholder: "Search prompts…", "aria-label": "Search prompts" }),
              el("ul", { id: "history-list" }),
              el("p", { id: "history-empty", class: "hint", hidden: true }),
            ),
          ),
          el(
            "div",
            { id: "continue-banner", class: "continue-banner", hidden: true },
            el("span", { id: "continue-text" }),
            el("button", { id: "continue-clear", type: "button", class: "quiet icon", text: "×", title: "Do not link the new clip to this one" }),
          ),
          el(
            "div",
            { id: "image-zone", class: "dropzone" },
            el("img", { id: "image-preview", hidden: true, alt: "reference image" }),
            el("span", { id: "image-hint", text: "Drop an image here for image→video, or " }),
            el("button", { id: "image-pick", type: "button", text: "Choose…", title: withShortcut("Choose an image", "open-image") }),
            el("button", { id: "image-clear", type: "button", class: "quiet", text: "Remove image", hidden: true }),
            el("span", { id: "image-output-size", class: "hint" }),
          ),
          group(
            "group-video",
            "Video",
            true,
            el(
              "div",
              { class: "fields" },
              field("Task", el("select", { id: "task" })),
              field("Size", el("select", { id: "size" })),
              field("Width", el("input", { id: "width", type: "number", step: 16, min: 16 })),
              field("Height", el("input", { id: "height", type: "number", step: 16, min: 16 })),
              field("Frames (4n+1)", el("input", { id: "frames", type: "number", step: 4, min: 1 })),
              el("span", { id: "duration", class: "hint" }),
            ),
          ),
          group(
            "group-sampling",
            "Sampling",
            true,
            el(
              "div",
              { class: "fields" },
              field("Steps", el("input", { id: "steps", type: "number", min: 1, max: 200 })),
              field("Guidance", el("input", { id: "guidance", type: "number", step: 0.5, min: 0 })),
              field("Guidance (high noise)", el("input", { id: "guidance-high", type: "number", step: 0.5, min: 0 })),
              field(
                "Seed",
                el(
                  "div",
                  { class: "input-group" },
                  el("input", { id: "seed", type: "number", min: 0 }),
                  el("button", { id: "seed-random", type: "button", class: "icon", text: "🎲", title: "Random seed" }),
                ),
                "span2",
              ),
            ),
          ),
          group(
            "group-negative",
            "Negative prompt",
            false,
            el("textarea", { id: "negative", rows: 3, "aria-label": "Negative prompt" }),
          ),
          // Less common sampler settings.
          group(
            "group-advanced",
            "Advanced",
            false,
            el(
              "div",
              { class: "fields" },
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
              field("Shift", el("input", { id: "shift", type: "number", step: 0.5, min: 0.5 })),
            ),
          ),
          // Speed (issue 16): step caching and the Fast (4 steps) preset.
          group("group-speed", "Speed", false, speed.speedRow(field)),
        ),
        el(
          "div",
          { class: "composer-footer" },
          el(
            "div",
            { class: "generate-row" },
            field(
              "Variations",
              el("input", {
                id: "variations",
                type: "number",
                min: 1,
                max: form.MAX_VARIATIONS,
                value: 1,
                title: "Queue this many jobs with consecutive seeds (seed, seed+1, …)",
              }),
            ),
            el("button", { id: "generate", type: "submit", class: "primary", text: "Generate", title: withShortcut("Generate", "generate") }),
            // The memory plan, next to Generate: "≈ 11.8 GB of 16.0 GB · q8 · tiled decode".
            el("span", { id: "plan", class: "hint plan" }),
          ),
          // The status line: memory / plan for this run (one line, under the button).
          el("div", { id: "memory", class: "hint" }),
          el("ul", { id: "errors", class: "errors" }),
        ),
      ),
      el(
        "aside",
        { id: "jobs" },
        el(
          "section",
          { class: "card stage" },
          el(
            "div",
            { class: "stage-status" },
            el("div", { id: "progress-text", text: "Idle" }),
            el("button", { id: "cancel", type: "button", text: "Cancel", disabled: true, title: withShortcut("Cancel the current job", "cancel") }),
          ),
          el("progress", { id: "progress", max: 1, value: 0 }),
          el(
            "div",
            { class: "player" },
            el("span", { id: "stage-empty", text: "Live previews and the finished clip appear here." }),
            el("canvas", { id: "preview", width: 64, height: 64, hidden: true }),
            el("video", { id: "result", controls: true, loop: true, hidden: true }),
          ),
          el("ul", { id: "job-warnings", class: "warnings" }),
        ),
        el(
          "section",
          { class: "card" },
          el("div", { class: "card-head" }, el("h3", { text: "Queue" }), el("span", { id: "queue-count", class: "hint" })),
          el("ul", { id: "queue-running", class: "queue-list" }),
          el("ol", { id: "queue", class: "queue-list" }),
          el("p", { id: "queue-empty", class: "hint", text: "Nothing waiting. Jobs run one at a time, in order." }),
        ),
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
    this.history = settings.prompt_history ?? [];
    const task = this.$<HTMLSelectElement>("task");
    for (const p of presets) task.append(el("option", { value: p.task, text: p.task }));
    this.$<HTMLTextAreaElement>("negative").value = neg;
    this.$<HTMLTextAreaElement>("negative").dataset.default = neg;
    await this.load(settings.last_params ?? form.defaults(presets[0]));
    task.addEventListener("change", () => void this.load(form.defaults(this.preset(), this.$<HTMLTextAreaElement>("prompt").value)));
    this.$<HTMLSelectElement>("size").addEventListener("change", () => this.sizeChanged());
    this.$("seed-random").addEventListener("click", () => {
      this.$("seed").value = String(form.randomSeed());
      this.refresh();
    });
    this.$("image-pick").addEventListener("click", () => void this.pickImage());
    this.$("image-clear").addEventListener("click", () => this.clearImage());
    this.$("continue-clear").addEventListener("click", () => this.setContinuation(null));
    this.$("history-toggle").addEventListener("click", () => this.toggleHistory());
    this.$("history-search").addEventListener("input", () => this.showHistory());
    this.$("history").addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.toggleHistory(false);
    });
    this.$("cancel").addEventListener("click", () => void this.cancelCurrent());
    this.$("fast-preset").addEventListener("click", async () => {
      const path = await dialogs.pickLora().catch(() => null);
      if (path) void this.load(speed.fastPreset(this.params(), speed.loraFor(path)));
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

  /**
   * Put `p` into the form exactly (task defaults, the last run, or a gallery clip's
   * settings); `continuation` links the next job to the clip it continues.
   */
  async load(p: GenerateParams, continuation: Continuation | null = null): Promise<void> {
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
    this.setContinuation(continuation);
    this.sizeChanged();
    this.clearImage();
    if (p.image) await this.setImage(p.image);
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

  /** How many jobs Generate queues. */
  variations(): number {
    return Number(this.$("variations").value);
  }

  /** The clip the next job continues: only while its last frame is still the image. */
  parent(): string | null {
    const c = this.continuation;
    return c && this.image?.path === c.image ? c.id : null;
  }

  private setLora(l: LoraSpec | null): void {
    this.lora = l;
    const path = l?.all ?? l?.high ?? l?.low ?? "";
    this.$("lora-name").textContent = l ? `LoRA: ${path.split(/[\\/]/).pop()} ×${l.scale}` : "";
    this.$("lora-clear").hidden = !l;
  }

  private estimateTimer: ReturnType<typeof setTimeout> | null = null;

  /** Re-validate and update the hints (duration, output size, memory, group summaries). */
  refresh(): string[] {
    const p = this.params();
    const preset = this.preset();
    const n = this.variations();
    const secs = form.duration(p.frame_num, preset.fps);
    this.$("duration").textContent = `${secs.toFixed(2)} s at ${preset.fps} fps`;
    let out: [number, number] = p.size;
    if (this.image) {
      const o = form.imageOutputSize(p.task, [this.image.width, this.image.height], p.size);
      if (o) out = o;
      this.$("image-output-size").textContent = o
        ? `Output: ${o[0]}×${o[1]} (from the image's aspect ratio)`
        : "This image's aspect ratio is too extreme for this size's area: choose a larger size.";
    }
    this.summary("group-video", `${out[0]}×${out[1]} · ${p.frame_num} frames · ${secs.toFixed(1)} s`);
    this.summary("group-sampling", `${p.sample_steps} steps · seed ${p.seed}`);
    this.summary("group-negative", p.negative_prompt === null ? "default" : "custom");
    this.summary("group-advanced", `${p.solver} · shift ${p.sample_shift}`);
    const cache = this.$<HTMLSelectElement>("step-cache").value;
    this.summary("group-speed", [this.lora ? "LoRA" : "", cache === "off" ? "" : cache].filter(Boolean).join(" · ") || "off");
    const errs = [...form.validate(p, preset), ...form.validateVariations(n, p.seed)];
    // Write only what changed: a refresh from the prompt's `change` (fired when a click on
    // Generate blurs it) must not touch the button under the pointer, or WebKit drops the click.
    const list = this.$("errors");
    if (list.textContent !== errs.join("")) list.replaceChildren(...errs.map((e) => el("li", { text: e })));
    const gen = this.$<HTMLButtonElement>("generate");
    gen.disabled = errs.length > 0;
    const label = n > 1 && Number.isInteger(n) ? `Generate ${n} variations` : "Generate";
    if (gen.textContent !== label) gen.textContent = label;
    if (this.estimateTimer) clearTimeout(this.estimateTimer);
    if (!errs.length) this.estimateTimer = setTimeout(() => void this.estimate(p), 250);
    return errs;
  }

  private summary(group: string, text: string): void {
    const s = this.root.querySelector(`#${group} .summary-value`);
    if (s) s.textContent = text;
  }

  /** The memory plan line next to Generate ("≈ 11.8 GB of 16.0 GB · q8 · tiled decode")
   *  and, in the status line, its phases or why no plan fits (Rust refuses such a run when
   *  queued). */
  private async estimate(p: GenerateParams): Promise<void> {
    const m = this.$("memory");
    const line = this.$("plan");
    let text: string;
    try {
      const e = await ipc.memoryEstimate(p);
      line.textContent = e.summary;
      line.classList.toggle("bad", !e.fits);
      m.classList.toggle("bad", !e.fits);
      text = e.fits
        ? `Memory plan: ${Object.entries(e.phases)
            .map(([phase, b]) => `${phase} ${form.formatBytes(b)}`)
            .join(" · ")}`
        : `Does not fit: ${e.reason ?? ""}`;
    } catch (err) {
      line.textContent = "";
      text = asAppError(err).message;
    }
    // One line (the full text in the tooltip), so the Generate button never moves.
    m.textContent = text;
    m.title = text;
  }

  /**
   * "Continue from last frame": `c`'s settings with its last frame as the image; the next
   * job links to `c`. Rejects (with the reason) when the frame cannot be read.
   */
  async continueFrom(c: ClipEntry): Promise<void> {
    const frame = await ipc.clipLastFrame(c.record.id);
    await this.load(
      { ...c.record.params, image: frame.path },
      { id: c.record.id, prompt: c.record.params.prompt, image: frame.path },
    );
    if (this.image?.path !== frame.path) throw new Error(this.$("errors").textContent || "the last frame could not be read");
  }

  /** File › Open Image… and the Choose… button. */
  async pickImage(): Promise<void> {
    const p = await dialogs.pickImage().catch(() => null);
    if (p) await this.setImage(p);
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
    this.$("image-zone").classList.add("has-image");
    this.$("image-clear").hidden = false;
    this.$("image-hint").textContent = `Image→video: ${this.image.width}×${this.image.height}`;
    this.showContinuation();
    this.refresh();
  }

  private clearImage(): void {
    this.image = null;
    this.$<HTMLImageElement>("image-preview").hidden = true;
    this.$("image-zone").classList.remove("has-image");
    this.$("image-clear").hidden = true;
    this.$("image-output-size").textContent = "";
    this.$("image-hint").textContent = "Drop an image here for image→video, or ";
    this.showContinuation();
    this.refresh();
  }

  private setContinuation(c: Continuation | null): void {
    this.continuation = c;
    this.showContinuation();
  }

  private showContinuation(): void {
    const parent = this.parent();
    this.$("continue-banner").hidden = parent === null;
    if (parent && this.continuation) {
      const words = this.continuation.prompt.slice(0, 60);
      this.$("continue-text").textContent = `Continues “${words}${this.continuation.prompt.length > 60 ? "…" : ""}” from its last frame`;
    }
  }

  // ---------- Prompt history ----------

  private toggleHistory(open = this.$("history").hidden): void {
    this.$("history").hidden = !open;
    this.$("history-toggle").setAttribute("aria-expanded", String(open));
    if (open) {
      this.$("history-search").value = "";
      this.showHistory();
      this.$("history-search").focus();
    }
  }

  /** The history entries matching the search box. */
  showHistory(): string[] {
    const q = this.$("history-search").value;
    const hits = filterHistory(this.history, q);
    this.$("history-list").replaceChildren(
      ...hits.map((p) => {
        const b = el("button", { type: "button", text: p, title: p });
        b.addEventListener("click", () => {
          this.$<HTMLTextAreaElement>("prompt").value = p;
          this.toggleHistory(false);
          this.$("prompt").focus();
          this.refresh();
        });
        return el("li", {}, b);
      }),
    );
    const empty = this.$("history-empty");
    empty.hidden = hits.length > 0;
    empty.textContent = this.history.length ? "No prompt matches." : "Prompts you generate appear here.";
    return hits;
  }

  private remember(prompt: string): void {
    if (!prompt.trim()) return;
    this.history = [prompt, ...this.history.filter((p) => p !== prompt)].slice(0, form.HISTORY_LEN);
  }

  // ---------- Jobs ----------

  /**
   * Queue the form (as many variations as asked, with consecutive seeds); resolves with
   * the first job's id, or null when nothing was queued.
   */
  async submit(): Promise<number | null> {
    if (this.refresh().length) return null;
    const p = this.params();
    const parent = this.parent();
    let first: number | null = null;
    for (const seed of form.variationSeeds(p.seed, this.variations())) {
      // Events can arrive before `enqueue` resolves: the job id is filled in later.
      const job = { id: -1 };
      try {
        job.id = await ipc.enqueue({ ...p, seed }, (e) => this.onEvent(job, e), parent);
        first ??= job.id;
      } catch (e) {
        const err = asAppError(e);
        this.$("errors").replaceChildren(el("li", { text: err.message, "data-code": err.code }));
        break;
      }
    }
    if (first !== null) this.remember(p.prompt);
    return first;
  }

  /** Cancel the running job (⌘. / the Cancel button); false when none runs. */
  async cancelCurrent(): Promise<boolean> {
    const id = this.current?.id ?? this.runningId;
    if (id === null || id === undefined || id < 0) return false;
    await ipc.cancelJob(id).catch(() => undefined);
    return true;
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
        this.$("result").hidden = true;
        this.$("stage-empty").hidden = true;
        this.$("preview").hidden = false;
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
        this.$("preview").hidden = true;
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
    this.runningId = s.running?.id ?? null;
    if (badge) badge.textContent = n ? `${n} job${n > 1 ? "s" : ""}` : "";
    this.$("queue-count").textContent = n ? `${s.running ? "1 running" : "none running"} · ${s.pending.length} waiting` : "";
    const describe = (j: QueueSnapshot["pending"][number]) =>
      j.kind === "convert" ? j.prompt : `${j.size[0]}×${j.size[1]} · ${j.frames} f · ${j.steps} steps`;
    this.$("queue-running").replaceChildren(
      ...(s.running
        ? [
            el(
              "li",
              { class: "running", "data-job": s.running.id },
              el("span", { class: "q-text", text: s.running.kind === "convert" ? "Converting" : s.running.prompt, title: s.running.prompt }),
              el("span", { class: "q-meta", text: describe(s.running) }),
            ),
          ]
        : []),
    );
    this.$("queue").replaceChildren(
      ...s.pending.map((j, i) =>
        el(
          "li",
          { "data-job": j.id },
          el("span", { class: "q-text", text: j.kind === "convert" ? "Convert" : j.prompt, title: j.prompt }),
          el("span", { class: "q-meta", text: describe(j) }),
          button("↑", "Move up", () => void ipc.moveJob(j.id, Math.max(0, i - 1)), i === 0),
          button("×", "Remove", () => void ipc.cancelJob(j.id)),
        ),
      ),
    );
    this.$("queue-empty").hidden = n > 0;
  }
}

function field(label: string, input: HTMLElement, extraClass = ""): HTMLLabelElement {
  return el("label", { class: `field ${extraClass}`.trim() }, el("span", { text: label }), input);
}

function button(text: string, title: string, f: () => void, disabled = false): HTMLButtonElement {
  const b = el("button", { type: "button", class: "icon", text, title, disabled });
  b.addEventListener("click", f);
  return b;
}
