
// Draws the report from the JSON in #picket-data. Everything in that JSON comes from the capture
// and is untrusted: it reaches the page only through textContent and attribute values, never as
// markup.
(function () {
  "use strict";

  window.addEventListener("error", function (e) {
    var p = document.getElementById("failure");
    p.hidden = false;
    p.textContent = "The report could not be drawn completely: " + e.message;
  });

  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#c0392b", "#e67e22", "#2e86c1", "#8e44ad", "#16a085", "#d4ac0d",
    "#5d6d7e", "#a93226", "#1f618d", "#117a65", "#af601a", "#6c3483"];
  var NO_APP = "#b8bec7";
  var PAGE = 500;

  var data = JSON.parse(document.getElementById("picket-data").textContent);
  var summary = data.summary;

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  }

  function num(n) { return Number(n).toLocaleString("en-US"); }

  var UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function bytes(b) {
    var v = Number(b), u = 0;
    while (v >= 1024 && u + 1 < UNITS.length) { v /= 1024; u += 1; }
    return u === 0 ? v + " B" : v.toFixed(1) + " " + UNITS[u];
  }

  // "2024-05-01T12:00:03.250000Z" -> "2024-05-01 12:00:03.250"
  function when(ts) { return String(ts).replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1"); }

  function utc(secs, withDate) {
    var s = new Date(secs * 1000).toISOString();
    return withDate ? s.slice(5, 10) + " " + s.slice(11, 16) : s.slice(11, 19);
  }

  function endpoint(ip, port) {
    return (String(ip).indexOf(":") >= 0 ? "[" + ip + "]" : ip) + ":" + port;
  }

  function badge(verdict) {
    return verdict ? el("span", "badge " + verdict, verdict) : el("span", "", "");
  }

  function cell(row, text, cls, title) {
    var td = el("td", cls || "", text);
    if (title) { td.setAttribute("title", title); }
    row.appendChild(td);
    return td;
  }

  // Colours: apps in the summary's order (flagged first), flows with no app in grey.
  var colour = {};
  summary.apps.forEach(function (a, i) { colour[a.app] = PALETTE[i % PALETTE.length]; });
  function colourOf(app) { return app === null ? NO_APP : (colour[app] || PALETTE[0]); }
  var verdictOf = {};
  summary.apps.forEach(function (a) { verdictOf[a.app] = a.verdict; });

  function swatch(app) {
    var s = el("span", "swatch");
    s.style.background = colourOf(app);
    return s;
  }

  // ---- header --------------------------------------------------------------------------------
  (function header() {
    var parts = [];
    if (data.files.length) { parts.push(data.files.join(", ")); }
    if (data.first_packet) {
      parts.push(when(data.first_packet) + " to " + when(data.last_packet) + " UTC (packet time)");
    }
    if (data.sensor) { parts.push("sensor " + data.sensor); }
    parts.push("Picket " + data.picket);
    $("meta").textContent = parts.join(" \u00b7 ");
    if (data.files.length) { document.title = "Picket report \u2014 " + data.files.join(", "); }
  })();

  // ---- overview ------------------------------------------------------------------------------
  (function overview() {
    var t = summary.totals;
    var alerts = summary.apps.reduce(function (s, a) { return s + a.alerts; }, 0);
    var flaggedApps = summary.apps.filter(function (a) { return a.verdict === "flag"; }).length;
    var cards = [
      [num(data.flagged_flows), "flagged flows", data.flagged_flows > 0],
      [num(flaggedApps), "flagged apps seen", flaggedApps > 0],
      [num(alerts), "alerts", alerts > 0],
      [num(t.flows), "flows"],
      [num(summary.apps.length), "apps seen"],
      [num(t.packets), "packets"],
      [bytes(t.bytes), "on the wire"]
    ];
    cards.forEach(function (c) {
      var d = el("div", c[2] ? "card hot" : "card");
      d.appendChild(el("div", "v", c[0]));
      d.appendChild(el("div", "k", c[1]));
      $("cards").appendChild(d);
    });
    var body = $("apps").tBodies[0];
    function clients(n, capped) { return capped ? "\u2265 " + num(n) : num(n); }
    summary.apps.forEach(function (a) {
      var tr = el("tr");
      var name = cell(tr, "");
      name.appendChild(swatch(a.app));
      name.appendChild(document.createTextNode(a.app));
      tr.appendChild(el("td")).appendChild(badge(a.verdict));
      cell(tr, num(a.flows), "num");
      cell(tr, bytes(a.bytes), "num", num(a.bytes) + " bytes");
      cell(tr, clients(a.clients, a.clients_capped), "num");
      cell(tr, num(a.alerts), "num");
      body.appendChild(tr);
    });
    var o = summary.no_app;
    var tr = el("tr");
    var name = cell(tr, "");
    name.appendChild(swatch(null));
    name.appendChild(document.createTextNode("(no app)"));
    cell(tr, "");
    cell(tr, num(o.flows), "num");
    cell(tr, bytes(o.bytes), "num", num(o.bytes) + " bytes");
    cell(tr, clients(o.clients, o.clients_capped), "num");
    cell(tr, "\u2013", "num");
    body.appendChild(tr);
    // Why flows have no app: one row per reason seen.
    Object.keys(summary.unattributed || {}).forEach(function (why) {
      var n = summary.unattributed[why];
      if (!n) { return; }
      var r = el("tr", "why");
      cell(r, "\u21b3 " + why.replace(/_/g, " "));
      cell(r, "");
      cell(r, num(n), "num");
      cell(r, "");
      cell(r, "");
      cell(r, "");
      body.appendChild(r);
    });
  })();

  // ---- timeline ------------------------------------------------------------------------------
  function niceStep(raw) {
    if (!(raw > 0)) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  // The y axis of a chart whose tallest stack is `max`: a round step and its labels.
  function countAxis(max) {
    var step = Math.max(1, niceStep(max / 4));
    return { step: step, label: num };
  }
  function byteAxis(max) {
    var u = 0;
    while (max >= Math.pow(1024, u + 1) && u + 1 < UNITS.length) { u += 1; }
    var unit = Math.pow(1024, u);
    var step = Math.max(1, niceStep(max / 4 / unit) * unit);
    return {
      step: step,
      label: function (v) { return v === 0 ? "0" : +(v / unit).toFixed(2) + " " + UNITS[u]; }
    };
  }

  // Seconds between time labels: a round duration, a whole number of buckets, at most 8 labels.
  var ROUND = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
    43200, 86400, 172800, 604800];
  function ticks(n, secs) {
    for (var k = 0; k < ROUND.length; k++) {
      if (ROUND[k] % secs === 0 && n * secs / ROUND[k] <= 8) { return ROUND[k]; }
    }
    return secs * Math.ceil(n / 8);
  }

  function chart(host, key, label, axisOf, fmt) {
    var tl = data.timeline;
    var W = 1000, H = 230, L = 72, R = 16, T = 12, B = 28;
    var pw = W - L - R, ph = H - T - B;
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label });
    root.setAttribute("class", "timeline-chart");
    var n = tl.buckets;
    if (n === 0) {
      var t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" });
      t.textContent = "No flows.";
      root.appendChild(t);
      host.appendChild(root);
      return;
    }
    var stack = new Array(n).fill(0);
    tl.series.forEach(function (s) { s[key].forEach(function (v, i) { stack[i] += v; }); });
    var max = Math.max.apply(null, stack);
    var axis = axisOf(max);
    var step = axis.step;
    var top = Math.max(step, Math.ceil(max / step) * step);
    var y = function (v) { return T + ph - (v / top) * ph; };
    for (var g = 0; g <= top + step / 2; g += step) {
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: y(g), y2: y(g), class: "gridline" }));
      var yl = svg("text", { x: L - 6, y: y(g) + 4, "text-anchor": "end" });
      yl.textContent = axis.label(g);
      root.appendChild(yl);
    }
    var bw = pw / n;
    var gap = bw > 4 ? 1 : 0;
    var days = n * tl.bucket_secs > 86400;
    var base = new Array(n).fill(0);
    tl.series.forEach(function (s) {
      var name = s.app === null ? "(no app)" : s.app;
      s[key].forEach(function (v, i) {
        if (v <= 0) { return; }
        var y0 = y(base[i]), y1 = y(base[i] + v);
        base[i] += v;
        var r = svg("rect", {
          x: (L + i * bw + gap).toFixed(2), y: y1.toFixed(2),
          width: Math.max(bw - 2 * gap, 0.5).toFixed(2), height: Math.max(y0 - y1, 0.5).toFixed(2),
          fill: colourOf(s.app), class: "bar-" + key
        });
        var tip = svg("title");
        tip.textContent = name + ", " + utc(tl.start + i * tl.bucket_secs, days) + " UTC: " + fmt(v);
        r.appendChild(tip);
        root.appendChild(r);
      });
    });
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: "axis" }));
    var tick = ticks(n, tl.bucket_secs);
    var first = Math.round(((tick - tl.start % tick) % tick) / tl.bucket_secs);
    for (var i = first; i < n; i += tick / tl.bucket_secs) {
      var x = L + i * bw;
      root.appendChild(svg("line", { x1: x, x2: x, y1: T + ph, y2: T + ph + 4, class: "axis" }));
      var anchor = x < L + 30 ? "start" : x > W - R - 40 ? "end" : "middle";
      var xl = svg("text", { x: x, y: H - 8, "text-anchor": anchor });
      xl.textContent = utc(tl.start + i * tl.bucket_secs, days);
      root.appendChild(xl);
    }
    host.appendChild(root);
  }

  (function timeline() {
    var tl = data.timeline;
    var secs = tl.bucket_secs;
    var width = secs % 86400 === 0 ? secs / 86400 + " d" : secs % 3600 === 0 ? secs / 3600 + " h" :
      secs % 60 === 0 ? secs / 60 + " min" : secs + " s";
    $("timeline-note").textContent = "Buckets of " + width + " (UTC). A flow counts where it started; " +
      "its bytes are spread over the time it lasted.";
    tl.series.forEach(function (s) {
      if (!s.flows.some(function (v) { return v > 0; })) { return; }
      var item = el("span");
      item.appendChild(swatch(s.app));
      item.appendChild(document.createTextNode(s.app === null ? "(no app)" : s.app));
      $("legend").appendChild(item);
    });
    chart($("chart-flows"), "flows", "Flows started per bucket, by app", countAxis, num);
    chart($("chart-bytes"), "bytes", "Bytes per bucket, by app", byteAxis, bytes);
  })();

  // ---- top clients and servers ---------------------------------------------------------------
  (function tops() {
    $("top-note").textContent = data.top.length ?
      "The " + data.limits.top_shown + " addresses with the most flows, per flagged app." :
      "No flagged app was seen.";
    data.top.forEach(function (t) {
      var box = el("div", "top-app");
      var h = el("h3");
      h.appendChild(swatch(t.app));
      h.appendChild(document.createTextNode(t.app + " "));
      h.appendChild(badge(verdictOf[t.app] || "flag"));
      box.appendChild(h);
      [["clients", "client"], ["servers", "server"]].forEach(function (k) {
        var list = t[k[0]];
        var table = el("table", "data top-" + k[0]);
        var head = el("tr");
        [k[1], "flows", "bytes"].forEach(function (c, i) { head.appendChild(el("th", i ? "num" : "", c)); });
        table.appendChild(el("thead")).appendChild(head);
        var body = table.appendChild(el("tbody"));
        var most = list.entries.length ? list.entries[0].flows : 1;
        list.entries.forEach(function (e) {
          var tr = el("tr");
          var who = cell(tr, e.ip, "addr");
          if (e.name) { who.appendChild(el("span", "sub name", e.name)); }
          // Past the counters, a count is known to lie between flows - over and flows.
          var f = cell(tr, e.over ? num(e.flows - e.over) + "\u2013" + num(e.flows) : num(e.flows), "num",
            e.over ? "between " + num(e.flows - e.over) + " and " + num(e.flows) + " flows" : "");
          var bar = el("div", "bar");
          bar.style.width = Math.max(2, Math.round(100 * e.flows / most)) + "%";
          f.appendChild(bar);
          cell(tr, bytes(e.bytes), "num", num(e.bytes) + " bytes");
          body.appendChild(tr);
        });
        box.appendChild(table);
        if (!list.exact) {
          box.appendChild(el("p", "note", "More than " + num(data.limits.top_tracked) + " " + k[0] +
            ": each count is a range (Space-Saving estimate); bytes count from when the address was tracked."));
        }
      });
      $("top-apps").appendChild(box);
    });
  })();

  // ---- flagged flows -------------------------------------------------------------------------
  (function flows() {
    var rows = data.flows.map(function (f) {
      var r = Object.create(null);
      Object.keys(f).forEach(function (k) { r[k] = f[k]; });
      r.client = endpoint(f.src_ip, f.src_port);
      r.server = endpoint(f.dst_ip, f.dst_port);
      r.hay = [f.flow_id, r.client, r.server, f.transport, f.sni || "", f.dns_name || "", f.app,
        f.app_source, when(f.ts_start)].join("\n").toLowerCase();
      return r;
    });
    function options(sel, values) {
      values.sort().forEach(function (v) {
        var o = el("option", "", v);
        o.value = v;
        sel.appendChild(o);
      });
    }
    function distinct(key) {
      var seen = Object.create(null);
      rows.forEach(function (r) { seen[r[key]] = true; });
      return Object.keys(seen);
    }
    options($("filter-app"), distinct("app"));
    options($("filter-signal"), distinct("app_source"));

    var sortKey = null, sortDir = 1, shown = PAGE, matching = rows;
    var body = $("flows").tBodies[0];

    function value(r, k) { return k === "sni" ? (r.sni || r.dns_name || "") : r[k]; }

    function apply() {
      var text = $("filter-text").value.trim().toLowerCase();
      var words = text ? text.split(/\s+/) : [];
      var app = $("filter-app").value, signal = $("filter-signal").value;
      matching = rows.filter(function (r) {
        return (!app || r.app === app) && (!signal || r.app_source === signal) &&
          words.every(function (w) { return r.hay.indexOf(w) >= 0; });
      });
      if (sortKey) {
        matching = matching.slice().sort(function (a, b) {
          var x = value(a, sortKey), y = value(b, sortKey);
          return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
        });
      }
      shown = PAGE;
      draw();
    }

    function draw() {
      body.textContent = "";
      matching.slice(0, shown).forEach(function (r) {
        var tr = el("tr");
        tr.setAttribute("data-flow-id", r.flow_id);
        cell(tr, when(r.ts_start), "time", "until " + when(r.ts_end) + ", flow " + r.flow_id);
        cell(tr, r.client, "addr");
        cell(tr, r.server, "addr", r.transport);
        var name = cell(tr, r.sni || "", "name");
        if (r.dns_name) { name.appendChild(el("span", "sub", "DNS answer for " + r.dns_name)); }
        if (!r.sni && !r.dns_name) { name.textContent = "\u2014"; }
        var app = cell(tr, "");
        app.appendChild(swatch(r.app));
        app.appendChild(document.createTextNode(r.app));
        cell(tr, r.app_source);
        cell(tr, bytes(r.bytes), "num", num(r.bytes) + " bytes, " + num(r.packets) + " packets");
        body.appendChild(tr);
      });
      var more = $("more");
      more.hidden = matching.length <= shown;
      more.textContent = "Show " + num(Math.min(PAGE, matching.length - shown)) + " more";
      var note = "Flagged flows (apps with verdict flag), in the order they ended. Showing " +
        num(Math.min(shown, matching.length)) + " of " + num(matching.length) + " matching, " +
        num(rows.length) + " listed.";
      if (data.flows_left_out > 0) {
        note += " The report lists the first " + num(data.limits.rows) + " of " +
          num(data.flagged_flows) + " flagged flows: " + num(data.flows_left_out) +
          " were left out (every one is in the events).";
      }
      $("flows-note").textContent = note;
    }

    $("filter-text").addEventListener("input", apply);
    $("filter-app").addEventListener("change", apply);
    $("filter-signal").addEventListener("change", apply);
    $("more").addEventListener("click", function () { shown += PAGE; draw(); });
    Array.prototype.forEach.call($("flows").tHead.rows[0].cells, function (th) {
      th.addEventListener("click", function () {
        var k = th.getAttribute("data-key");
        sortDir = sortKey === k ? -sortDir : 1;
        sortKey = k;
        Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.className = c.className.replace(/ ?sorted-(asc|desc)/, ""); });
        th.className += (th.className ? " " : "") + (sortDir > 0 ? "sorted-asc" : "sorted-desc");
        apply();
      });
    });
    apply();
  })();

  // ---- run -----------------------------------------------------------------------------------
  (function run() {
    var t = summary.totals;
    var skipped = Object.keys(t.skipped).filter(function (k) { return t.skipped[k] > 0; })
      .map(function (k) { return k + " " + num(t.skipped[k]); });
    var items = [
      ["files", num(t.files) + (t.stopped ? " (stopped before the end)" : "")],
      ["packets", num(t.packets) + " read, " + num(t.decoded) + " into flows"],
      ["bytes", bytes(t.bytes) + " (" + num(t.bytes) + ")"],
      ["flows", num(t.flows) + ", " + num(t.hellos) + " with a TLS ClientHello"],
      ["skipped", skipped.length ? skipped.join(", ") : "none"],
      ["decode errors", num(t.decode_errors)],
      ["evicted flows", num(t.evicted)]
    ];
    items.forEach(function (i) {
      $("run-totals").appendChild(el("dt", "", i[0]));
      $("run-totals").appendChild(el("dd", "", i[1]));
    });
    t.errors.forEach(function (e) { $("errors").appendChild(el("li", "", e)); });
    var l = data.limits;
    $("limits").textContent = "Limits: the first " + num(l.rows) + " flagged flows are listed; at most " +
      num(l.buckets) + " timeline buckets; " + num(l.top_tracked) +
      " clients and servers tracked per flagged app. Written by Picket " + data.picket + ".";
  })();

  document.body.setAttribute("data-rendered", "ok");
})();
