// vaultkeep, before any script of the page: fonts added through the FontFace API leave no
// trace in the markup, so note each one's source for the serializer (as SingleFile does).
(() => {
  const Native = window.FontFace;
  if (!Native || window.__vaultkeepFonts) return;
  const fonts = [];
  Object.defineProperty(window, '__vaultkeepFonts', { value: fonts });
  const MAX = 5 * 1024 * 1024;
  const dataUrl = buffer => {
    const bytes = new Uint8Array(buffer.buffer || buffer, buffer.byteOffset || 0, buffer.byteLength);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return `url(data:application/octet-stream;base64,${btoa(text)})`;
  };
  window.FontFace = new Proxy(Native, {
    construct(target, args, newTarget) {
      const [family, source, descriptors] = args;
      try {
        let src = null;
        if (typeof source === 'string') src = source;
        else if (source && typeof source.byteLength === 'number' && source.byteLength <= MAX) src = dataUrl(source);
        if (src) fonts.push({ family: String(family), src, descriptors: Object.assign({}, descriptors || {}) });
      } catch (e) { /* the page's font still loads */ }
      return Reflect.construct(target, args, newTarget);
    },
  });
})();
