// The colour theme: light, dark or system (follows prefers-color-scheme),
// saved in localStorage and applied as data-theme on <html>. Owns the
// theme picker in the header.

const KEY = 'peershare.theme';
const CHOICES = ['system', 'light', 'dark'];

function saved() {
  try {
    const value = localStorage.getItem(KEY);
    return CHOICES.includes(value) ? value : 'system';
  } catch {
    return 'system';
  }
}

function apply(choice) {
  document.documentElement.dataset.theme = choice;
}

/** Applies the saved theme and wires the header's picker. */
export function mount() {
  const choice = saved();
  apply(choice);
  const select = document.getElementById('theme');
  if (!select) return;
  select.value = choice;
  select.addEventListener('change', () => {
    const next = CHOICES.includes(select.value) ? select.value : 'system';
    apply(next);
    try {
      localStorage.setItem(KEY, next);
    } catch { /* private mode: the choice lasts this page only */ }
  });
}
