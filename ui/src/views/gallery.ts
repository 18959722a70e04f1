// Gallery view: thumbnails (hover plays), a details panel with copyable seed, re-run
// with the same settings, reveal, export, delete. The list always comes from disk.
import { el, byId } from "../dom";
import { asAppError, dialogs, ipc, type ClipEntry, type GenerateParams } from "../ipc";
import { formatSeconds } from "../form";

import { playClip, releaseClip } from "../clip";
export class GalleryView {
  clips: ClipEntry[] = [];
  private selected: string | null = null;

  constructor(
    private root: HTMLElement,
    private onRerun: (p: GenerateParams) => void,
  ) {
    root.append(
      el("div", { id: "gallery-status", class: "hint" }),
      el("div", { id: "gallery-grid", class: "grid" }),
      el("aside", { id: "clip-details", hidden: true }),
    );
  }

  async refresh(): Promise<void> {
    const status = byId(this.root, "gallery-status");
    try {
      this.clips = await ipc.listClips();
    } catch (e) {
      status.textContent = asAppError(e).message;
      return;
    }
    status.textContent = this.clips.length ? `${this.clips.length} clip(s)` : "No clips yet.";
    byId(this.root, "gallery-grid").replaceChildren(...this.clips.map((c) => this.card(c)));
    const still = this.clips.find((c) => c.record.id === this.selected);
    if (still) this.details(still);
    else byId(this.root, "clip-details").hidden = true;
  }

  private card(c: ClipEntry): HTMLElement {
    const img = el("img", { src: ipc.fileUrl(c.poster), alt: c.record.params.prompt, loading: "lazy" });
    const card = el(
      "figure",
      { class: "clip-card", "data-id": c.record.id, tabindex: 0 },
      img,
      el("figcaption", { text: c.record.params.prompt }),
    );
    // Hover plays the clip in place of the poster.
    card.addEventListener("mouseenter", () => {
      const v = el("video", { autoplay: true, muted: true, loop: true });
      // Unplayable here (e.g. no H.264 decoder in this WebKit): keep the poster.
      playClip(v, c.clip, () => {
        v.remove();
        img.hidden = false;
      });
      card.prepend(v);
      img.hidden = true;
    });
    card.addEventListener("mouseleave", () => {
      const v = card.querySelector("video");
      if (v) {
        releaseClip(v);
        v.remove();
      }
      img.hidden = false;
    });
    card.addEventListener("click", () => this.details(c));
    return card;
  }

  details(c: ClipEntry): void {
    this.selected = c.record.id;
    const r = c.record;
    const p = r.params;
    const panel = byId(this.root, "clip-details");
    const row = (k: string, v: string) => el("tr", {}, el("th", { text: k }), el("td", { text: v }));
    const act = (id: string, text: string, f: () => Promise<void>) => {
      const b = el("button", { id, type: "button", text });
      b.addEventListener("click", () =>
        f().catch((e) => (byId(this.root, "gallery-status").textContent = asAppError(e).message)),
      );
      return b;
    };
    const old = panel.querySelector("video");
    if (old) releaseClip(old);
    const video = el("video", { id: "details-video", poster: ipc.fileUrl(c.poster), controls: true, loop: true });
    playClip(video, c.clip, () =>
      video.replaceWith(el("img", { src: ipc.fileUrl(c.poster), alt: p.prompt, class: "poster" })),
    );
    panel.replaceChildren(
      video,
      el("p", { class: "prompt", text: p.prompt }),
      el(
        "table",
        {},
        row("Negative prompt", r.negative_prompt_used),
        row("Task", p.task),
        row("Size", `${r.width}×${r.height}, ${r.frames} frames @ ${r.fps} fps`),
        row("Steps / shift / guidance", `${p.sample_steps} / ${p.sample_shift} / ${p.guide_scale.join(", ")}`),
        row("Solver", p.solver),
        row("Seed", String(p.seed)),
        row("Image", p.image ?? "—"),
        row("Model", `${r.model.name} [${r.model.engine}]`),
        row(
          "Time",
          `${formatSeconds(r.wall_s)} (load ${r.timings.load_s.toFixed(1)} s, text ${r.timings.text_s.toFixed(1)} s, denoise ${r.timings.denoise_s.toFixed(1)} s, decode ${r.timings.decode_s.toFixed(1)} s)`,
        ),
      ),
      el(
        "div",
        { class: "actions" },
        act("copy-seed", "Copy seed", () => navigator.clipboard.writeText(String(p.seed))),
        act("rerun", "Re-run", async () => this.onRerun(p)),
        act("reveal", "Show in folder", () => ipc.revealClip(r.id)),
        act("export", "Export…", async () => {
          const dest = await dialogs.pickExport(`wan-${r.id}.mp4`);
          if (dest) await ipc.exportClip(r.id, dest);
        }),
        act("delete", "Delete", async () => {
          if (!confirm("Delete this clip?")) return;
          await ipc.deleteClip(r.id);
          this.selected = null;
          await this.refresh();
        }),
      ),
    );
    panel.hidden = false;
  }
}
