// Models view: choose a checkpoint folder (official layout or converted), see what it
// is, its size and problems, and the machine's memory; convert an official folder to
// MLX with progress and cancel; the app's appearance. The choice persists. Each part is
// a card section (#models-checkpoint, #models-convert, #models-machine, #models-appearance).
import { el, byId } from "../dom";
import {
  asAppError,
  dialogs,
  ipc,
  type AppError,
  type Appearance,
  type CheckpointInfo,
  type ConvertDtype,
  type JobEvent,
} from "../ipc";
import { formatBytes, formatSeconds } from "../form";
import { applyAppearance } from "../theme";

/** `<src>-mlx` beside the source folder. */
export function defaultDestination(src: string): string {
  return `${src.replace(/[\\/]+$/, "")}-mlx`;
}

/** The last path segment (either separator). */
function baseName(p: string): string {
  const parts = p.replace(/[\\/]+$/, "").split(/[\\/]/);
  return parts[parts.length - 1] ?? p;
}

export class ModelsView {
  /** The folder shown in #ckpt-info (the conversion source). */
  private shown: CheckpointInfo | null = null;
  /** The running or waiting conversion: its job id once known, and whether it started. */
  private job: { id: number; started: boolean } | null = null;

  constructor(
    private root: HTMLElement,
    private onChanged: () => void,
  ) {
    const dtype = el(
      "select",
      { id: "convert-dtype" },
      el("option", { value: "bf16", text: "bf16 (half the size; Metal computes in it)" }),
      el("option", { value: "f16", text: "f16" }),
      el("option", { value: "f32", text: "f32 (full precision, twice the size)" }),
    );
    const card = (id: string, title: string, ...body: (HTMLElement | string)[]) =>
      el("section", { id, class: "card" }, el("h2", { text: title }), ...body);
    root.append(
      el(
        "div",
        { class: "models" },
        card(
          "models-checkpoint",
          "Checkpoint",
          el(
            "div",
            { class: "row" },
            el("input", { id: "ckpt-path", type: "text", size: 70, placeholder: "/path/to/Wan2.2-TI2V-5B", class: "grow-input" }),
            el("button", { id: "ckpt-browse", type: "button", text: "Browse…" }),
            el("button", { id: "ckpt-use", type: "button", class: "primary", text: "Use this folder" }),
          ),
          el("div", { id: "ckpt-status", class: "hint" }),
          el("div", { id: "ckpt-info" }),
        ),
        card(
          "models-convert",
          "Convert to MLX",
          el("p", { id: "convert-hint", class: "hint" }),
          el(
            "div",
            { class: "row" },
            el(
              "label",
              { class: "field grow" },
              el("span", { text: "New folder" }),
              el("input", { id: "convert-dst", type: "text", size: 70 }),
            ),
            el("button", { id: "convert-browse", type: "button", text: "Choose parent…" }),
          ),
          el(
            "div",
            { class: "row" },
            el("label", { class: "field" }, el("span", { text: "Weights dtype" }), dtype),
            el(
              "label",
              { class: "check" },
              el("input", { id: "convert-select", type: "checkbox", checked: true }),
              "Use the converted folder when done",
            ),
          ),
          el(
            "div",
            { class: "row" },
            el("button", { id: "convert", type: "button", class: "primary", text: "Convert to MLX…", disabled: true }),
            el("button", { id: "convert-cancel", type: "button", text: "Cancel", disabled: true }),
          ),
          el("progress", { id: "convert-progress", max: 1, value: 0 }),
          el("div", { id: "convert-text", class: "hint" }),
        ),
        card("models-machine", "This machine", el("div", { id: "machine", class: "hint" })),
        card(
          "models-appearance",
          "Appearance",
          el(
            "label",
            { class: "field narrow" },
            el("span", { text: "Colours" }),
            el(
              "select",
              { id: "appearance" },
              el("option", { value: "system", text: "Same as the system" }),
              el("option", { value: "light", text: "Light" }),
              el("option", { value: "dark", text: "Dark" }),
            ),
          ),
        ),
      ),
    );
    byId(root, "appearance").addEventListener("change", () => void this.setAppearance());
    byId(root, "ckpt-browse").addEventListener("click", async () => {
      const p = await dialogs.pickFolder().catch(() => null);
      if (p) {
        byId<HTMLInputElement>(root, "ckpt-path").value = p;
        await this.inspect(p);
      }
    });
    byId(root, "ckpt-use").addEventListener("click", () => void this.use());
    byId(root, "convert-browse").addEventListener("click", async () => {
      const parent = await dialogs.pickFolder().catch(() => null);
      if (parent && this.shown) {
        const sep = parent.includes("\\") && !parent.includes("/") ? "\\" : "/";
        this.$("convert-dst").value =
          `${parent.replace(/[\\/]+$/, "")}${sep}${baseName(defaultDestination(this.shown.path))}`;
      }
    });
    byId(root, "convert").addEventListener("click", () => void this.convert());
    byId(root, "convert-cancel").addEventListener("click", () => void this.cancelConvert());
    this.updateConvert();
  }

