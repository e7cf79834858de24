// The Mycelium Collective's site, built entirely by this script, as single-page apps are: the
// text comes from a fetch() of JSON, the route is read from the address, a web font is added
// through the FontFace API, images load when scrolled into view, and one request reaches for
// the machine the page runs on (where a careless archiver would find a secret).
(async () => {
  const font = new FontFace('Code Display', 'url(/fonts/code.woff2)');
  document.fonts.add(font);
  font.load().catch(() => {});

  const data = await (await fetch('/data/content.json')).json();
  const route = location.pathname.replace(/index\.html$/, '');
  const page = data.pages[route] || data.pages['/'];
  const app = document.getElementById('app');
  app.textContent = '';

  const nav = document.createElement('nav');
  for (const [href, label] of data.nav) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = label;
    nav.append(a);
  }
  app.append(nav);
  const h1 = document.createElement('h1');
  h1.textContent = page.title;
  app.append(h1);
  for (const text of page.text) {
    const p = document.createElement('p');
    p.textContent = text;
    app.append(p);
  }
  const code = document.createElement('p');
  code.className = 'code';
  code.textContent = page.code;
  app.append(code);

  const lazy = src => {
    const img = document.createElement('img');
    img.className = 'lazy';
    img.alt = '';
    img.dataset.src = src;
    return img;
  };
  app.append(lazy('/img/near.png'));
  const spacer = document.createElement('div');
  spacer.className = 'spacer';
  app.append(spacer);
  app.append(lazy('/img/far.png'));
  const seen = new IntersectionObserver(entries => {
    for (const e of entries) {
      if (e.isIntersecting) {
        e.target.src = e.target.dataset.src;
        seen.unobserve(e.target);
      }
    }
  });
  document.querySelectorAll('img.lazy').forEach(img => seen.observe(img));

  fetch(`http://127.0.0.1:${location.port}/secret`)
    .then(r => (r.ok ? r.text() : ''))
    .then(text => {
      if (text) {
        const p = document.createElement('p');
        p.id = 'secret';
        p.textContent = text;
        app.append(p);
      }
    })
    .catch(() => {});
})();
