
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
  function plural(n, what) { return num(n) + " " + what + (Number(n) === 1 ? "" : "s"); }

  var UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function bytes(b) {
    var v = Number(b), u = 0;
    while (v >= 1024 && u + 1 < UNITS.length) { v /= 1024; u += 1; }
    return u === 0 ? v + " B" : v.toFixed(1) + " " + UNITS[u];
  }

  // "2024-05-01T12:00:03.250000Z" -> "2024-05-01 12:00:03.250"
  function when(ts) { return String(ts).replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1"); }

  // Unix seconds as UTC: with the date (and its year) when `withDate`, else the time of day.
  function utc(secs, withDate) {
    var d = new Date(secs * 1000);
    if (isNaN(d.getTime())) { return String(secs); }
    var s = d.toISOString();
    return withDate ? s.slice(0, 10) + " " + s.slice(11, 16) : s.slice(11, 19);
  }

  function secsOf(ts) { return Date.parse(ts) / 1000; }

  // "12.5 s", "14 min 3 s", "2 h 5 min"
  function duration(secs) {
    var v = Number(secs);
    if (v < 60) { return (v < 10 ? v.toFixed(1) : Math.round(v)) + " s"; }
    var m = Math.floor(v / 60), h = Math.floor(m / 60);
    return h ? h + " h " + (m % 60) + " min" : m + " min " + Math.round(v % 60) + " s";
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

  // Colours: each app's from its id alone (FNV-1a), so an app has the same colour in every
  // report whatever else was seen; flows with no app in grey.
  function colourOf(app) {
    if (app === null || app === undefined) { return NO_APP; }
    var h = 0x811c9dc5;
    for (var i = 0; i < app.length; i++) {
      h = Math.imul(h ^ app.charCodeAt(i), 0x01000193) >>> 0;
    }
    // Mixed (murmur3's finaliser), then a hue of 360 at one of 3 lightnesses.
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    var hue = h % 360, light = [34, 44, 54][(h >>> 9) % 3];
    return "hsl(" + hue + ", 62%, " + light + "%)";
  }
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

  // Whether the axis runs over more than one UTC day: its labels then carry the date and year.
  function crossesDays(tl) {
    var a = Math.floor(tl.start / 86400);
    var b = Math.floor((tl.start + tl.buckets * tl.bucket_secs - 1) / 86400);
    return tl.buckets > 0 && a !== b;
  }

  // The time labels under a chart of width W (plot from L to W - R) whose base line is at y0.
  function timeAxis(root, W, L, R, y0, H) {
    var tl = data.timeline, n = tl.buckets, bw = (W - L - R) / n, days = crossesDays(tl);
    var tick = ticks(n, tl.bucket_secs);
    var first = Math.round(((tick - tl.start % tick) % tick) / tl.bucket_secs);
    for (var i = first; i < n; i += tick / tl.bucket_secs) {
      var x = L + i * bw;
      root.appendChild(svg("line", { x1: x, x2: x, y1: y0, y2: y0 + 4, class: "axis" }));
      var anchor = x < L + 50 ? "start" : x > W - R - 60 ? "end" : "middle";
      var xl = svg("text", { x: x, y: H - 8, "text-anchor": anchor, class: "tick" });
      xl.textContent = utc(tl.start + i * tl.bucket_secs, days);
      root.appendChild(xl);
    }
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
        tip.textContent = name + ", " + utc(tl.start + i * tl.bucket_secs, true) + " UTC: " + fmt(v);
        r.appendChild(tip);
        root.appendChild(r);
      });
    });
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: "axis" }));
    timeAxis(root, W, L, R, T + ph, H);
    host.appendChild(root);
  }

  // Calls as bars from their first to their last media packet, in lanes, on the same axis.
  var LANES = 12;
  function callsChart(host) {
    var tl = data.timeline, n = tl.buckets;
    var W = 1000, L = 72, R = 16, T = 6, LH = 14, B = 28;
    var pw = W - L - R, t0 = tl.start, t1 = tl.start + n * tl.bucket_secs;
    var x = function (t) { return L + (t - t0) / (t1 - t0) * pw; };
    var lanes = [], drawn = [], off = 0, over = 0;
    data.calls.forEach(function (c) {
      var a = secsOf(c.ts_start), b = secsOf(c.ts_end);
      if (n === 0 || b < t0 || a > t1) { off += 1; return; }
      var x0 = x(Math.max(a, t0)), x1 = Math.max(x(Math.min(b, t1)), x0 + 2);
      var lane = 0;
      while (lane < lanes.length && lanes[lane] > x0 - 1) { lane += 1; }
      if (lane >= LANES) { over += 1; return; }
      lanes[lane] = x1;
      drawn.push([c, x0, x1, lane]);
    });
    var note = num(data.calls.length) + " calls listed";
    if (drawn.length < data.calls.length) {
      note += "; " + num(drawn.length) + " drawn";
      if (off) { note += ", " + num(off) + " outside the axis"; }
      if (over) { note += ", " + num(over) + " past " + LANES + " at once"; }
    }
    $("calls-chart-note").textContent = note + ". A call runs from its first to its last media packet.";
    if (!drawn.length) { return; }
    var H = T + Math.max(lanes.length, 1) * LH + B;
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Calls over time" });
    root.setAttribute("class", "calls-chart");
    drawn.forEach(function (d) {
      var c = d[0];
      var r = svg("rect", {
        x: d[1].toFixed(2), y: T + d[3] * LH + 1, width: (d[2] - d[1]).toFixed(2), height: LH - 3,
        rx: 2, fill: colourOf(c.app), class: "call-bar"
      });
      var tip = svg("title");
      tip.textContent = c.app + " call from " + c.src_ip + ", " + when(c.ts_start) + " to " +
        when(c.ts_end) + " UTC (" + duration(c.duration_s) + ", " + c.path + ")";
      r.appendChild(tip);
      root.appendChild(r);
    });
    var y0 = T + lanes.length * LH;
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: y0, y2: y0, class: "axis" }));
    timeAxis(root, W, L, R, y0, H);
    host.appendChild(root);
  }

  (function timeline() {
    var tl = data.timeline;
    var secs = tl.bucket_secs;
    var width = secs % 86400 === 0 ? secs / 86400 + " d" : secs % 3600 === 0 ? secs / 3600 + " h" :
      secs % 60 === 0 ? secs / 60 + " min" : secs + " s";
    var note = "Buckets of " + width + " (UTC), sized from the bulk of the packets. A flow counts " +
      "where it started; its bytes are spread over the time it lasted.";
    if (tl.outliers.length) {
      note += " " + num(tl.outlier_packets) + " packets far outside the bulk are listed below, " +
        "not on the axis.";
    }
    $("timeline-note").textContent = note;
    $("outliers-note").textContent = tl.outliers.length ?
      "Packet times far from the rest of the capture (a damaged or forged timestamp, or a file " +
      "of another day): each run is listed apart instead of stretching the axis." :
      "No packet time lies far outside the bulk of the capture.";
    tl.outliers.forEach(function (o) {
      var parts = [plural(o.packets, "packet")];
      if (o.flows) { parts.push(plural(o.flows, "flow") + " counted here (" + bytes(o.bytes) + ")"); }
      if (o.far_ends) { parts.push("one packet of " + plural(o.far_ends, "flow") + " counted elsewhere"); }
      var apps = o.apps.map(function (a) { return a === null ? "(no app)" : a; });
      if (apps.length) { parts.push("apps: " + apps.join(", ")); }
      var range = o.first === o.last ? when(o.first) : when(o.first) + " to " + when(o.last);
      $("outliers").appendChild(el("li", "outlier", range + " UTC: " + parts.join("; ")));
    });
    tl.series.forEach(function (s) {
      if (!s.flows.some(function (v) { return v > 0; })) { return; }
      var item = el("span");
      item.appendChild(swatch(s.app));
      item.appendChild(document.createTextNode(s.app === null ? "(no app)" : s.app));
      $("legend").appendChild(item);
    });
    chart($("chart-flows"), "flows", "Flows started per bucket, by app", countAxis, num);
    chart($("chart-bytes"), "bytes", "Bytes per bucket, by app", byteAxis, bytes);
    callsChart($("chart-calls"));
  })();

  // ---- sortable tables -------------------------------------------------------------------------
  // A table of `rows` with columns `cols` ({key, label, num, value(r), draw(td, r)}): a click on a
  // header sorts by it (again: the other way), PAGE rows at a time.
  function sortable(id, cols, rows, rowAttr, noteOf) {
    var t = $(id), moreBtn = $(id.replace(/-table$/, "") + "-more");
    var head = el("tr");
    cols.forEach(function (c) {
      var th = el("th", c.num ? "num" : "", c.label);
      th.setAttribute("data-key", c.key);
      head.appendChild(th);
    });
    t.appendChild(el("thead")).appendChild(head);
    var body = t.appendChild(el("tbody"));
    var order = rows, shown = PAGE;
    t.hidden = rows.length === 0;
    function draw() {
      body.textContent = "";
      order.slice(0, shown).forEach(function (r) {
        var tr = el("tr");
        tr.setAttribute(rowAttr[0], rowAttr[1](r));
        cols.forEach(function (c) {
          var td = el("td", c.cls || (c.num ? "num" : ""));
          c.draw(td, r);
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      moreBtn.hidden = order.length <= shown;
      moreBtn.textContent = "Show " + num(Math.min(PAGE, order.length - shown)) + " more";
      noteOf(Math.min(shown, order.length));
    }
    Array.prototype.forEach.call(head.cells, function (th, i) {
      th.addEventListener("click", function () {
        var c = cols[i], dir = th.className.indexOf("sorted-asc") >= 0 ? -1 : 1;
        var value = c.value || function (r) { return r[c.key]; };
        order = rows.slice().sort(function (a, b) {
          var x = value(a), y = value(b);
          return (x < y ? -1 : x > y ? 1 : 0) * dir;
        });
        Array.prototype.forEach.call(head.cells, function (h) { h.className = h.className.replace(/ ?sorted-(asc|desc)/, ""); });
        th.className += (th.className ? " " : "") + (dir > 0 ? "sorted-asc" : "sorted-desc");
        shown = PAGE;
        draw();
      });
    });
    moreBtn.addEventListener("click", function () { shown += PAGE; draw(); });
    draw();
  }

  function text(td, s) { td.textContent = s; }
  function appCell(td, app) {
    td.appendChild(swatch(app));
    td.appendChild(document.createTextNode(app));
  }
  // How many are shown and listed, and how many the report left out (its cap).
  function listed(what, shownN, rows, left, cap) {
    var note = "Showing " + num(shownN) + " of " + num(rows) + " " + what + ".";
    if (left > 0) {
      note += " The report lists at most " + num(cap) + ": " + num(left) +
        " more not shown (every one is in the events).";
    }
    return note;
  }

  // ---- alerts ------------------------------------------------------------------------------------
  (function alerts() {
    function evidence(a) {
      if (a.sni) { return ["server name", a.sni]; }
      if (a.dns_name) { return ["DNS answer for", a.dns_name]; }
      if (a.dns_query) { return ["DNS question", a.dns_query]; }
      if (a.cert_name) { return ["certificate", a.cert_name]; }
      return ["", ""];
    }
    sortable("alerts-table", [
      { key: "ts", label: "time (UTC)", cls: "time", draw: function (td, a) { text(td, when(a.ts)); } },
      { key: "client", label: "client", cls: "addr", value: function (a) { return a.src_ip; },
        draw: function (td, a) { text(td, endpoint(a.src_ip, a.src_port)); } },
      { key: "app", label: "app", draw: function (td, a) { appCell(td, a.app); } },
      { key: "evidence", label: "server name / evidence", cls: "name",
        value: function (a) { return evidence(a)[1]; },
        draw: function (td, a) {
          var e = evidence(a);
          td.textContent = e[1] || "\u2014";
          td.appendChild(el("span", "sub", (e[0] ? e[0] + " \u00b7 " : "signal ") + a.app_source));
        } },
      { key: "server", label: "server", cls: "addr", value: function (a) { return a.dst_ip; },
        draw: function (td, a) { text(td, endpoint(a.dst_ip, a.dst_port) + " " + a.transport); } },
      { key: "flow_id", label: "flow", cls: "addr id", draw: function (td, a) { text(td, a.flow_id); } }
    ], data.alerts, ["data-alert", function (a) { return a.flow_id; }], function (n) {
      $("alerts-note").textContent = data.alerts.length ?
        "Every alert, by the time of the packet that decided it. " +
        listed("alerts", n, data.alerts.length, data.alerts_left_out, data.limits.alerts) :
        "No alert was raised.";
    });
  })();

  // ---- calls -------------------------------------------------------------------------------------
  (function calls() {
    sortable("calls-table", [
      { key: "ts_start", label: "start (UTC)", cls: "time", draw: function (td, c) { text(td, when(c.ts_start)); } },
      { key: "ts_end", label: "end", cls: "time", draw: function (td, c) { text(td, when(c.ts_end)); } },
      { key: "duration_s", label: "duration", num: true, draw: function (td, c) { text(td, duration(c.duration_s)); } },
      { key: "app", label: "app", cls: "nowrap", draw: function (td, c) { appCell(td, c.app); } },
      { key: "src_ip", label: "client", cls: "addr", draw: function (td, c) { text(td, c.src_ip); } },
      { key: "path", label: "path", draw: function (td, c) { text(td, c.path); } },
      { key: "packets", label: "media packets \u2192/\u2190", num: true,
        value: function (c) { return c.media_packets[0] + c.media_packets[1]; },
        draw: function (td, c) { text(td, num(c.media_packets[0]) + " / " + num(c.media_packets[1])); } },
      { key: "bytes", label: "media bytes \u2192/\u2190", num: true,
        value: function (c) { return c.media_bytes[0] + c.media_bytes[1]; },
        draw: function (td, c) { text(td, bytes(c.media_bytes[0]) + " / " + bytes(c.media_bytes[1])); } },
      { key: "flows", label: "flows", num: true, draw: function (td, c) { text(td, num(c.flows)); } },
      { key: "call_id", label: "call", cls: "addr id", draw: function (td, c) { text(td, c.call_id); } }
    ], data.calls, ["data-call-id", function (c) { return c.call_id; }], function (n) {
      $("calls-note").textContent = data.calls.length ?
        "Calls by start: a client's flows of one call grouped, from its first to its last media packet. " +
        listed("calls", n, data.calls.length, data.calls_left_out, data.limits.calls) :
        "No call was seen.";
    });
  })();

  // ---- clients -----------------------------------------------------------------------------------
  (function clients() {
    sortable("clients-table", [
      { key: "ip", label: "client", cls: "addr", draw: function (td, c) { text(td, c.ip); } },
      { key: "first", label: "first (UTC)", cls: "time", draw: function (td, c) { text(td, when(c.first)); } },
      { key: "last", label: "last", cls: "time", draw: function (td, c) { text(td, when(c.last)); } },
      { key: "flagged_flows", label: "flagged flows", num: true, draw: function (td, c) { text(td, num(c.flagged_flows)); } },
      { key: "flows", label: "flows", num: true, draw: function (td, c) { text(td, num(c.flows)); } },
      { key: "apps", label: "apps used (flows, first to last)", cls: "apps-used",
        value: function (c) { return c.apps.length; },
        draw: function (td, c) {
          // Flagged apps first, each in the order first used.
          c.apps.filter(function (a) { return a.verdict === "flag"; })
            .concat(c.apps.filter(function (a) { return a.verdict !== "flag"; }))
            .forEach(function (a) {
              var s = el("span", "app");
              appCell(s, a.app);
              s.appendChild(document.createTextNode(" "));
              s.appendChild(badge(a.verdict));
              s.appendChild(el("span", "sub", num(a.flows) + " \u00b7 " + when(a.first) + " to " + when(a.last)));
              td.appendChild(s);
            });
        } }
    ], data.clients, ["data-client", function (c) { return c.ip; }], function (n) {
      var note = data.clients.length ?
        "Every client that used an app, by its first flow, with the apps it used and when. " +
        listed("clients", n, data.clients.length, 0, data.limits.clients) : "No client used an app.";
      if (data.client_flows_left_out > 0) {
        note += " Past " + num(data.limits.clients) + " clients, " + num(data.client_flows_left_out) +
          " flows of further clients are not shown (every one is in the events).";
      }
      $("clients-note").textContent = note;
    });
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
      var note = "Flagged flows (apps with verdict flag), by start time. Showing " +
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
    $("limits").textContent = "Limits: the first " + num(l.rows) + " flagged flows, " + num(l.alerts) +
      " alerts and " + num(l.calls) + " calls are listed, and " + num(l.clients) +
      " clients in the per-client view; at most " + num(l.buckets) + " timeline buckets; " +
      num(l.top_tracked) + " clients and servers tracked per flagged app. Written by Picket " +
      data.picket + ".";
  })();

  // ---- #click=TABLE:KEY,...: header clicks to replay (a link to a sorted table) ---------------
  (function clicks() {
    var m = /^#click=(.*)$/.exec(window.location.hash);
    if (!m) { return; }
    decodeURIComponent(m[1]).split(",").forEach(function (c) {
      var p = c.split(":"), t = $(p[0]);
      if (!t || !t.tHead) { return; }
      Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th) {
        if (th.getAttribute("data-key") === p[1]) { th.click(); }
      });
    });
  })();

  document.body.setAttribute("data-rendered", "ok");
})();
