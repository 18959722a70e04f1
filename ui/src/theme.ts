// Appearance: the page follows the system (prefers-color-scheme) unless the user picked
// light or dark, which sets data-theme on <html> (style.css keys its tokens on both).
import type { Appearance } from "./ipc";

export function applyAppearance(a: Appearance, root: HTMLElement = document.documentElement): void {
  if (a === "system") delete root.dataset.theme;
  else root.dataset.theme = a;
}
