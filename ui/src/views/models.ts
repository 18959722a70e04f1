// Models view: choose a checkpoint folder (official layout or converted), see what it
// is, its size and problems, and the machine's memory. The choice persists.
import { el, byId } from "../dom";
import { asAppError, dialogs, ipc, type CheckpointInfo } from "../ipc";
import { formatBytes } from "../form";

export class ModelsView {
  constructor(
    private root: HTMLElement,
    private onChanged: () => void,
  ) {
    root.append(
      el("h2", { text: "Checkpoint" }),
      el(
        "div",
        { class: "row" },
        el("input", { id: "ckpt-path", type: "text", size: 70, placeholder: "/path/to/Wan2.2-TI2V-5B" }),
        el("button", { id: "ckpt-browse", type: "button", text: "Browse…" }),
        el("button", { id: "ckpt-use", type: "button", class: "primary", text: "Use this folder" }),
      ),
      el("div", { id: "ckpt-status", class: "hint" }),
      el("div", { id: "ckpt-info" }),
      el("h2", { text: "This machine" }),
      el("div", { id: "machine", class: "hint" }),
    );
    byId(root, "ckpt-browse").addEventListener("click", async () => {
      const p = await dialogs.pickFolder().catch(() => null);
      if (p) {
        byId<HTMLInputElement>(root, "ckpt-path").value = p;
        await this.inspect(p);
      }
    });
    byId(root, "ckpt-use").addEventListener("click", () => void this.use());
  }

  async init(): Promise<void> {
    const [settings, info] = await Promise.all([ipc.getSettings(), ipc.appInfo()]);
    byId(this.root, "machine").textContent =
      `Memory ${formatBytes(info.machine_bytes)} · engine ${info.engine} · gallery ${info.gallery_dir}`;
    if (settings.checkpoint_dir) {
      byId<HTMLInputElement>(this.root, "ckpt-path").value = settings.checkpoint_dir;
      await this.inspect(settings.checkpoint_dir);
    } else {
      byId(this.root, "ckpt-status").textContent = "No checkpoint chosen yet.";
    }
  }

  private async inspect(path: string): Promise<CheckpointInfo | null> {
    try {
      const info = await ipc.inspectCheckpoint(path);
      this.show(info);
      return info;
    } catch (e) {
      byId(this.root, "ckpt-status").textContent = asAppError(e).message;
      byId(this.root, "ckpt-info").replaceChildren();
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
      el("p", { text: `${info.name} — ${formatBytes(info.total_bytes)} on disk` }),
      ...info.dits.map((d) =>
        el("p", { class: "hint", text: `DiT ${d.model_type}: dim ${d.dim}, ${d.num_layers} layers, ${d.num_heads} heads, ${formatBytes(d.bytes)}` }),
      ),
      info.problems.length
        ? el("ul", { class: "errors" }, ...info.problems.map((p) => el("li", { text: p })))
        : el("p", { class: "ok", text: "Complete: every file the pipeline needs is present." }),
    );
  }
}
