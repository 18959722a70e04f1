// Gallery view: search and sort over every clip on disk, a grid of cards (posters load
// only when scrolled near, hover plays), and a details panel: settings, the chain of
// continued clips, reuse settings, continue from the last frame, join, reveal, export,
// delete. The list always comes from disk; cards are kept per clip id across refreshes.
import { el, byId } from "../dom";
import { asAppError, dialogs, ipc, type ClipEntry, type GenerateParams } from "../ipc";
import { formatSeconds } from "../form";
import { chainOf, clipSeconds, filterClips, sortClips, SORTS, type SortKey } from "../clips";
import type { Continuation } from "./generate";
import { playClip, releaseClip } from "../clip";

export class GalleryView {
  clips: ClipEntry[] = [];
  private selected: string | null = null;
  private cards = new Map<string, HTMLElement>();
  private observer: IntersectionObserver | null = null;

  constructor(
    private root: HTMLElement,
    /** "Reuse settings": fill the Generate form exactly (a continuation keeps its link). */
    private onRerun: (p: GenerateParams, continuation: Continuation | null) => void,
    /** "Continue from last frame" (rejects with the reason when it cannot). */
    private onContinue: (c: ClipEntry) => Promise<void> = async () => undefined,
  ) {
    const sort = el("select", { id: "gallery-sort", "aria-label": "Sort clips" });
    for (const [k, label] of SORTS) sort.append(el("option", { value: k, text: label }));
    root.append(
      el(
        "div",
        { class: "gallery-main" },
        el(
          "div",
          { class: "gallery-toolbar" },
          el("input", { id: "gallery-search", type: "search", placeholder: "Search prompts…", "aria-label": "Search clips" }),
          sort,
          el("span", { id: "gallery-status", class: "hint", role: "status" }),
        ),
        el("div", { id: "gallery-scroll", class: "gallery-scroll" }, el("div", { id: "gallery-grid", class: "grid" })),
      ),
      el("aside", { id: "clip-details", hidden: true }),
    );
    byId(root, "gallery-search").addEventListener("input", () => this.render());
    sort.addEventListener("change", () => this.render());
    // Posters load when their card comes near the visible area (hundreds of clips stay cheap).
    if (typeof IntersectionObserver === "function") {
      this.observer = new IntersectionObserver(
        (entries) => {
          for (const e of entries) {
            if (!e.isIntersecting) continue;
            this.loadPoster(e.target as HTMLElement);
            this.observer?.unobserve(e.target);
          }
        },
        { root: byId(root, "gallery-scroll"), rootMargin: "300px" },
      );
    }
  }

  async refresh(): Promise<void> {
    const t0 = performance.now();
    const status = byId(this.root, "gallery-status");
    try {
      this.clips = await ipc.listClips();
    } catch (e) {
      status.textContent = asAppError(e).message;
      return;
    }
    const ids = new Set(this.clips.map((c) => c.record.id));
    for (const [id, card] of this.cards) {
      if (ids.has(id)) continue;
      this.observer?.unobserve(card);
      this.cards.delete(id);
    }
    this.render();
    const still = this.clips.find((c) => c.record.id === this.selected);
    if (still) this.details(still);
    else {
      this.selected = null;
      byId(this.root, "clip-details").hidden = true;
    }
    // Timings for the E2E's 500-clip check (listing through IPC + rendering).
    byId(this.root, "gallery-grid").dataset.refreshMs = (performance.now() - t0).toFixed(1);
  }

  /** The clips shown now: searched, then sorted. */
  shown(): ClipEntry[] {
    const q = byId<HTMLInputElement>(this.root, "gallery-search").value;
    const key = byId<HTMLSelectElement>(this.root, "gallery-sort").value as SortKey;
    return sortClips(filterClips(this.clips, q), key);
  }

