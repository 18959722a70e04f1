// The one typed IPC module: every command, event and channel the UI uses, with the
// Rust types mirrored. Views never call `invoke` directly.
import { Channel, convertFileSrc, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

export type Task = "ti2v-5B" | "t2v-A14B" | "i2v-A14B";
export type Solver = "unipc" | "dpm++" | "euler";
export type Stage = "load_models" | "encode_text" | "encode_image" | "denoise" | "decode" | "done";

/** `wan::pipeline::GenerateParams` (size is [W, H]; guide_scale is [low, high]). */
export interface GenerateParams {
  task: Task;
  prompt: string;
  negative_prompt: string | null;
  size: [number, number];
  frame_num: number;
  sample_steps: number;
  sample_shift: number;
  guide_scale: [number, number];
  solver: Solver;
  seed: number;
  image: string | null;
  /** `off` (absent), `magcache[:…]` or `easycache[:…]`. */
  step_cache?: string;
  /** LoRA merged at load (a file, or a Lightning folder with one file per A14B expert). */
  lora?: LoraSpec | null;
}

/** `wan::lora_file::LoraSpec`. */
export interface LoraSpec {
  scale: number;
  all?: string;
  high?: string;
  low?: string;
}

export interface TaskPreset {
  task: Task;
  sizes: [number, number][];
  size_multiple: [number, number];
  frame_num: number;
  fps: number;
  sample_steps: number;
  sample_shift: number;
  guide_scale: [number, number];
  needs_image: boolean;
  accepts_image: boolean;
}

export interface PreviewMsg {
  width: number;
  height: number;
  /** base64 RGB8, one per frame */
  frames: string[];
}

export interface Timings {
  load_s: number;
  text_s: number;
  denoise_s: number;
  decode_s: number;
}

export interface ClipRecord {
  id: string;
  created_unix_ms: number;
  params: GenerateParams;
  negative_prompt_used: string;
  model: { path: string; name: string; engine: string };
  width: number;
  height: number;
  frames: number;
  fps: number;
  timings: Timings;
  wall_s: number;
  /** The clip this one continues (its last frame was this clip's image). */
  parent?: string | null;
}

export interface ClipEntry {
  record: ClipRecord;
  dir: string;
  clip: string;
  poster: string;
}

export type JobEvent =
  | { kind: "started" }
  | { kind: "stage"; stage: Stage }
  | {
      kind: "step";
      step: number;
      total: number;
      elapsed_s: number;
      eta_s: number;
      sent_ms: number;
      preview: PreviewMsg | null;
    }
  | { kind: "decode"; done: number; total: number }
  | { kind: "warning"; message: string }
  | { kind: "finished"; clip: ClipEntry }
  | {
      kind: "convert";
      tensor: string;
      done_bytes: number;
      total_bytes: number;
      elapsed_s: number;
      eta_s: number;
    }
  | { kind: "fit_preview" }
  | { kind: "converted"; result: Converted }
  | { kind: "failed"; error: AppError }
  | { kind: "cancelled" };

/** Float dtype of a converted checkpoint. */
export type ConvertDtype = "bf16" | "f16" | "f32";

/** 8- or 4-bit DiT weights in a converted checkpoint (null: dense in the dtype). */
export type ConvertQuant = "q8" | "q4";

/** One "Convert to MLX" level with its predicted size and measured drift (`jobs::convert::ConvertLevel`). */
export interface ConvertLevel {
  quantize: ConvertQuant | null;
  bytes: number;
  drift: string | null;
}

/** What a finished conversion reports (`jobs::convert::Converted`). */
export interface Converted {
  info: CheckpointInfo;
  /** Now the chosen checkpoint (persisted). */
  selected: boolean;
  /** `preview_mlx.safetensors` stored beside the weights (live previews without a fit). */
  previewer: boolean;
  tensors: number;
  bytes: number;
  wall_s: number;
}

export interface JobSummary {
  id: number;
  /** A conversion's `prompt` is a one-line description; its size/frames/steps are 0. */
  kind: "generate" | "convert";
  prompt: string;
  task: Task;
  size: [number, number];
  frames: number;
  steps: number;
}

export interface QueueSnapshot {
  running: JobSummary | null;
  pending: JobSummary[];
}

export interface DitInfo {
  dim: number;
  num_layers: number;
  num_heads: number;
  model_type: string;
  bytes: number;
}

export interface CheckpointInfo {
  path: string;
  /** "Official" can be converted; null when not recognised. */
  layout: "Official" | "Converted" | null;
  task: Task | null;
  name: string;
  dits: DitInfo[];
  total_bytes: number;
  problems: string[];
}

/** The library's memory plan for a run (`wan::memory::PlanReport`). */
export interface MemoryPlan {
  fits: boolean;
  predicted_peak_bytes: number;
  /** Predicted bytes per phase: text, image, load, denoise, decode. */
  phases: Record<string, number>;
  budget_bytes: number;
  machine_bytes: number;
  backend: "cpu" | "metal";
  plan: {
    dtype: string;
    quantization: { bits: number; group_size: number } | null;
    one_expert_at_a_time: boolean;
    batch_cfg: boolean;
    /** Each DiT block over this many token chunks (1: the whole sequence). */
    token_chunks: number;
    text_from_cache: boolean;
    vae_tile: { tile: number; overlap: number } | null;
  };
  /** Why nothing fits, and what would. */
  reason: string | null;
  /** "≈ 11.8 GB of 16.0 GB · q8 · tiled decode". */
  summary: string;
}

/** @deprecated the memory check is the plan now. */
export type MemoryEstimate = MemoryPlan;

export type Appearance = "system" | "light" | "dark";

export interface Settings {
  checkpoint_dir: string | null;
  last_params: GenerateParams | null;
  /** Prompts of queued jobs, newest first (at most 50). */
  prompt_history?: string[];
  appearance?: Appearance;
}

export interface AppInfo {
  data_dir: string;
  gallery_dir: string;
  machine_bytes: number;
  engine: string;
}

export interface ImageInfo {
  path: string;
  width: number;
  height: number;
  data_url: string;
}

/** What every command rejects with. */
export interface AppError {
  code: string;
  message: string;
}

/** Normalise anything thrown by `invoke` into an AppError. */
export function asAppError(e: unknown): AppError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    return { code: String(e.code), message: String(e.message) };
  }
  return { code: "internal", message: String(e) };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw asAppError(e);
  }
}

