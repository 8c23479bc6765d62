// Per-example browser of `harness compare`'s report: the data is the JSON block in the page.
(function () {
  const groups = JSON.parse(document.getElementById('examples-data').textContent);
  const byId = (id) => document.getElementById(id);
  const gSel = byId('group'), fSel = byId('filter'), search = byId('search');
  const head = byId('head'), body = byId('rows'), count = byId('count');
  const more = byId('more'), rule = byId('rule');
  let limit = 100;

  function cell(tag, text, cls) {
    const c = document.createElement(tag);
    c.textContent = text;
    if (cls) c.className = cls;
    return c;
  }

  function option(select, value, text) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }

  function setGroup() {
    const g = groups[gSel.value];
    fSel.innerHTML = '';
    option(fSel, 'all', 'all examples');
    g.models.forEach((m, i) => option(fSel, 'wrong:' + i, m + ' wrong'));
    for (let i = 0; i < g.models.length; i++) {
      for (let j = i + 1; j < g.models.length; j++) {
        option(fSel, 'disagree:' + i + ':' + j, g.models[i] + ' and ' + g.models[j] + ' disagree');
      }
    }
    rule.textContent = g.rule;
    limit = 100;
    render();
  }

  function keep(ex) {
    const f = fSel.value.split(':');
    if (f[0] === 'wrong' && ex.ok[+f[1]] !== false) return false;
    if (f[0] === 'disagree') {
      const a = ex.pred[+f[1]], b = ex.pred[+f[2]];
      if (a === null || b === null || a === b) return false;
    }
    const q = search.value.toLowerCase();
    const text = ex.prompt + ' ' + ex.refs.join(' ') + ' ' + ex.pred.join(' ');
    return !q || text.toLowerCase().includes(q);
  }

  function render() {
    const g = groups[gSel.value];
    head.innerHTML = '';
    body.innerHTML = '';
    const tr = document.createElement('tr');
    ['#', 'prompt', 'reference'].concat(g.models).forEach((h) => tr.appendChild(cell('th', h)));
    head.appendChild(tr);
    const shown = g.examples.filter(keep);
    shown.slice(0, limit).forEach((ex) => {
      const r = document.createElement('tr');
      r.appendChild(cell('td', String(ex.i)));
      r.appendChild(cell('td', ex.prompt, 'prompt'));
      r.appendChild(cell('td', ex.refs.join(' | ')));
      g.models.forEach((m, k) => {
        const state = ex.ok[k] === false ? 'bad' : ex.ok[k] ? 'good' : '';
        const c = cell('td', ex.pred[k] === null ? '(not run)' : ex.pred[k], 'pred ' + state);
        const scores = Object.entries(ex.scores[k])
          .map(([n, v]) => n + '=' + (v === null ? '–' : (+v).toFixed(3))).join('  ');
        if (scores) c.appendChild(cell('span', scores, 'score'));
        r.appendChild(c);
      });
      body.appendChild(r);
    });
    count.textContent = 'showing ' + Math.min(limit, shown.length) + ' of ' + shown.length +
      ' matching (' + g.examples.length + ' loaded, ' + g.total + ' in the run)';
    more.style.display = shown.length > limit ? '' : 'none';
  }

  groups.forEach((g, i) => option(gSel, i, g.id));
  gSel.onchange = setGroup;
  fSel.onchange = () => { limit = 100; render(); };
  search.oninput = () => { limit = 100; render(); };
  more.onclick = () => { limit += 100; render(); };
  if (groups.length) {
    setGroup();
  } else {
    byId('browser').textContent = 'No run was logged with --log-samples.';
  }
})();
