"""Checks a person with a phone, a keyboard or weak eyesight relies on, run inside a real
browser page (Playwright): no sideways scrolling, a label for every control, readable contrast
(WCAG 2.2 AA: 4.5:1 for text, 3:1 for large text), targets big enough to tap, and what the Tab
key reaches, in order. Each check returns what fails, so a test can show it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

_SIDEWAYS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"

_UNLABELLED = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, textarea'))
  .filter(e => !e.closest('[aria-hidden=true]'))
  .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML)"""

_LOW_CONTRAST = """() => {
  const parse = (c) => {
    const p = c.match(/[\\d.]+/g).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c.a > 0.99) return c;
    }
    return parse(getComputedStyle(document.documentElement).backgroundColor || 'rgb(255,255,255)');
  };
  const failing = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('[aria-hidden=true]') || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || el.closest(':disabled, [aria-disabled=true]')) continue;
    const fg = parse(style.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      failing.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1`);
    }
  }
  return failing;
}"""

_SMALL_TARGETS = """() => Array.from(document.querySelectorAll(
    'button, a.button, .slots label, input[type=radio] + label, select, input[type=text],'
    + ' input[type=email], textarea'))
  .filter(e => !e.closest('[aria-hidden=true]') && e.getClientRects().length)
  .map(e => [e, e.getBoundingClientRect()])
  .filter(([e, r]) => r.height < 24 || r.width < 24)
  .map(([e, r]) => `${e.tagName} "${e.textContent.trim().slice(0, 30)}" ${r.width}x${r.height}`)"""

_FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const r = e.getBoundingClientRect();
  return {tag: e.tagName.toLowerCase(), id: e.id, name: e.getAttribute('name') || '',
          type: e.getAttribute('type') || '', value: e.value || '',
          text: (e.textContent || '').trim().slice(0, 60),
          hidden: !!e.closest('[aria-hidden=true]')};
}"""


def sideways_scroll(page: Page) -> int:
    """Pixels the page is wider than the screen (0: no horizontal scrolling)."""
    return int(page.evaluate(_SIDEWAYS))


def unlabelled_controls(page: Page) -> list[str]:
    return list(page.evaluate(_UNLABELLED))


def low_contrast_text(page: Page) -> list[str]:
    return list(page.evaluate(_LOW_CONTRAST))


def small_targets(page: Page) -> list[str]:
    return list(page.evaluate(_SMALL_TARGETS))


def page_problems(page: Page) -> dict[str, Any]:
    """Every check above that fails on the page as it is now."""
    found: dict[str, Any] = {
        "sideways scroll (px)": sideways_scroll(page),
        "unlabelled": unlabelled_controls(page),
        "low contrast": low_contrast_text(page),
        "small targets": small_targets(page),
    }
    return {check: value for check, value in found.items() if value}


def focused(page: Page) -> dict[str, Any] | None:
    value = page.evaluate(_FOCUSED)
    return dict(value) if value else None


def tab_to(page: Page, wanted: str, *, limit: int = 80) -> list[dict[str, Any]]:
    """Press Tab until the element matching CSS ``wanted`` has the focus; everything focused on
    the way (the focus order). AssertionError when Tab never reaches it."""
    seen: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if now is not None:
            seen.append(now)
        if page.evaluate("(s) => document.activeElement.matches(s)", wanted):
            return seen
    raise AssertionError(f"Tab never reached {wanted}: {seen}")
