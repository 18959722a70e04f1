// Keyboard shortcuts: one table shared by the key handler, the tooltips and the native
// menu's accelerators (src-tauri/src/menu.rs binds the same keys as "CmdOrCtrl+…"; a key
// the menu consumes reaches the window as a menu event, so both paths run one action).
// ⌘ on macOS, Ctrl elsewhere.

export type Action =
  | "generate"
  | "cancel"
  | "view-generate"
  | "view-gallery"
  | "view-models"
  | "open-image";

/** Action → key (KeyboardEvent.key) pressed with ⌘ / Ctrl. */
export const SHORTCUTS: Record<Action, string> = {
  generate: "Enter",
  cancel: ".",
  "view-generate": "1",
  "view-gallery": "2",
  "view-models": "3",
  "open-image": "o",
};

export function isMac(platform = typeof navigator === "undefined" ? "" : navigator.platform || navigator.userAgent): boolean {
  return /Mac|iPhone|iPad/i.test(platform);
}

/** How a shortcut is written for this platform: "⌘↵", "⌘1" / "Ctrl+Enter", "Ctrl+1". */
export function shortcutLabel(action: Action, mac = isMac()): string {
  const key = SHORTCUTS[action];
  if (mac) return `⌘${key === "Enter" ? "↵" : key.toUpperCase()}`;
  return `Ctrl+${key.length === 1 ? key.toUpperCase() : key}`;
}

/** "Generate (⌘↵)": a tooltip with the shortcut. */
export function withShortcut(text: string, action: Action, mac = isMac()): string {
  return `${text} (${shortcutLabel(action, mac)})`;
}

/** The action a key press asks for, or null (only ⌘ on macOS, only Ctrl elsewhere). */
export function actionFor(
  e: Pick<KeyboardEvent, "key" | "metaKey" | "ctrlKey" | "altKey" | "shiftKey">,
  mac = isMac(),
): Action | null {
  const mod = mac ? e.metaKey && !e.ctrlKey : e.ctrlKey && !e.metaKey;
  if (!mod || e.altKey || e.shiftKey) return null;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  for (const [action, k] of Object.entries(SHORTCUTS) as [Action, string][]) {
    if (k.toLowerCase() === key.toLowerCase()) return action;
  }
  return null;
}

/**
 * Runs actions, dropping a repeat of the same action within `windowMs`: a shortcut seen
 * both by the page and by the native menu (platform-dependent) runs once.
 */
export class ActionRunner {
  private last: { action: Action; at: number } | null = null;

  constructor(
    private run: (a: Action) => void,
    private windowMs = 300,
    private now: () => number = () => Date.now(),
  ) {}

  dispatch(action: Action): boolean {
    const t = this.now();
    if (this.last && this.last.action === action && t - this.last.at < this.windowMs) return false;
    this.last = { action, at: t };
    this.run(action);
    return true;
  }
}
