// Models → Download from Hugging Face: pick an official Wan2.2 repo (or type any repo
// id), see where it goes (the models folder, changeable), download with per-file and
// total progress and ETA, cancel, and resume later; the finished folder can become the
// checkpoint in use. A self-contained section with its own `hub-*` element ids.
import { el, byId } from "../dom";
import {
  asAppError,
  dialogs,
  downloads,
  type AppError,
  type CheckpointInfo,
  type DownloadEvent,
  type RepoState,
} from "../ipc";
import { formatBytes, formatSeconds } from "../form";

const OTHER = "other";

export class HubView {
  /** The running download: its id once known. */
  private job: { id: number } | null = null;

  constructor(
    private root: HTMLElement,
    /** A finished download became the checkpoint in use. */
    private onSelected: (info: CheckpointInfo) => void,
  ) {
    root.append(
      el("h2", { text: "Download from Hugging Face" }),
      el("p", {
        class: "hint",
        text: "The official weights, straight into the models folder. Interrupted downloads resume where they stopped; every file is checked against the Hub's checksum.",
      }),
      el(
        "div",
        { class: "row" },
        el("label", { class: "field" }, el("span", { text: "Model" }), el("select", { id: "hub-repo" })),
        el(
          "label",
          { class: "field grow", id: "hub-custom-field", hidden: true },
          el("span", { text: "Repo id" }),
          el("input", { id: "hub-repo-custom", type: "text", placeholder: "owner/name" }),
        ),
      ),
      el(
        "div",
        { class: "row" },
        el("span", { class: "hint", text: "Models folder:" }),
        el("code", { id: "hub-dir" }),
        el("button", { id: "hub-dir-browse", type: "button", text: "Change…" }),
      ),
      el("label", {}, el("input", { id: "hub-select", type: "checkbox", checked: true }), " Use it when done"),
      el("div", { id: "hub-state", class: "hint" }),
      el(
        "div",
        { class: "row" },
        el("button", { id: "hub-download", type: "button", class: "primary", text: "Download" }),
        el("button", { id: "hub-cancel", type: "button", text: "Cancel", disabled: true }),
      ),
      el("progress", { id: "hub-progress", max: 1, value: 0 }),
      el("progress", { id: "hub-file-progress", max: 1, value: 0 }),
      el("div", { id: "hub-text", class: "hint" }),
    );
    this.$<HTMLSelectElement>("hub-repo").addEventListener("change", () => {
      byId(root, "hub-custom-field").hidden = this.$<HTMLSelectElement>("hub-repo").value !== OTHER;
      void this.refreshState();
    });
    this.$("hub-repo-custom").addEventListener("change", () => void this.refreshState());
    this.$("hub-dir-browse").addEventListener("click", async () => {
      const p = await dialogs.pickFolder().catch(() => null);
      if (p) await this.setDir(p);
    });
    this.$("hub-download").addEventListener("click", () => void this.download());
    this.$("hub-cancel").addEventListener("click", () => void this.cancel());
  }

  private $<T extends HTMLElement = HTMLInputElement>(id: string): T {
    return byId<T>(this.root, id);
  }

  async init(): Promise<void> {
    const [repos, dir] = await Promise.all([downloads.hubRepos(), downloads.modelsDir()]);
    const sel = this.$<HTMLSelectElement>("hub-repo");
    sel.replaceChildren(
      ...repos.map((r) => el("option", { value: r.id, text: `${r.id} (${r.task})` })),
      el("option", { value: OTHER, text: "Other repo…" }),
    );
    this.$("hub-dir").textContent = dir;
    await this.refreshState();
  }

  /** The repo id the form names. */
  repo(): string {
    const v = this.$<HTMLSelectElement>("hub-repo").value;
    return v === OTHER ? this.$("hub-repo-custom").value.trim() : v;
  }

  async setDir(path: string): Promise<void> {
    try {
      this.$("hub-dir").textContent = await downloads.setModelsDir(path);
      await this.refreshState();
    } catch (e) {
      this.fail(asAppError(e));
    }
  }