  private $<T extends HTMLElement = HTMLInputElement>(id: string): T {
    return byId<T>(this.root, id);
  }

  /** Apply and persist the Appearance choice. */
  async setAppearance(): Promise<void> {
    const a = this.$<HTMLSelectElement>("appearance").value as Appearance;
    applyAppearance(a);
    await ipc.setAppearance(a).catch(() => undefined);
  }

  async init(): Promise<void> {
    const [settings, info] = await Promise.all([ipc.getSettings(), ipc.appInfo()]);
    this.$<HTMLSelectElement>("appearance").value = settings.appearance ?? "system";
    byId(this.root, "machine").textContent =
      `Memory ${formatBytes(info.machine_bytes)} · engine ${info.engine} · gallery ${info.gallery_dir}`;
    if (settings.checkpoint_dir) {
      byId<HTMLInputElement>(this.root, "ckpt-path").value = settings.checkpoint_dir;
      await this.inspect(settings.checkpoint_dir);
    } else {
      byId(this.root, "ckpt-status").textContent = "No checkpoint chosen yet.";
    }
  }

  async inspect(path: string): Promise<CheckpointInfo | null> {
    try {
      const info = await ipc.inspectCheckpoint(path);
      this.show(info);
      return info;
    } catch (e) {
      byId(this.root, "ckpt-status").textContent = asAppError(e).message;
      byId(this.root, "ckpt-info").replaceChildren();
      this.shown = null;
      this.updateConvert();
      return null;
    }
  }

  async use(): Promise<void> {
    const path = byId<HTMLInputElement>(this.root, "ckpt-path").value.trim();
    const status = byId(this.root, "ckpt-status");
    try {
      const info = await ipc.setCheckpoint(path);
      this.show(info);
      status.textContent = `Using ${info.name}`;
      status.dataset.ok = "1";
      this.onChanged();
    } catch (e) {
      status.textContent = asAppError(e).message;
      delete status.dataset.ok;
    }
  }

  private show(info: CheckpointInfo): void {
    const box = byId(this.root, "ckpt-info");
    box.replaceChildren(
      el("p", {
        text: `${info.name} — ${formatBytes(info.total_bytes)} on disk${info.layout === "Converted" ? " (converted, MLX)" : info.layout === "Official" ? " (official layout)" : ""}`,
      }),
      ...info.dits.map((d) =>
        el("p", { class: "hint", text: `DiT ${d.model_type}: dim ${d.dim}, ${d.num_layers} layers, ${d.num_heads} heads, ${formatBytes(d.bytes)}` }),
      ),
      info.problems.length
        ? el("ul", { class: "errors" }, ...info.problems.map((p) => el("li", { text: p })))
        : el("p", { class: "ok", text: "Complete: every file the pipeline needs is present." }),
    );
    // A new source suggests a new destination (an edited one is kept for the same source).
    if (this.shown?.path !== info.path || !this.$("convert-dst").value) {
      this.$("convert-dst").value = info.layout === "Official" ? defaultDestination(info.path) : "";
    }
    this.shown = info;
    this.updateConvert();
  }

  /** Why converting is not possible now, or null. */
  private convertBlocker(): string | null {
    const info = this.shown;
    if (this.job) return "A conversion is under way.";
    if (!info) return "Choose an official checkpoint folder above to convert it.";
    if (info.layout === "Converted")
      return "This folder is already converted to MLX: use it directly. (To change the dtype, convert its official folder.)";
    if (info.problems.length) return "This folder has problems (listed above); fix them to convert it.";
    if (info.layout !== "Official") return "Only an official Wan2.2 folder can be converted.";
    return null;
  }