export const ipc = {
  taskPresets: () => call<TaskPreset[]>("task_presets"),
  defaultNegativePrompt: () => call<string>("default_negative_prompt"),
  /**
   * Queue a job; its events arrive on `onEvent` until finished/failed/cancelled. `parent`:
   * the gallery clip it continues (recorded in the new clip's record).
   */
  enqueue: (params: GenerateParams, onEvent: (e: JobEvent) => void, parent: string | null = null) => {
    const ch = new Channel<JobEvent>();
    ch.onmessage = onEvent;
    return call<number>("enqueue", { params, parent, onEvent: ch });
  },
  queueSnapshot: () => call<QueueSnapshot>("queue_snapshot"),
  cancelJob: (id: number) => call<void>("cancel_job", { id }),
  moveJob: (id: number, index: number) => call<void>("move_job", { id, index }),
  readImage: (path: string) => call<ImageInfo>("read_image", { path }),
  listClips: () => call<ClipEntry[]>("list_clips"),
  deleteClip: (id: string) => call<void>("delete_clip", { id }),
  exportClip: (id: string, dest: string) => call<void>("export_clip", { id, dest }),
  revealClip: (id: string) => call<void>("reveal_clip", { id }),
  /** The clip's last frame as an image (extracted once into its gallery folder). */
  clipLastFrame: (id: string) => call<ImageInfo>("clip_last_frame", { id }),
  /** Write the chain ending at `id` as one mp4 at `dest`; resolves with the number of clips. */
  joinClips: (id: string, dest: string) => call<number>("join_clips", { id, dest }),
  setAppearance: (appearance: Appearance) => call<void>("set_appearance", { appearance }),
  inspectCheckpoint: (path: string) => call<CheckpointInfo>("inspect_checkpoint", { path }),
  setCheckpoint: (path: string) => call<CheckpointInfo>("set_checkpoint", { path }),
  getSettings: () => call<Settings>("get_settings"),
  appInfo: () => call<AppInfo>("app_info"),
  /** The memory plan of a run with the selected checkpoint on this machine. */
  memoryEstimate: (params: GenerateParams) => call<MemoryPlan>("memory_estimate", { params }),
  /** Queue a conversion of `src` (official) into the new folder `dst`; events as for jobs. */
  convertCheckpoint: (
    src: string,
    dst: string,
    dtype: ConvertDtype,
    select: boolean,
    onEvent: (e: JobEvent) => void,
    quantize: ConvertQuant | null = null,
  ) => {
    const ch = new Channel<JobEvent>();
    ch.onmessage = onEvent;
    return call<number>("convert_checkpoint", { src, dst, dtype, select, quantize, onEvent: ch });
  },
  /** Predicted size (and measured drift) of each convert level of `src` in `dtype`. */
  convertEstimate: (src: string, dtype: ConvertDtype) =>
    call<ConvertLevel[]>("convert_estimate", { src, dtype }),
  onQueueChanged: (f: (s: QueueSnapshot) => void): Promise<UnlistenFn> =>
    listen<QueueSnapshot>("queue-changed", (e) => f(e.payload)),
  onGalleryChanged: (f: () => void): Promise<UnlistenFn> => listen("gallery-changed", () => f()),
  /** A native menu item the window handles (its id; "error:…" when the menu failed). */
  onMenu: (f: (id: string) => void): Promise<UnlistenFn> => listen<string>("menu", (e) => f(e.payload)),
  /** A notification of a finished clip was clicked: show that clip. */
  onOpenClip: (f: (id: string) => void): Promise<UnlistenFn> => listen<string>("open-clip", (e) => f(e.payload)),
  /** URL for a gallery file (asset protocol, scoped to the gallery folder). */
  fileUrl: (path: string) => convertFileSrc(path),
};

