// App shell: three views behind tabs; the views talk to Rust only through ./ipc.
import { ipc } from "./ipc";
import { GenerateView } from "./views/generate";
import { GalleryView } from "./views/gallery";
import { ModelsView } from "./views/models";

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
  for (const b of document.querySelectorAll<HTMLButtonElement>("#nav .tab")) {
    b.addEventListener("click", () => {
      show(b.dataset.view as ViewName);
      if (b.dataset.view === "gallery") void gallery.refresh();
    });
  }
  show("generate");
  await Promise.all([generate.init(), gallery.refresh(), models.init()]);
  await ipc.onGalleryChanged(() => void gallery.refresh());
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  document.body.dataset.error = String(e?.message ?? e);
  console.error(e);
});
