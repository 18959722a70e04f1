// The ffmpeg notice: checked when the app starts (and on "Check again"); hidden while an
// ffmpeg is found. Without one it says what to install on this platform and offers — only
// after an explicit "Download" — a static build into the app's data folder, with progress
// and a Cancel button.
import { el, byId } from "../dom";
import { asAppError, downloads, type FfmpegEvent, type FfmpegStatus } from "../ipc";
import { formatBytes } from "../form";

export class FfmpegBanner {
  status: FfmpegStatus | null = null;

  constructor(private root: HTMLElement) {
    root.hidden = true;
    root.append(
      el("strong", { text: "ffmpeg is missing" }),
      el("p", { id: "ffmpeg-message" }),
      el(
        "div",
        { class: "row" },
        el("button", { id: "ffmpeg-download", type: "button", text: "Download ffmpeg…" }),
        el("button", { id: "ffmpeg-recheck", type: "button", text: "Check again" }),
      ),
      el(
        "div",
        { id: "ffmpeg-consent", hidden: true },
        el("p", { id: "ffmpeg-consent-text" }),
        el("button", { id: "ffmpeg-consent-yes", type: "button", class: "primary", text: "Download" }),
        " ",
        el("button", { id: "ffmpeg-consent-no", type: "button", text: "Not now" }),
      ),
      el("progress", { id: "ffmpeg-progress", max: 1, value: 0, hidden: true }),
      el("button", { id: "ffmpeg-cancel", type: "button", text: "Cancel", hidden: true }),
      el("div", { id: "ffmpeg-text", class: "hint" }),
    );
    this.$("ffmpeg-recheck").addEventListener("click", () => void this.check());
    this.$("ffmpeg-download").addEventListener("click", () => this.askConsent());
    this.$("ffmpeg-consent-no").addEventListener("click", () => (this.$("ffmpeg-consent").hidden = true));
    this.$("ffmpeg-consent-yes").addEventListener("click", () => void this.download());
    this.$("ffmpeg-cancel").addEventListener("click", () => void downloads.cancelFfmpeg());
  }

  private $<T extends HTMLElement = HTMLElement>(id: string): T {
    return byId<T>(this.root, id);
  }

  /** Ask Rust where ffmpeg is; show the notice only when there is none. */
  async check(): Promise<FfmpegStatus> {
    const s = await downloads.ffmpegStatus();
    this.status = s;
    this.root.hidden = s.found !== null;
    this.root.dataset.state = s.found ? "found" : "missing";
    this.$("ffmpeg-message").textContent = s.message ?? "";
    this.$<HTMLButtonElement>("ffmpeg-download").hidden = !s.download_url;
    if (s.found) this.$("ffmpeg-text").textContent = "";
    return s;
  }

  private askConsent(): void {
    const s = this.status;
    if (!s?.download_url) return;
    const host = s.download_url.split("/")[2] ?? s.download_url;
    this.$("ffmpeg-consent-text").textContent =
      `Download a static ffmpeg build from ${host} into ${s.download_dir}? It is a separate program ` +
      "(free software under the GPL) that Wan Studio runs to write the mp4 files.";
    this.$("ffmpeg-consent").hidden = false;
  }

  async download(): Promise<void> {
    this.$("ffmpeg-consent").hidden = true;
    const bar = this.$<HTMLProgressElement>("ffmpeg-progress");
    const text = this.$("ffmpeg-text");
    bar.hidden = false;
    bar.value = 0;
    text.textContent = "Downloading ffmpeg…";
    this.$<HTMLButtonElement>("ffmpeg-download").disabled = true;
    const cancel = this.$<HTMLButtonElement>("ffmpeg-cancel");
    cancel.hidden = false;
    const done = () => {
      this.$<HTMLButtonElement>("ffmpeg-download").disabled = false;
      cancel.hidden = true;
    };
    try {
      await downloads.downloadFfmpeg((e: FfmpegEvent) => {
        switch (e.kind) {
          case "progress":
            bar.value = e.total ? e.done / e.total : 0;
            text.textContent = `Downloading ffmpeg: ${formatBytes(e.done)}${e.total ? ` / ${formatBytes(e.total)}` : ""}`;
            break;
          case "unpacking":
            cancel.hidden = true;
            text.textContent = "Unpacking ffmpeg…";
            break;
          case "done":
            done();
            bar.hidden = true;
            text.textContent = `ffmpeg ready: ${e.found.path}`;
            void this.check();
            break;
          case "failed":
            done();
            bar.hidden = true;
            text.textContent =
              e.error.code === "cancelled"
                ? "ffmpeg download cancelled; nothing was kept."
                : `ffmpeg download failed: ${e.error.message}`;
            break;
        }
      });
    } catch (e) {
      done();
      bar.hidden = true;
      text.textContent = asAppError(e).message;
    }
  }
}
