// Playing a gallery clip in a <video>. WebKitGTK (the Linux webview) cannot stream media
// from a custom URI scheme such as Tauri's asset protocol (tauri-apps/tauri#3725, an
// upstream WebKit limitation): the element fails with MEDIA_ERR_SRC_NOT_SUPPORTED although
// the same URL loads fine through fetch. On that error the clip's bytes are fetched through
// the same gallery-scoped asset protocol and played from a blob: URL. macOS (WKWebView)
// plays the asset URL directly and never takes this path.
import { ipc } from "./ipc";

const blobUrls = new WeakMap<HTMLVideoElement, string>();

function setBlob(v: HTMLVideoElement, url: string): void {
  const old = blobUrls.get(v);
  if (old) URL.revokeObjectURL(old);
  blobUrls.set(v, url);
  v.src = url;
}

/** Free the blob (if any) a video element holds; call when the element goes away. */
export function releaseClip(v: HTMLVideoElement): void {
  const old = blobUrls.get(v);
  if (old) URL.revokeObjectURL(old);
  blobUrls.delete(v);
}

/**
 * Point `v` at the clip file `path`. If the webview cannot play it from the asset URL, play
 * it from memory instead; `onFail` runs when neither works (e.g. no H.264 decoder).
 */
export function playClip(v: HTMLVideoElement, path: string, onFail?: () => void): void {
  const url = ipc.fileUrl(path);
  let triedBlob = false;
  v.onerror = () => {
    const unsupported = v.error?.code === 4; // MEDIA_ERR_SRC_NOT_SUPPORTED
    if (!unsupported || triedBlob) {
      onFail?.();
      return;
    }
    triedBlob = true;
    fetch(url)
      .then((r) => {
        if (!r.ok) throw new Error(`${r.status}`);
        return r.blob();
      })
      .then((b) => setBlob(v, URL.createObjectURL(new Blob([b], { type: "video/mp4" }))))
      .catch(() => onFail?.());
  };
  releaseClip(v);
  v.src = url;
}
