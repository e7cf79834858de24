// vaultkeep: the page as the browser has rendered it, as HTML that opens offline and runs
// nothing (after SingleFile's and monolith's practice). It changes the live document, so it
// runs last, after the screenshot.
(() => {
  const d = document;
  const roots = [];
  const walk = root => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) {
        roots.push(el.shadowRoot);
        walk(el.shadowRoot);
      }
    }
  };
  walk(d);
  const everywhere = selector => [d, ...roots].flatMap(r => Array.from(r.querySelectorAll(selector)));
  const rulesText = sheet => {
    try { return Array.from(sheet.cssRules, r => r.cssText).join('\n'); } catch (e) { return null; }
  };

  // Rules added through the CSSOM (insertRule: CSS-in-JS libraries) are not in the markup.
  for (const style of everywhere('style')) {
    const text = style.sheet ? rulesText(style.sheet) : null;
    if (text === null) continue;
    let parsed = -1;
    try {
      const probe = new CSSStyleSheet();
      probe.replaceSync(style.textContent);
      parsed = probe.cssRules.length;
    } catch (e) { /* compare by text below */ }
    if (parsed !== style.sheet.cssRules.length) style.textContent = text;
  }
  // Constructed style sheets, adopted by the document or a shadow root.
  const adopt = (root, into, first) => {
    for (const sheet of root.adoptedStyleSheets || []) {
      const text = rulesText(sheet);
      if (!text) continue;
      const style = d.createElement('style');
      style.textContent = text;
      if (first) into.prepend(style); else into.append(style);
    }
  };
  adopt(d, d.body || d.documentElement, false);
  for (const root of roots) adopt(root, root, true);
  // Fonts that scripts added through the FontFace API (noted by the hook).
  const descriptorNames = {
    style: 'font-style', weight: 'font-weight', stretch: 'font-stretch',
    unicodeRange: 'unicode-range', display: 'font-display', featureSettings: 'font-feature-settings',
  };
  const fonts = (window.__vaultkeepFonts || []).map(f => {
    const extra = Object.entries(f.descriptors)
      .filter(([k]) => descriptorNames[k])
      .map(([k, v]) => `${descriptorNames[k]}:${v};`).join('');
    return `@font-face{font-family:${JSON.stringify(f.family)};src:${f.src};${extra}}`;
  });
  if (fonts.length && d.head) {
    const style = d.createElement('style');
    style.textContent = fonts.join('\n');
    d.head.append(style);
  }

  // What the visitor typed or chose.
  for (const input of everywhere('input')) {
    if (input.type === 'checkbox' || input.type === 'radio') {
      input.toggleAttribute('checked', input.checked);
    } else if (input.type !== 'password' && input.type !== 'file') {
      input.setAttribute('value', input.value);
    }
  }
  for (const area of everywhere('textarea')) area.textContent = area.value;
  for (const option of everywhere('option')) option.toggleAttribute('selected', option.selected);
  // Canvases, as the pictures they show.
  for (const canvas of everywhere('canvas')) {
    try {
      const img = d.createElement('img');
      img.src = canvas.toDataURL();
      for (const name of ['id', 'class', 'style', 'width', 'height']) {
        if (canvas.hasAttribute(name)) img.setAttribute(name, canvas.getAttribute(name));
      }
      const box = canvas.getBoundingClientRect();
      img.style.width = `${box.width}px`;
      img.style.height = `${box.height}px`;
      canvas.replaceWith(img);
    } catch (e) { /* a canvas tainted by another origin stays blank */ }
  }
  // Images as shown: the source the browser chose, loaded now rather than lazily.
  for (const img of everywhere('img')) {
    if (img.currentSrc && !img.currentSrc.startsWith('blob:') && (img.srcset || img.closest('picture'))) {
      img.setAttribute('src', img.currentSrc);
      img.removeAttribute('srcset');
      img.removeAttribute('sizes');
    }
    img.removeAttribute('loading');
  }
  for (const source of everywhere('picture > source')) source.remove();

  // Nothing runs offline: scripts go (data blocks stay), and so do event handlers,
  // javascript: URLs, preloads of scripts, refreshes, and frames' scripts.
  const data = /^(application\/(ld\+)?json|text\/template|text\/x-template)$/i;
  for (const script of everywhere('script')) {
    if (!data.test(script.type)) script.remove();
  }
  for (const el of everywhere('*')) {
    for (const attr of Array.from(el.attributes)) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on')) el.removeAttribute(attr.name);
      else if (['href', 'src', 'action', 'formaction', 'xlink:href'].includes(name) && /^\s*javascript:/i.test(attr.value)) {
        el.setAttribute(attr.name, '#');
      }
    }
  }
  for (const link of everywhere('link')) {
    const rel = (link.rel || '').toLowerCase();
    if (/modulepreload|prefetch|preconnect|dns-prefetch|serviceworker|manifest/.test(rel)
        || (rel.includes('preload') && link.as === 'script')) link.remove();
  }
  for (const frame of everywhere('iframe, frame')) frame.setAttribute('sandbox', 'allow-same-origin allow-popups');
  for (const meta of everywhere('meta')) {
    const equiv = (meta.httpEquiv || '').toLowerCase();
    if (meta.hasAttribute('charset') || ['refresh', 'content-security-policy', 'content-type'].includes(equiv)) meta.remove();
  }
  if (d.head) {
    const charset = d.createElement('meta');
    charset.setAttribute('charset', 'utf-8');
    d.head.prepend(charset);
  }

  const html = d.documentElement;
  const escape = v => v.replace(/&/g, '&amp;').replace(/"/g, '&quot;');
  const attrs = Array.from(html.attributes, a => ` ${a.name}="${escape(a.value)}"`).join('');
  const inner = typeof html.getHTML === 'function'
    ? html.getHTML({ serializableShadowRoots: true, shadowRoots: roots })
    : html.innerHTML;
  const doctype = d.doctype ? `<!DOCTYPE ${d.doctype.name}>\n` : '';
  const from = location.href.replace(/--/g, '%2D%2D');
  return {
    html: `${doctype}<!-- Rendered by vaultkeep from ${from}; scripts removed -->\n<html${attrs}>${inner}</html>`,
    base: d.baseURI,
    title: d.title,
  };
})()