  private updateConvert(): void {
    const why = this.convertBlocker();
    const hint = this.$("convert-hint");
    hint.textContent =
      why ??
      "Rewrites the weights as MLX safetensors (one tensor at a time) into a new folder: faster to load, smaller in bf16. The original folder is not changed.";
    // Red only for a folder with problems; "already converted" is information.
    hint.classList.toggle("bad", !this.job && (this.shown?.problems.length ?? 0) > 0);
    this.$<HTMLButtonElement>("convert").disabled = why !== null;
    for (const id of ["convert-dst", "convert-dtype", "convert-select", "convert-browse"]) {
      this.$<HTMLInputElement>(id).disabled = this.job !== null || why !== null;
    }
  }

  /** Queue the conversion of the shown folder; resolves with the job id (null if refused). */
  async convert(): Promise<number | null> {
    const info = this.shown;
    if (!info || this.convertBlocker()) return null;
    const dst = this.$("convert-dst").value.trim();
    const dtype = this.$<HTMLSelectElement>("convert-dtype").value as ConvertDtype;
    const select = this.$("convert-select").checked;
    const text = this.$("convert-text");
    if (!dst) {
      this.fail({ code: "input", message: "Enter the new folder's path." });
      return null;
    }
    const job = { id: -1, started: false };
    this.job = job;
    this.$<HTMLProgressElement>("convert-progress").value = 0;
    text.textContent = "Queued…";
    text.classList.remove("bad");
    delete text.dataset.code;
    this.updateConvert();
    try {
      job.id = await ipc.convertCheckpoint(info.path, dst, dtype, select, (e) => this.onEvent(job, e));
      this.$<HTMLButtonElement>("convert-cancel").disabled = this.job !== job;
      // Events can come before the id: only say "waiting" if the job has not started.
      if (this.job === job && !job.started) text.textContent = "Waiting for the running job to finish…";
      return job.id;
    } catch (e) {
      this.job = null;
      this.fail(asAppError(e));
      this.updateConvert();
      return null;
    }
  }

  private async cancelConvert(): Promise<void> {
    const job = this.job;
    if (!job || job.id < 0) return;
    this.$<HTMLButtonElement>("convert-cancel").disabled = true;
    this.$("convert-text").textContent = "Cancelling…";
    await ipc.cancelJob(job.id).catch((e) => this.fail(asAppError(e)));
  }

  private fail(err: AppError): void {
    const text = this.$("convert-text");
    text.textContent = err.message;
    text.dataset.code = err.code;
    text.classList.add("bad");
  }

  onEvent(job: { id: number; started: boolean }, e: JobEvent): void {
    const text = this.$("convert-text");
    const bar = this.$<HTMLProgressElement>("convert-progress");
    text.classList.remove("bad");
    switch (e.kind) {
      case "started":
        job.started = true;
        text.textContent = "Checking every tensor of the source folder…";
        break;
      case "convert": {
        job.started = true;
        bar.value = e.total_bytes ? e.done_bytes / e.total_bytes : 0;
        const pct = e.total_bytes ? Math.floor((100 * e.done_bytes) / e.total_bytes) : 0;
        text.textContent =
          `${formatBytes(e.done_bytes)} / ${formatBytes(e.total_bytes)} (${pct}%) · ` +
          `ETA ${formatSeconds(e.eta_s)} · ${e.tensor}`;
        break;
      }
      case "fit_preview":
        bar.value = 1;
        text.textContent = "Fitting the fast previewer for live previews…";
        break;
      case "converted": {
        this.end(job);
        bar.value = 1;
        const r = e.result;
        text.textContent =
          `Converted ${r.tensors} tensors (${formatBytes(r.bytes)}) in ${formatSeconds(r.wall_s)} into ${r.info.path}` +
          (r.selected ? " — now in use." : ".");
        if (r.selected) {
          this.$("ckpt-path").value = r.info.path;
          this.show(r.info);
          const status = this.$("ckpt-status");
          status.textContent = `Using ${r.info.name}`;
          status.dataset.ok = "1";
          this.onChanged();
        }
        break;
      }
      case "failed":
        this.end(job);
        this.fail(e.error);
        text.textContent = `Conversion failed: ${e.error.message}`;
        break;
      case "cancelled":
        this.end(job);
        bar.value = 0;
        text.textContent = "Cancelled: nothing was written.";
        break;
    }
  }

  private end(job: { id: number; started: boolean }): void {
    if (this.job === job) this.job = null;
    this.$<HTMLButtonElement>("convert-cancel").disabled = true;
    this.updateConvert();
  }
}
