// App shell: three views behind tabs; the views talk to Rust only through ./ipc.
import { ipc } from "./ipc";
import { GenerateView } from "./views/generate";
import { GalleryView } from "./views/gallery";
import { ModelsView } from "./views/models";
import { HubView } from "./views/hub";
import { FfmpegBanner } from "./views/ffmpeg";

type ViewName = "generate" | "gallery" | "models";

function show(name: ViewName): void {
  for (const v of ["generate", "gallery", "models"] as const) {
    document.getElementById(`view-${v}`)!.hidden = v !== name;
    document.getElementById(`tab-${v}`)!.classList.toggle("active", v === name);
  }
}

async function start(): Promise<void> {
  const gallery = new GalleryView(document.getElementById("view-gallery")!, (p) => {
    generate.load(p);
    show("generate");
  });
  const generate = new GenerateView(document.getElementById("view-generate")!, () => void gallery.refresh());
  const models = new ModelsView(document.getElementById("view-models")!, () => generate.refresh());
  // Issue 13: the ffmpeg notice above the views, and Models → Download from Hugging Face.
  const banner = document.createElement("div");
  banner.id = "ffmpeg-banner";
  document.querySelector("main")!.before(banner);
  const ffmpeg = new FfmpegBanner(banner);
  const hubRoot = document.createElement("section");
  hubRoot.id = "hub";
  document.getElementById("view-models")!.append(hubRoot);
  const hub = new HubView(hubRoot, async (info) => {
    (document.getElementById("ckpt-path") as HTMLInputElement).value = info.path;
    await models.use();
  });
  for (const b of document.querySelectorAll<HTMLButtonElement>("#nav .tab")) {
    b.addEventListener("click", () => {
      show(b.dataset.view as ViewName);
      if (b.dataset.view === "gallery") void gallery.refresh();
    });
  }
  show("generate");
  await Promise.all([generate.init(), gallery.refresh(), models.init(), hub.init(), ffmpeg.check()]);
  await ipc.onGalleryChanged(() => void gallery.refresh());
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  document.body.dataset.error = String(e?.message ?? e);
  console.error(e);
});