  /** Show what is already in the models folder for the chosen repo. */
  async refreshState(): Promise<void> {
    const box = this.$("hub-state");
    const button = this.$<HTMLButtonElement>("hub-download");
    const repo = this.repo();
    if (!repo) {
      delete box.dataset.state;
      box.textContent = "Type a repo id (owner/name).";
      button.disabled = true;
      return;
    }
    try {
      const s: RepoState = await downloads.repoState(repo);
      box.dataset.state = s.state;
      box.textContent = {
        absent: `Into ${s.dest}`,
        unfinished: `Unfinished in ${s.dest}: ${formatBytes(s.have_bytes)} of ${formatBytes(s.total_bytes)} on disk; Resume continues it.`,
        complete: `Already in ${s.dest}: Download checks it and uses it.`,
        other: `${s.dest} holds something else: choose another models folder.`,
      }[s.state];
      button.textContent = s.state === "unfinished" ? "Resume" : "Download";
      button.disabled = this.job !== null || s.state === "other";
    } catch (e) {
      box.textContent = asAppError(e).message;
      delete box.dataset.state;
      button.disabled = true;
    }
  }

  /** Start (or resume); resolves with the download id, or null if refused. */
  async download(): Promise<number | null> {
    const repo = this.repo();
    if (this.job || !repo) return null;
    const job = { id: -1 };
    this.job = job;
    const text = this.$("hub-text");
    text.classList.remove("bad");
    delete text.dataset.code;
    text.textContent = "Starting…";
    this.$<HTMLButtonElement>("hub-download").disabled = true;
    try {
      job.id = await downloads.downloadModel(repo, this.$("hub-select").checked, (e) => this.onEvent(job, e));
      this.$<HTMLButtonElement>("hub-cancel").disabled = this.job !== job;
      return job.id;
    } catch (e) {
      this.job = null;
      this.fail(asAppError(e));
      await this.refreshState();
      return null;
    }
  }

  private async cancel(): Promise<void> {
    const job = this.job;
    if (!job || job.id < 0) return;
    this.$<HTMLButtonElement>("hub-cancel").disabled = true;
    this.$("hub-text").textContent = "Cancelling…";
    await downloads.cancelDownload(job.id).catch((e) => this.fail(asAppError(e)));
  }

  private fail(err: AppError): void {
    const text = this.$("hub-text");
    text.textContent = err.message;
    text.dataset.code = err.code;
    text.classList.add("bad");
  }

  onEvent(job: { id: number }, e: DownloadEvent): void {
    const text = this.$("hub-text");
    const bar = this.$<HTMLProgressElement>("hub-progress");
    const fileBar = this.$<HTMLProgressElement>("hub-file-progress");
    switch (e.kind) {
      case "started":
        text.textContent = `Listing ${e.repo}…`;
        break;
      case "progress": {
        const p = e.progress;
        bar.value = p.total ? p.done / p.total : 0;
        fileBar.value = p.file_size ? p.file_done / p.file_size : 1;
        const pct = p.total ? Math.floor((100 * p.done) / p.total) : 0;
        const speed = p.elapsed_s > 0 ? `${formatBytes(p.received / p.elapsed_s)}/s · ` : "";
        const eta = p.eta_s === null ? "" : `ETA ${formatSeconds(p.eta_s)} · `;
        text.textContent =
          `${formatBytes(p.done)} / ${formatBytes(p.total)} (${pct}%) · ${speed}${eta}` +
          `[${p.file_index}/${p.files}] ${p.file}`;
        text.dataset.percent = String(pct);
        break;
      }
      case "finished": {
        this.end(job);
        bar.value = 1;
        fileBar.value = 1;
        const s = e.summary;
        text.textContent =
          `Downloaded ${s.repo} (${s.files} files, ${formatBytes(s.total_bytes)}) into ${s.dest}` +
          (e.selected ? " — now in use." : e.info.problems.length ? ` — not usable: ${e.info.problems.join("; ")}` : ".");
        if (e.selected) this.onSelected(e.info);
        break;
      }
      case "failed":
        this.end(job);
        this.fail(e.error);
        text.textContent = `Download failed: ${e.error.message}`;
        break;
      case "cancelled":
        this.end(job);
        text.textContent = `Cancelled: ${formatBytes(e.kept_bytes)} kept; Resume continues it.`;
        break;
    }
  }

  private end(job: { id: number }): void {
    if (this.job === job) this.job = null;
    this.$<HTMLButtonElement>("hub-cancel").disabled = true;
    void this.refreshState();
  }
}
