// Models → Download (HubView) and the ffmpeg notice (FfmpegBanner) against mocked IPC:
// what they send, how progress, cancel/resume, success and errors show, and that
// nothing is downloaded without consent.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearMocks, mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import type { Channel } from "@tauri-apps/api/core";
import type { CheckpointInfo, DownloadEvent, FfmpegEvent, FfmpegStatus, RepoState } from "../src/ipc";
import { HubView } from "../src/views/hub";
import { FfmpegBanner } from "../src/views/ffmpeg";

const info: CheckpointInfo = {
  path: "/m/Wan2.2-TI2V-5B", layout: "Official", task: "ti2v-5B", name: "ti2v-5B (dim 3072, 30 layers)",
  dits: [], total_bytes: 1000, problems: [],
};
let calls: { cmd: string; args: Record<string, unknown> }[] = [];
let channel: Channel<DownloadEvent> | null = null;
let ffChannel: Channel<FfmpegEvent> | null = null;
let state: RepoState["state"] = "absent";
let ffmpeg: FfmpegStatus;
let selected: CheckpointInfo[] = [];

beforeEach(() => {
  calls = [];
  channel = null;
  ffChannel = null;
  state = "absent";
  selected = [];
  ffmpeg = {
    found: null,
    message: "ffmpeg was not found (looked …): install it with Homebrew (`brew install ffmpeg`)",
    download_url: "https://www.osxexperts.net/ffmpeg9arm.zip",
    download_dir: "/data/ffmpeg",
  };
  mockWindows("main");
  mockIPC((cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args: a });
    switch (cmd) {
      case "hub_repos":
        return [{ id: "Wan-AI/Wan2.2-TI2V-5B", task: "ti2v-5B" }, { id: "Wan-AI/Wan2.2-T2V-A14B", task: "t2v-A14B" }];
      case "models_dir": return "/m";
      case "set_models_dir": return a.path;
      case "hub_repo_state": {
        const repo = a.repo as string;
        const dest = `/m/${repo.split("/")[1]}`;
        return { repo, dest, state, have_bytes: state === "unfinished" ? 512 * 2 ** 20 : 0, total_bytes: state === "unfinished" ? 2 ** 31 : 0 };
      }
      case "download_model":
        channel = a.onEvent as Channel<DownloadEvent>;
        return 3;
      case "cancel_download": return null;
      case "ffmpeg_status": return ffmpeg;
      case "download_ffmpeg":
        ffChannel = a.onEvent as Channel<FfmpegEvent>;
        return null;
    }
    return null;
  });
  document.body.innerHTML = `<section id="v"></section><div id="b"></div>`;
});

afterEach(() => clearMocks());

const $ = <T extends HTMLElement = HTMLInputElement>(id: string) => document.getElementById(id) as T;
const button = (id: string) => $<HTMLButtonElement>(id);
const send = (e: DownloadEvent) => channel!.onmessage(e);
const flush = () => new Promise((r) => setTimeout(r, 0));

async function hub(): Promise<HubView> {
  const v = new HubView(document.getElementById("v")!, (i) => selected.push(i));
  await v.init();
  return v;
}