  private render(): void {
    const t0 = performance.now();
    const shown = this.shown();
    const chained = new Set(this.clips.flatMap((c) => (c.record.parent ? [c.record.id, c.record.parent] : [])));
    byId(this.root, "gallery-grid").replaceChildren(
      ...shown.map((c) => {
        const card = this.cards.get(c.record.id) ?? this.card(c);
        this.cards.set(c.record.id, card);
        card.classList.toggle("selected", c.record.id === this.selected);
        const badge = card.querySelector<HTMLElement>(".chain-badge")!;
        const info = chained.has(c.record.id) ? chainOf(this.clips, c.record.id) : null;
        badge.hidden = !info || info.chain.length < 2;
        if (info) badge.textContent = `Part ${info.position} of ${info.chain.length}`;
        return card;
      }),
    );
    const status = byId(this.root, "gallery-status");
    const n = this.clips.length;
    status.textContent = !n
      ? "No clips yet."
      : shown.length === n
        ? `${n} clip${n > 1 ? "s" : ""}`
        : `${shown.length} of ${n} clips`;
    byId(this.root, "gallery-grid").dataset.renderMs = (performance.now() - t0).toFixed(1);
  }

  private loadPoster(card: HTMLElement): void {
    const img = card.querySelector("img");
    if (img && !img.getAttribute("src") && img.dataset.src) img.src = img.dataset.src;
  }