import { open, save } from "@tauri-apps/plugin-dialog";
import { getCurrentWebview } from "@tauri-apps/api/webview";

export const dialogs = {
  pickFolder: async () => (await open({ directory: true, multiple: false })) as string | null,
  pickImage: async () =>
    (await open({
      multiple: false,
      filters: [{ name: "Images", extensions: ["png", "jpg", "jpeg"] }],
    })) as string | null,
  pickLora: async () =>
    (await open({
      multiple: false,
      filters: [{ name: "LoRA (safetensors)", extensions: ["safetensors"] }],
    })) as string | null,
  pickExport: (name: string) =>
    save({ defaultPath: name, filters: [{ name: "MP4 video", extensions: ["mp4"] }] }),
  /** Files dropped on the window (Tauri gives real paths; the web drop event does not). */
  onFileDrop: async (f: (paths: string[]) => void): Promise<UnlistenFn> =>
    getCurrentWebview().onDragDropEvent((e) => {
      if (e.payload.type === "drop") f(e.payload.paths);
    }),
};

// ---- Downloads: Hugging Face repos (Models → Download) and ffmpeg (issue 13) ----

/** An official repo the Download section offers (`wan::hub::KnownRepo`). */
export interface KnownRepo {
  id: string;
  task: Task;
}

/** `wan::hub::Progress`: per file and total, ETA from this run's speed. */
export interface HubProgress {
  file: string;
  file_index: number;
  files: number;
  file_done: number;
  file_size: number;
  done: number;
  total: number;
  received: number;
  elapsed_s: number;
  eta_s: number | null;
}

export interface DownloadSummary {
  repo: string;
  commit: string;
  dest: string;
  files: number;
  total_bytes: number;
  received: number;
  reused: number;
  wall_s: number;
}

export type DownloadEvent =
  | { kind: "started"; repo: string; dest: string }
  | { kind: "progress"; progress: HubProgress }
  | { kind: "finished"; summary: DownloadSummary; info: CheckpointInfo; selected: boolean }
  | { kind: "failed"; error: AppError }
  | { kind: "cancelled"; kept_bytes: number };

/** A repo in the models folder: nothing yet, unfinished (resumable), complete, or a foreign folder. */
export interface RepoState {
  repo: string;
  dest: string;
  state: "absent" | "unfinished" | "complete" | "other";
  have_bytes: number;
  total_bytes: number;
}

export interface FfmpegFound {
  path: string;
  source: "sidecar" | "env" | "path" | "downloaded";
}

export interface FfmpegStatus {
  found: FfmpegFound | null;
  message: string | null;
  download_url: string | null;
  download_dir: string;
}

export type FfmpegEvent =
  | { kind: "progress"; done: number; total: number }
  | { kind: "unpacking" }
  | { kind: "done"; found: FfmpegFound }
  | { kind: "failed"; error: AppError };

export const downloads = {
  hubRepos: () => call<KnownRepo[]>("hub_repos"),
  modelsDir: () => call<string>("models_dir"),
  setModelsDir: (path: string) => call<string>("set_models_dir", { path }),
  repoState: (repo: string) => call<RepoState>("hub_repo_state", { repo }),
  /** Download (or resume) `repo` into the models folder; resolves with the download id. */
  downloadModel: (repo: string, select: boolean, onEvent: (e: DownloadEvent) => void) => {
    const ch = new Channel<DownloadEvent>();
    ch.onmessage = onEvent;
    return call<number>("download_model", { repo, select, onEvent: ch });
  },
  cancelDownload: (id: number) => call<void>("cancel_download", { id }),
  ffmpegStatus: () => call<FfmpegStatus>("ffmpeg_status"),
  /** Only after the user agreed: fetch a static ffmpeg into the data dir. */
  downloadFfmpeg: (onEvent: (e: FfmpegEvent) => void) => {
    const ch = new Channel<FfmpegEvent>();
    ch.onmessage = onEvent;
    return call<void>("download_ffmpeg", { consent: true, onEvent: ch });
  },
  /** Stop the ffmpeg download in flight (it then reports `failed` with code `cancelled`). */
  cancelFfmpeg: () => call<void>("cancel_ffmpeg_download"),
};
