// App shell: three views behind tabs; the views talk to Rust only through ./ipc.
// Shortcuts (⌘/Ctrl + ↵ . 1 2 3 O) and the native menu run the same actions.
import { asAppError, ipc } from "./ipc";
import { GenerateView } from "./views/generate";
import { GalleryView } from "./views/gallery";
import { ModelsView } from "./views/models";
import { ActionRunner, actionFor, withShortcut, type Action } from "./shortcuts";
import { applyAppearance } from "./theme";
import { HubView } from "./views/hub";
import { FfmpegBanner } from "./views/ffmpeg";

type ViewName = "generate" | "gallery" | "models";
const VIEWS = ["generate", "gallery", "models"] as const;

function show(name: ViewName): void {
  for (const v of VIEWS) {
    document.getElementById(`view-${v}`)!.hidden = v !== name;
    const tab = document.getElementById(`tab-${v}`)!;
    tab.classList.toggle("active", v === name);
    tab.setAttribute("aria-current", v === name ? "page" : "false");
  }
  // Models is a page of settings: each visit starts at its top (the checkpoint). This also
  // keeps WebKitWebDriver able to reach its first fields (it does not scroll a nested
  // scroller back up to an element hidden above).
  if (name === "models") document.getElementById("view-models")!.scrollTop = 0;
}

let toastTimer: ReturnType<typeof setTimeout> | null = null;

/** A short message at the bottom of the window. */
export function toast(msg: string): void {
  const t = document.getElementById("toast")!;
  t.textContent = msg;
  t.hidden = false;
  if (toastTimer) clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 4000);
}

async function start(): Promise<void> {
  const gallery = new GalleryView(
    document.getElementById("view-gallery")!,
    (p, continuation) => {
      void generate.load(p, continuation);
      show("generate");
    },
    async (c) => {
      await generate.continueFrom(c);
      show("generate");
      document.getElementById("prompt")?.focus();
    },
  );
  const generate = new GenerateView(document.getElementById("view-generate")!, () => void gallery.refresh());
  const models = new ModelsView(document.getElementById("view-models")!, () => generate.refresh());

  const run = (a: Action): void => {
    switch (a) {
      case "generate":
        show("generate");
        void generate.submit().then((id) => {
          if (id === null) toast(document.getElementById("errors")?.textContent || "Nothing was queued.");
        });
        break;
      case "cancel":
        void generate.cancelCurrent().then((ok) => ok || toast("No job is running."));
        break;
      case "open-image":
        show("generate");
        if (document.getElementById("image-zone")?.hidden) toast("This task is text-only: choose ti2v-5B or i2v-A14B for an image.");
        else void generate.pickImage();
        break;
      case "view-generate":
      case "view-gallery":
      case "view-models": {
        const v = a.slice(5) as ViewName;
        show(v);
        if (v === "gallery") void gallery.refresh();
        break;
      }
    }
  };
  const runner = new ActionRunner(run);
  window.addEventListener("keydown", (e) => {
    const a = actionFor(e);
    if (!a || e.repeat) return;
    e.preventDefault();
    runner.dispatch(a);
  });

  // Issue 13: the ffmpeg notice above the views, and Models → Download from Hugging Face.
  const banner = document.createElement("div");
  banner.id = "ffmpeg-banner";
  document.querySelector("main")!.before(banner);
  const ffmpeg = new FfmpegBanner(banner);
  const hubRoot = document.createElement("section");
  hubRoot.id = "hub";
  hubRoot.className = "card";
  document.getElementById("models-checkpoint")!.after(hubRoot);
  const hub = new HubView(hubRoot, async (info) => {
    (document.getElementById("ckpt-path") as HTMLInputElement).value = info.path;
    await models.use();
  });
  for (const b of document.querySelectorAll<HTMLButtonElement>("#nav .tab")) {
    const v = b.dataset.view as ViewName;
    b.title = withShortcut(b.textContent ?? v, `view-${v}` as Action);
    b.addEventListener("click", () => {
      show(v);
      if (v === "gallery") void gallery.refresh();
    });
  }
  show("generate");
  const settings = await ipc.getSettings();
  applyAppearance(settings.appearance ?? "system");
  await Promise.all([generate.init(), gallery.refresh(), models.init(), hub.init(), ffmpeg.check()]);
  await ipc.onGalleryChanged(() => void gallery.refresh());
  await ipc.onMenu((id) => {
    if (id.startsWith("error:")) toast(id.slice(6));
    else runner.dispatch(id as Action);
  });
  await ipc.onOpenClip(async (id) => {
    await gallery.refresh();
    show("gallery");
    if (!gallery.select(id)) toast("That clip is no longer in the gallery.");
  });
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  document.body.dataset.error = String(e?.message ?? asAppError(e).message);
  console.error(e);
});