describe("HubView", () => {
  it("offers the official repos and any other id, and sends exactly the choice", async () => {
    const v = await hub();
    expect([...$<HTMLSelectElement>("hub-repo").options].map((o) => o.value)).toEqual([
      "Wan-AI/Wan2.2-TI2V-5B", "Wan-AI/Wan2.2-T2V-A14B", "other",
    ]);
    expect($("hub-dir").textContent).toBe("/m");
    expect($("hub-state").textContent).toBe("Into /m/Wan2.2-TI2V-5B");
    expect(button("hub-download").textContent).toBe("Download");
    $<HTMLSelectElement>("hub-repo").value = "other";
    $<HTMLSelectElement>("hub-repo").dispatchEvent(new Event("change"));
    expect($("hub-custom-field").hidden).toBe(false);
    expect(button("hub-download").disabled).toBe(true);
    $("hub-repo-custom").value = " me/my-model ";
    $("hub-select").checked = false;
    expect(await v.download()).toBe(3);
    const sent = calls.find((c) => c.cmd === "download_model")!.args;
    expect({ ...sent, onEvent: undefined }).toEqual({ repo: "me/my-model", select: false, onEvent: undefined });
  });

  it("shows total and per-file progress with ETA, cancels, then offers Resume", async () => {
    const v = await hub();
    await v.download();
    expect(button("hub-download").disabled).toBe(true);
    expect(button("hub-cancel").disabled).toBe(false);
    send({ kind: "started", repo: "Wan-AI/Wan2.2-TI2V-5B", dest: "/m/Wan2.2-TI2V-5B" });
    send({
      kind: "progress",
      progress: {
        file: "diffusion_pytorch_model-00002-of-00003.safetensors", file_index: 5, files: 11,
        file_done: 2 ** 29, file_size: 2 ** 31, done: 2 ** 32, total: 2 ** 34,
        received: 100 * 2 ** 20, elapsed_s: 10, eta_s: 90,
      },
    });
    expect($<HTMLProgressElement>("hub-progress").value).toBe(0.25);
    expect($<HTMLProgressElement>("hub-file-progress").value).toBe(0.25);
    const t = $("hub-text").textContent!;
    expect(t).toContain("4.0 GB / 16.0 GB (25%)");
    expect(t).toContain("10.0 MB/s");
    expect(t).toContain("ETA 1 min 30 s");
    expect(t).toContain("[5/11] diffusion_pytorch_model-00002-of-00003.safetensors");
    button("hub-cancel").click();
    await flush();
    expect(calls.find((c) => c.cmd === "cancel_download")?.args).toEqual({ id: 3 });
    state = "unfinished";
    send({ kind: "cancelled", kept_bytes: 2 ** 32 });
    await flush();
    expect($("hub-text").textContent).toBe("Cancelled: 4.0 GB kept; Resume continues it.");
    expect(button("hub-download").textContent).toBe("Resume");
    expect(button("hub-download").disabled).toBe(false);
    expect($("hub-state").textContent).toContain("512.0 MB of 2.0 GB on disk");
  });

  it("switches to the finished folder, and shows failures with their code", async () => {
    const v = await hub();
    await v.download();
    send({
      kind: "finished",
      summary: { repo: "Wan-AI/Wan2.2-TI2V-5B", commit: "c".repeat(40), dest: "/m/Wan2.2-TI2V-5B", files: 11, total_bytes: 2 ** 30, received: 2 ** 30, reused: 0, wall_s: 60 },
      info, selected: true,
    });
    expect($("hub-text").textContent).toBe("Downloaded Wan-AI/Wan2.2-TI2V-5B (11 files, 1.0 GB) into /m/Wan2.2-TI2V-5B — now in use.");
    expect(selected).toEqual([info]);
    await flush();
    await v.download();
    send({ kind: "failed", error: { code: "checksum", message: "Wan2.2_VAE.pth: checksum mismatch" } });
    expect($("hub-text").textContent).toBe("Download failed: Wan2.2_VAE.pth: checksum mismatch");
    expect($("hub-text").dataset.code).toBe("checksum");
    expect(button("hub-cancel").disabled).toBe(true);
  });

  it("refuses a folder that holds something else, and follows a new models folder", async () => {
    state = "other";
    const v = await hub();
    expect(button("hub-download").disabled).toBe(true);
    expect($("hub-state").textContent).toContain("holds something else");
    state = "absent";
    await v.setDir("/Volumes/big/models");
    expect(calls.find((c) => c.cmd === "set_models_dir")?.args).toEqual({ path: "/Volumes/big/models" });
    expect($("hub-dir").textContent).toBe("/Volumes/big/models");
    expect(button("hub-download").disabled).toBe(false);
  });
});

describe("FfmpegBanner", () => {
  it("is hidden while ffmpeg is found", async () => {
    ffmpeg = { ...ffmpeg, found: { path: "/opt/homebrew/bin/ffmpeg", source: "path" }, message: null };
    const b = new FfmpegBanner($("b"));
    await b.check();
    expect($("b").hidden).toBe(true);
    expect($("b").dataset.state).toBe("found");
  });

  it("explains, asks for consent, and only then downloads with progress", async () => {
    const b = new FfmpegBanner($("b"));
    await b.check();
    expect($("b").hidden).toBe(false);
    expect($("ffmpeg-message").textContent).toContain("brew install ffmpeg");
    button("ffmpeg-download").click();
    expect($("ffmpeg-consent").hidden).toBe(false);
    expect($("ffmpeg-consent-text").textContent).toContain("www.osxexperts.net");
    expect($("ffmpeg-consent-text").textContent).toContain("/data/ffmpeg");
    button("ffmpeg-consent-no").click();
    expect(calls.some((c) => c.cmd === "download_ffmpeg")).toBe(false);
    button("ffmpeg-download").click();
    button("ffmpeg-consent-yes").click();
    await flush();
    expect(calls.find((c) => c.cmd === "download_ffmpeg")!.args.consent).toBe(true);
    ffChannel!.onmessage({ kind: "progress", done: 2 ** 20, total: 4 * 2 ** 20 });
    expect($<HTMLProgressElement>("ffmpeg-progress").value).toBe(0.25);
    expect($("ffmpeg-text").textContent).toBe("Downloading ffmpeg: 1.0 MB / 4.0 MB");
    ffmpeg = { ...ffmpeg, found: { path: "/data/ffmpeg/ffmpeg", source: "downloaded" }, message: null };
    ffChannel!.onmessage({ kind: "done", found: { path: "/data/ffmpeg/ffmpeg", source: "downloaded" } });
    await flush();
    expect($("b").hidden).toBe(true);
  });

  it("offers no download where no static build is known", async () => {
    ffmpeg = { ...ffmpeg, download_url: null, message: "ffmpeg was not found: sudo apt-get install ffmpeg" };
    const b = new FfmpegBanner($("b"));
    await b.check();
    expect(button("ffmpeg-download").hidden).toBe(true);
  });
});