  private card(c: ClipEntry): HTMLElement {
    const r = c.record;
    const img = el("img", { alt: r.params.prompt, "data-src": ipc.fileUrl(c.poster), decoding: "async" });
    const thumb = el("div", { class: "thumb" }, img);
    const card = el(
      "figure",
      { class: "clip-card", "data-id": r.id, tabindex: 0 },
      thumb,
      el("span", { class: "chain-badge", hidden: true }),
      el(
        "figcaption",
        {},
        el("span", { class: "c-prompt", text: r.params.prompt, title: r.params.prompt }),
        el("span", { class: "c-meta", text: `${r.width}×${r.height} · ${clipSeconds(c).toFixed(1)} s · ${r.params.task}` }),
      ),
    );
    if (this.observer) this.observer.observe(card);
    else this.loadPoster(card);
    // Hover plays the clip in place of the poster.
    card.addEventListener("mouseenter", () => {
      this.loadPoster(card);
      const v = el("video", { autoplay: true, muted: true, loop: true });
      // Unplayable here (e.g. no H.264 decoder in this WebKit): keep the poster.
      playClip(v, c.clip, () => {
        v.remove();
        img.hidden = false;
      });
      thumb.prepend(v);
      img.hidden = true;
    });
    card.addEventListener("mouseleave", () => {
      const v = thumb.querySelector("video");
      if (v) {
        releaseClip(v);
        v.remove();
      }
      img.hidden = false;
    });
    card.addEventListener("click", () => this.select(r.id));
    card.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        this.select(r.id);
      }
    });
    return card;
  }

  /** Show clip `id` in the details panel (e.g. from a notification); false if unknown. */
  select(id: string): boolean {
    const c = this.clips.find((x) => x.record.id === id);
    if (!c) return false;
    this.details(c);
    for (const [cid, card] of this.cards) card.classList.toggle("selected", cid === id);
    this.cards.get(id)?.scrollIntoView?.({ block: "nearest" });
    return true;
  }

  private say(msg: string): void {
    byId(this.root, "gallery-status").textContent = msg;
  }

  details(c: ClipEntry): void {
    this.selected = c.record.id;
    const r = c.record;
    const p = r.params;
    const panel = byId(this.root, "clip-details");
    const row = (k: string, v: string, clamp = false) =>
      el("tr", {}, el("th", { text: k }), el("td", {}, clamp ? el("div", { class: "clamp", text: v, title: v }) : v));
    const act = (id: string, text: string, f: () => Promise<void>, title = "") => {
      const b = el("button", { id, type: "button", text, title });
      b.addEventListener("click", () => f().catch((e) => this.say(asAppError(e).message)));
      return b;
    };
    const old = panel.querySelector("video");
    if (old) releaseClip(old);
    const video = el("video", { id: "details-video", poster: ipc.fileUrl(c.poster), controls: true, loop: true });
    playClip(video, c.clip, () =>
      video.replaceWith(el("img", { src: ipc.fileUrl(c.poster), alt: p.prompt, class: "poster" })),
    );
    const info = chainOf(this.clips, r.id);
    const parent = info?.parent ?? null;
    const continuation: Continuation | null =
      r.parent && p.image ? { id: r.parent, prompt: parent?.record.params.prompt ?? "", image: p.image } : null;
    const canContinue = p.task !== "t2v-A14B";
    const cont = act("continue", "Continue from last frame", () => this.onContinue(c),
      canContinue
        ? "A new image→video job from this clip's last frame, with the same settings"
        : "t2v-A14B is text-only: continue with ti2v-5B or i2v-A14B");
    cont.disabled = !canContinue;
    cont.classList.add("primary");
    panel.replaceChildren(
      video,
      el("p", { class: "prompt", text: p.prompt }),
      el(
        "div",
        { class: "actions" },
        cont,
        act("rerun", "Reuse settings", async () => this.onRerun(p, continuation), "Fill the Generate form with exactly these settings"),
      ),
      ...(info && info.chain.length > 1 ? [this.chainBox(info.chain, r.id)] : []),
      el(
        "table",
        {},
        row("Negative prompt", r.negative_prompt_used, true),
        row("Task", p.task),
        row("Size", `${r.width}×${r.height}, ${r.frames} frames @ ${r.fps} fps (${formatSeconds(clipSeconds(c))})`),
        row("Steps / shift / guidance", `${p.sample_steps} / ${p.sample_shift} / ${p.guide_scale.join(", ")}`),
        row("Solver", p.solver),
        row("Seed", String(p.seed)),
        row("Image", p.image ?? "—"),
        row("Model", `${r.model.name} [${r.model.engine}]`),
        row("Created", new Date(r.created_unix_ms).toLocaleString()),
        row(
          "Time",
          `${formatSeconds(r.wall_s)} (load ${r.timings.load_s.toFixed(1)} s, text ${r.timings.text_s.toFixed(1)} s, denoise ${r.timings.denoise_s.toFixed(1)} s, decode ${r.timings.decode_s.toFixed(1)} s)`,
        ),
      ),
      el(
        "div",
        { class: "actions" },
        act("copy-seed", "Copy seed", () => navigator.clipboard.writeText(String(p.seed))),
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
    panel.querySelector("#delete")?.classList.add("danger");
    panel.hidden = false;
  }

  /** The chain of continued clips through `id`, each a link; Join for a continuation. */
  private chainBox(chain: ClipEntry[], id: string): HTMLElement {
    const pos = chain.findIndex((c) => c.record.id === id);
    const upTo = chain.slice(0, pos + 1);
    const join = el("button", {
      id: "join",
      type: "button",
      text: `Join parts 1–${pos + 1}…`,
      title: "Write these clips, one after the other, as one mp4 (no re-encode)",
      disabled: upTo.length < 2,
    });
    join.addEventListener("click", () =>
      (async () => {
        const dest = await dialogs.pickExport(`wan-${id}-joined.mp4`);
        if (!dest) return;
        const n = await ipc.joinClips(id, dest);
        this.say(`Joined ${n} clips into ${dest}`);
      })().catch((e) => this.say(asAppError(e).message)),
    );
    return el(
      "div",
      { id: "chain", class: "chain" },
      el("div", { class: "card-head" }, el("h3", { text: `Part ${pos + 1} of ${chain.length}` }), join),
      el(
        "ol",
        {},
        ...chain.map((c) => {
          const b = el("button", { type: "button", text: c.record.params.prompt, "data-id": c.record.id });
          b.addEventListener("click", () => this.select(c.record.id));
          return el("li", { class: c.record.id === id ? "current" : "" }, b);
        }),
      ),
    );
  }
}
