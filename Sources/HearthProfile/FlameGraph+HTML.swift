// FlameGraph+HTML.swift: the interactive HTML flame graph: the page template (inline CSS and JavaScript), its
// header figures, and the merged stack tree and top functions embedded as compact JSON.

/// The interactive HTML flame graph: a page template with inline CSS and JavaScript, and the merged stack tree
/// embedded as compact JSON.
enum FlameGraphHTML {
    /// Rows in the embedded top-functions table.
    static let topFunctionCount = 200

    static func render(profile: CPUProfile, tree: FlameTree, title: String) -> String {
        let data = self.json(profile: profile, tree: tree)
        let escapedTitle = Format.escapeXML(title.isEmpty ? "CPU profile" : title)
        let stats = self.stats(profile: profile)
        var html = ""
        html.reserveCapacity(data.utf8.count + template.utf8.count + 4096)
        let replacements = [("@TITLE@", escapedTitle), ("@STATS@", stats), ("@DATA@", data)]
        var rest = Substring(template)
        while let at = rest.firstIndex(of: "@") {
            html += rest[..<at]
            let tail = rest[at...]
            if let (marker, value) = replacements.first(where: { tail.hasPrefix($0.0) }) {
                html += value
                rest = tail.dropFirst(marker.count)
            } else {
                html += "@"
                rest = tail.dropFirst()
            }
        }
        html += rest
        return html
    }

    /// The header's figures, as HTML.
    private static func stats(profile: CPUProfile) -> String {
        let total = profile.totalSamples
        var kernelLeaf: Int64 = 0
        var processes = Set<String>()
        for sample in profile.samples where sample.count > 0 {
            if sample.frames.first?.isKernel == true { kernelLeaf += sample.count }
            if let process = sample.processName { processes.insert(process) }
        }
        var items: [(String, String)] = [
            ("Samples", Format.grouped(total)),
            ("CPU time", Format.duration(seconds: Double(profile.cpuNanoseconds) / 1e9)),
            ("Duration", Format.duration(seconds: profile.duration.seconds)),
            ("Frequency", "\(profile.frequency) Hz"),
            ("Stacks", Format.grouped(Int64(profile.uniqueStackCount))),
        ]
        if !processes.isEmpty { items.append(("Processes", Format.grouped(Int64(processes.count)))) }
        items.append(("In kernel", Format.fixed(TopFunctions.percent(kernelLeaf, of: total), 1) + "%"))
        items.append(("Started", Format.timestamp(profile.startTime)))
        return items.map { label, value in
            "<div class=\"stat\"><span class=\"k\">\(label)</span><span class=\"v\">\(Format.escapeXML(value))</span></div>"
        }.joined(separator: "")
    }

    /// `{"names":[...],"nodes":[name,kind,module,total,childCount, ...],"top":[[name,self,total],...]}`, nodes in
    /// preorder.
    static func json(profile: CPUProfile, tree: FlameTree) -> String {
        var output = "{\"names\":["
        output.reserveCapacity(tree.nodes.count * 24 + tree.names.count * 24)
        for (index, name) in tree.names.enumerated() {
            if index > 0 { output += "," }
            output += Format.jsonString(name)
        }
        output += "],\n\"nodes\":["
        var first = true
        tree.forEachPreorder { _, node in
            if !first { output += "," }
            first = false
            output += "\(node.name),\(node.kind.rawValue),\(node.module),\(node.total),\(node.children.count)"
        }
        output += "],\n\"top\":["
        let top = TopFunctions.compute(profile, limit: self.topFunctionCount)
        for (index, row) in top.enumerated() {
            if index > 0 { output += "," }
            output += "[\(Format.jsonString(row.function)),\(row.selfSamples),\(row.totalSamples)]"
        }
        output += "]}"
        return output
    }

    // swift-format-ignore
    static let template = #"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Hearth">
<title>@TITLE@ · Flame graph</title>
<style>
:root {
  --bg: #f4f5f8; --card: #ffffff; --text: #1b1f27; --muted: #667085; --line: #e3e6ec;
  --accent: #e8590c; --accent-soft: #fff1e8; --input: #ffffff; --shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08);
  --match: #d6336c; --row-hover: #f7f8fa; --bar: #f59f00;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #12141a; --card: #1b1e26; --text: #e7e9ee; --muted: #98a2b3; --line: #2c313c;
    --accent: #ff8a3d; --accent-soft: #3a2516; --input: #12141a; --shadow: 0 1px 3px rgba(0,0,0,.5);
    --match: #f06595; --row-hover: #222632; --bar: #f59f00;
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { padding: 20px 28px 14px; display: flex; flex-wrap: wrap; align-items: flex-end; gap: 14px 32px; }
.brand { display: flex; align-items: center; gap: 12px; min-width: 0; }
.brand svg { flex: none; }
.brand .eyebrow { font-size: 11px; letter-spacing: .08em; text-transform: uppercase; color: var(--muted); font-weight: 600; }
h1 { margin: 0; font-size: 21px; font-weight: 650; line-height: 1.2; word-break: break-word; }
.stats { display: flex; flex-wrap: wrap; gap: 8px; margin-left: auto; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 5px 11px; box-shadow: var(--shadow); }
.stat .k { display: block; font-size: 10.5px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); font-weight: 600; }
.stat .v { font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
main { padding: 0 28px 28px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; box-shadow: var(--shadow); }
.toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 14px; padding: 12px 14px; border-bottom: 1px solid var(--line); }
.search { position: relative; flex: 0 1 360px; min-width: 220px; }
.search input { width: 100%; padding: 7px 64px 7px 32px; border: 1px solid var(--line); border-radius: 8px; background: var(--input);
  color: var(--text); font: inherit; outline: none; transition: border-color .15s, box-shadow .15s; }
.search input:focus { border-color: var(--accent); box-shadow: 0 0 0 3px var(--accent-soft); }
.search .icon { position: absolute; left: 10px; top: 50%; transform: translateY(-50%); color: var(--muted); pointer-events: none; }
.search kbd { position: absolute; right: 8px; top: 50%; transform: translateY(-50%); }
kbd { font: 11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); border: 1px solid var(--line);
  border-bottom-width: 2px; border-radius: 4px; padding: 0 5px; background: var(--card); }
.matched { flex: 1 1 0; min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  font-variant-numeric: tabular-nums; color: var(--muted); }
.matched b { color: var(--match); }
button { font: inherit; font-size: 13px; color: var(--text); background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 6px 12px; cursor: pointer; transition: background .15s, border-color .15s; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: .45; cursor: default; }
button[aria-pressed="true"] { background: var(--accent-soft); border-color: var(--accent); }
.legend { display: flex; gap: 12px; color: var(--muted); font-size: 12.5px; flex-wrap: wrap; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.legend i { width: 12px; height: 12px; border-radius: 3px; display: inline-block; }
.crumbs { padding: 8px 14px 0; font-size: 12.5px; color: var(--muted); min-height: 28px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.crumbs a { color: var(--text); cursor: pointer; text-decoration: none; border-bottom: 1px dotted var(--muted); }
.crumbs a:hover { color: var(--accent); border-color: var(--accent); }
.crumbs .sep { margin: 0 6px; opacity: .6; }
.graph { position: relative; padding: 6px 14px 14px; }
canvas { display: block; width: 100%; cursor: pointer; }
.empty { padding: 60px; text-align: center; color: var(--muted); }
#tip { position: fixed; z-index: 10; pointer-events: none; max-width: 520px; background: rgba(20,23,31,.96); color: #f2f4f7;
  border-radius: 8px; padding: 9px 12px; font-size: 12.5px; box-shadow: 0 8px 24px rgba(0,0,0,.25); display: none; }
#tip .fn { font-weight: 600; font-size: 13px; word-break: break-all; margin-bottom: 3px; }
#tip .mod { color: #aab2c0; word-break: break-all; margin-bottom: 6px; font-size: 11.5px; }
#tip table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
#tip td { padding: 1px 10px 1px 0; }
#tip td.l { color: #aab2c0; }
#tip .hint { color: #8a93a3; margin-top: 6px; font-size: 11px; }
#tip .kind { display: inline-block; font-size: 10px; text-transform: uppercase; letter-spacing: .06em; padding: 0 5px; border-radius: 4px;
  margin-left: 6px; vertical-align: 1px; color: #111; font-weight: 700; }
section.top { margin-top: 20px; }
section.top h2 { font-size: 15px; margin: 0; padding: 12px 14px; border-bottom: 1px solid var(--line); display: flex; align-items: baseline; gap: 10px; }
section.top h2 small { font-weight: 400; color: var(--muted); font-size: 12.5px; }
.tablewrap { max-height: 460px; overflow: auto; }
table.fns { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
table.fns th { position: sticky; top: 0; background: var(--card); text-align: right; font-size: 11px; text-transform: uppercase; letter-spacing: .06em;
  color: var(--muted); padding: 8px 12px; border-bottom: 1px solid var(--line); cursor: pointer; user-select: none; white-space: nowrap; }
table.fns th.fn { text-align: left; cursor: default; }
table.fns th.sorted { color: var(--accent); }
table.fns td { padding: 5px 12px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
table.fns td.fn { text-align: left; white-space: normal; word-break: break-all; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
table.fns tr { cursor: pointer; }
table.fns tbody tr:hover { background: var(--row-hover); }
table.fns td.rank { color: var(--muted); width: 1%; }
.pct { display: inline-flex; align-items: center; gap: 8px; justify-content: flex-end; min-width: 120px; }
.pct .bar { width: 60px; height: 6px; background: var(--line); border-radius: 3px; overflow: hidden; }
.pct .bar i { display: block; height: 100%; background: var(--bar); border-radius: 3px; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 8px; vertical-align: 0; }
footer { padding: 14px 28px 24px; color: var(--muted); font-size: 12px; }
</style>
</head>
<body>
<header>
  <div class="brand">
    <svg width="34" height="34" viewBox="0 0 34 34" aria-hidden="true"><rect width="34" height="34" rx="8" fill="#1b1f27"/><rect x="6" y="22" width="22" height="5" rx="1.5" fill="#e8590c"/><rect x="6" y="16" width="14" height="5" rx="1.5" fill="#f08c00"/><rect x="21" y="16" width="7" height="5" rx="1.5" fill="#4dabf7"/><rect x="6" y="10" width="9" height="5" rx="1.5" fill="#fab005"/><rect x="16" y="10" width="4" height="5" rx="1.5" fill="#ffd43b"/></svg>
    <div><div class="eyebrow">Hearth · CPU flame graph</div><h1>@TITLE@</h1></div>
  </div>
  <div class="stats">@STATS@</div>
</header>
<main>
  <div class="card">
    <div class="toolbar">
      <div class="search">
        <svg class="icon" width="15" height="15" viewBox="0 0 16 16" aria-hidden="true"><circle cx="7" cy="7" r="5" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M11 11l3.5 3.5" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>
        <input id="search" type="search" placeholder="Search functions" title="A regular expression, case-insensitive" autocomplete="off" spellcheck="false" aria-label="Search functions">
        <kbd>/</kbd>
      </div>
      <div class="matched" id="matched"></div>
      <div class="legend" id="legend"></div>
      <button id="invert" aria-pressed="false" title="Draw the root at the top (icicle) or at the bottom (flame)">Icicle</button>
      <button id="reset" disabled title="Show the whole profile (Esc)">Reset zoom</button>
    </div>
    <div class="crumbs" id="crumbs"></div>
    <div class="graph" id="graph"><canvas id="canvas" role="img" aria-label="Flame graph of @TITLE@"></canvas></div>
  </div>
  <section class="top card">
    <h2>Top functions <small id="topnote"></small></h2>
    <div class="tablewrap"><table class="fns" id="fns"></table></div>
  </section>
</main>
<footer>Generated by Hearth. Click a frame to zoom into it, click a row below to highlight a function, <kbd>/</kbd> to search, <kbd>Esc</kbd> to clear and reset.</footer>
<div id="tip"></div>
<script id="profile-data" type="application/json">@DATA@</script>
<script>
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("profile-data").textContent);
  var names = DATA.names, raw = DATA.nodes, N = raw.length / 5;
  var nName = new Int32Array(N), nKind = new Uint8Array(N), nMod = new Int32Array(N);
  var nTotal = new Float64Array(N), nSelf = new Float64Array(N), nX = new Float64Array(N);
  var nDepth = new Int32Array(N), nParent = new Int32Array(N), nFirst = new Int32Array(N), nNext = new Int32Array(N);
  nFirst.fill(-1); nNext.fill(-1);
  var maxDepth = 0, stack = [];
  for (var i = 0; i < N; i++) {
    var o = i * 5;
    nName[i] = raw[o]; nKind[i] = raw[o + 1]; nMod[i] = raw[o + 2]; nTotal[i] = raw[o + 3];
    nSelf[i] = nTotal[i];
    if (i === 0) { nParent[0] = -1; }
    else {
      while (stack.length && stack[stack.length - 1].left === 0) stack.pop();
      var p = stack[stack.length - 1];
      p.left--; nParent[i] = p.i; nDepth[i] = nDepth[p.i] + 1; nX[i] = p.x; p.x += nTotal[i];
      if (p.last < 0) nFirst[p.i] = i; else nNext[p.last] = i;
      p.last = i; nSelf[p.i] -= nTotal[i];
      if (nDepth[i] > maxDepth) maxDepth = nDepth[i];
    }
    stack.push({ i: i, left: raw[o + 4], x: nX[i], last: -1 });
  }
  raw = null; DATA.nodes = null;
  var TOTAL = N ? nTotal[0] : 0;

  var KINDS = ["all samples", "process", "user", "kernel", "unresolved"];
  var KIND_SWATCH = ["hsl(220,14%,80%)", "hsl(268,52%,72%)", "hsl(24,88%,60%)", "hsl(205,66%,64%)", "hsl(220,7%,72%)"];

  // ---- colours: stable per function name, by kind ----
  function hash(s) {
    var h = 2166136261;
    for (var k = 0; k < s.length; k++) { h ^= s.charCodeAt(k); h = Math.imul(h, 16777619); }
    return h >>> 0;
  }
  var colourCache = new Map();
  function colour(i) {
    var key = nName[i] * 8 + nKind[i], c = colourCache.get(key);
    if (c) return c;
    var h = hash(names[nName[i]]), a = (h & 255) / 255, b = ((h >>> 8) & 255) / 255, d = ((h >>> 16) & 255) / 255;
    switch (nKind[i]) {
      case 0: c = "hsl(220,14%,80%)"; break;
      case 1: c = "hsl(" + (258 + 22 * a).toFixed(0) + "," + (46 + 14 * b).toFixed(0) + "%," + (70 + 6 * d).toFixed(0) + "%)"; break;
      case 3: c = "hsl(" + (196 + 22 * a).toFixed(0) + "," + (58 + 16 * b).toFixed(0) + "%," + (60 + 10 * d).toFixed(0) + "%)"; break;
      case 4: c = "hsl(220," + (5 + 4 * b).toFixed(0) + "%," + (68 + 8 * d).toFixed(0) + "%)"; break;
      default: c = "hsl(" + (6 + 46 * a).toFixed(0) + "," + (78 + 14 * b).toFixed(0) + "%," + (57 + 9 * d).toFixed(0) + "%)";
    }
    colourCache.set(key, c);
    return c;
  }

  // ---- formatting ----
  function grouped(n) { return Math.round(n).toLocaleString("en-US"); }
  function pct(n, of) { if (!of || !n) return "0%"; var v = 100 * n / of; return (v >= 10 ? v.toFixed(1) : v >= 0.01 ? v.toFixed(2) : v.toFixed(3)) + "%"; }
  function esc(s) { return s.replace(/[&<>"']/g, function (ch) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]; }); }

  // ---- state ----
  var canvas = document.getElementById("canvas"), ctx = canvas.getContext("2d");
  var graph = document.getElementById("graph"), tip = document.getElementById("tip");
  var searchBox = document.getElementById("search"), matchedLabel = document.getElementById("matched");
  var resetButton = document.getElementById("reset"), invertButton = document.getElementById("invert");
  var crumbs = document.getElementById("crumbs");
  var ROW = 18, FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
  var W = 0, H = 0, dpr = 1, inverted = false;
  var zoom = 0, view0 = 0, view1 = TOTAL, hover = -1, animation = 0;
  var nameMatch = null, matchTotal = 0;
  var textWidth = new Float32Array(names.length).fill(-1), ellipsis = 0;

  var legend = document.getElementById("legend");
  var present = [false, false, false, false, false];
  for (var j = 1; j < N; j++) present[nKind[j]] = true;
  [2, 3, 4, 1].forEach(function (k) {
    if (!present[k]) return;
    var span = document.createElement("span");
    span.innerHTML = '<i style="background:' + KIND_SWATCH[k] + '"></i>' + KINDS[k];
    legend.appendChild(span);
  });

  if (!TOTAL) {
    graph.innerHTML = '<div class="empty">This profile has no samples.</div>';
  }

  // The deepest row with a frame wide enough to draw when `root` fills the width: the canvas is only that tall.
  function visibleDepth(root) {
    var minimum = 0.4 * nTotal[root] / Math.max(1, W), deepest = nDepth[root], todo = [root];
    while (todo.length) {
      var i = todo.pop();
      if (nDepth[i] > deepest) deepest = nDepth[i];
      for (var c = nFirst[i]; c >= 0; c = nNext[c]) if (nTotal[c] >= minimum) todo.push(c);
    }
    return deepest;
  }
  function setHeight(depth) {
    var h = (depth + 1) * ROW;
    if (h === H && canvas.width === Math.round(W * dpr)) return;
    H = h;
    canvas.style.height = H + "px";
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  }
  function resize() {
    if (!TOTAL) return;
    dpr = window.devicePixelRatio || 1;
    W = graph.clientWidth - 28;
    setHeight(visibleDepth(zoom));
    draw();
  }

  function rowY(depth) { return inverted ? depth * ROW : H - (depth + 1) * ROW; }

  function fit(i, room) {
    var n = nName[i], s = names[n];
    if (textWidth[n] < 0) textWidth[n] = ctx.measureText(s).width;
    if (textWidth[n] <= room) return s;
    var chars = Math.floor(s.length * (room - ellipsis) / textWidth[n]);
    return chars >= 3 ? s.slice(0, chars) + "\u2026" : null;
  }

  function isAncestorOfZoom(i) {
    for (var a = nParent[zoom]; a >= 0; a = nParent[a]) if (a === i) return true;
    return false;
  }

  function draw() {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.font = FONT; ctx.textBaseline = "middle";
    if (!ellipsis) ellipsis = ctx.measureText("\u2026").width;
    var scale = W / (view1 - view0), searching = nameMatch !== null;
    var todo = [0];
    while (todo.length) {
      var i = todo.pop();
      var x = (nX[i] - view0) * scale, w = nTotal[i] * scale;
      if (w < 0.4 || x + w <= 0 || x >= W) continue;
      var x0 = Math.max(0, x), x1 = Math.min(W, x + w), y = rowY(nDepth[i]);
      var faded = zoom !== 0 && nDepth[i] < nDepth[zoom];
      var matched = searching && nameMatch[nName[i]] === 1;
      ctx.globalAlpha = faded ? 0.5 : searching && !matched ? 0.4 : 1;
      ctx.fillStyle = matched ? "hsl(330,82%,62%)" : colour(i);
      ctx.fillRect(x0, y, Math.max(0.6, x1 - x0 - (x1 - x0 > 2 ? 1 : 0)), ROW - 1);
      if (x1 - x0 >= 28) {
        var label = fit(i, x1 - x0 - 8);
        if (label) { ctx.fillStyle = "#15171c"; ctx.fillText(label, x0 + 4, y + ROW / 2); }
      }
      for (var c = nFirst[i]; c >= 0; c = nNext[c]) todo.push(c);
    }
    ctx.globalAlpha = 1;
    if (hover >= 0) {
      var hx = Math.max(0, (nX[hover] - view0) * scale), hw = Math.min(W, (nX[hover] + nTotal[hover] - view0) * scale) - hx;
      ctx.strokeStyle = "#15171c"; ctx.lineWidth = 1.5;
      ctx.strokeRect(hx + 0.75, rowY(nDepth[hover]) + 0.75, Math.max(1, hw - 2.5), ROW - 2.5);
    }
  }

  function nodeAt(px, py) {
    var depth = inverted ? Math.floor(py / ROW) : Math.floor((H - py) / ROW);
    if (depth < 0 || depth > maxDepth || py < 0 || py >= H) return -1;
    var value = view0 + px * (view1 - view0) / W, i = 0;
    if (value < 0 || value > TOTAL) return -1;
    while (nDepth[i] < depth) {
      var next = -1;
      for (var c = nFirst[i]; c >= 0; c = nNext[c]) {
        if (value >= nX[c] && value < nX[c] + nTotal[c]) { next = c; break; }
      }
      if (next < 0) return -1;
      i = next;
    }
    return i;
  }

  // ---- zoom ----
  function setZoom(i, animate) {
    if (animate) stateTouched = true;
    zoom = i;
    var from0 = view0, from1 = view1, to0 = nX[i], to1 = nX[i] + nTotal[i];
    resetButton.disabled = i === 0;
    renderCrumbs();
    updateMatched();
    saveState();
    cancelAnimationFrame(animation);
    var target = visibleDepth(i);
    if (!animate || window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
      view0 = to0; view1 = to1; setHeight(target); draw(); return;
    }
    // Grow first, shrink after: frames never jump during the animation.
    setHeight(Math.max(target, Math.round(H / ROW) - 1));
    var start = performance.now();
    (function step(now) {
      var t = Math.min(1, (now - start) / 220), e = 1 - Math.pow(1 - t, 3);
      view0 = from0 + (to0 - from0) * e; view1 = from1 + (to1 - from1) * e;
      if (t >= 1) setHeight(target);
      draw();
      if (t < 1) animation = requestAnimationFrame(step);
    })(start);
  }

  function renderCrumbs() {
    if (zoom === 0) { crumbs.innerHTML = "Showing all " + grouped(TOTAL) + " samples. Click a frame to zoom in."; return; }
    var path = [];
    for (var a = zoom; a >= 0; a = nParent[a]) path.unshift(a);
    crumbs.innerHTML = path.map(function (n) {
      var label = n === 0 ? "all" : names[nName[n]];
      if (label.length > 60) label = label.slice(0, 57) + "\u2026";
      return n === zoom ? "<b>" + esc(label) + "</b> <span style=\"opacity:.75\">(" + pct(nTotal[n], TOTAL) + ")</span>"
                        : '<a data-node="' + n + '">' + esc(label) + "</a>";
    }).join('<span class="sep">\u203a</span>');
  }
  crumbs.addEventListener("click", function (e) {
    var t = e.target.closest("a[data-node]");
    if (t) setZoom(+t.getAttribute("data-node"), true);
  });

  // ---- state in the URL fragment (#search=...&zoom=...), so a view can be bookmarked or shared with the file ----
  var stateTouched = false;  // the fragment is written once the user changes the view
  function saveState() {
    var parts = [], q = searchBox.value.trim();
    if (!stateTouched) return;
    if (q) parts.push("search=" + encodeURIComponent(q));
    if (zoom) parts.push("zoom=" + zoom);
    parts.push(inverted ? "icicle" : "flame");
    try { history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname + location.search); } catch (err) {}
  }
  function loadState() {
    var state = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var eq = part.indexOf("=");
      if (part) state[eq < 0 ? part : part.slice(0, eq)] = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
    });
    // Root at the bottom (a flame graph) when the graph fits in the window; otherwise root at the top (an
    // icicle graph), so that deep stacks open where they start. The fragment or the button overrides this.
    if ("icicle" in state) inverted = true;
    else if ("flame" in state) inverted = false;
    else inverted = canvas.getBoundingClientRect().top + (visibleDepth(0) + 1) * ROW > window.innerHeight;
    invertButton.setAttribute("aria-pressed", String(inverted));
    if (state.search) { searchBox.value = state.search; runSearch(); }
    var z = parseInt(state.zoom, 10);
    if (z > 0 && z < N) setZoom(z, false);
  }

  // ---- search ----
  function runSearch() {
    var q = searchBox.value.trim();
    saveState();
    if (!q) { nameMatch = null; updateMatched(); draw(); return; }
    var re;
    try { re = new RegExp(q, "i"); } catch (err) { re = new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i"); }
    nameMatch = new Uint8Array(names.length);
    var used = new Uint8Array(names.length);
    for (var i = 1; i < N; i++) used[nName[i]] = 1;
    for (var n = 0; n < names.length; n++) if (used[n] && re.test(names[n])) nameMatch[n] = 1;
    updateMatched();
    draw();
  }
  // Samples under matching frames, each sample counted once (at its outermost match), and the number of
  // distinct matching functions.
  function matchedIn(root) {
    var sum = 0, todo = [root], seen = new Set(), inside = [];
    while (todo.length) {
      var i = todo.pop();
      if (i !== 0 && nameMatch[nName[i]] === 1) { sum += nTotal[i]; inside.push(i); continue; }
      for (var c = nFirst[i]; c >= 0; c = nNext[c]) todo.push(c);
    }
    while (inside.length) {
      var k = inside.pop();
      if (nameMatch[nName[k]] === 1) seen.add(nName[k]);
      for (var d = nFirst[k]; d >= 0; d = nNext[d]) inside.push(d);
    }
    return { samples: sum, functions: seen.size };
  }
  function updateMatched() {
    if (nameMatch === null) { matchedLabel.innerHTML = ""; return; }
    var m = matchedIn(0);
    if (!m.samples) { matchedLabel.textContent = "No matches"; return; }
    var text = "<b>" + pct(m.samples, TOTAL) + "</b> matched \u00b7 " + grouped(m.samples) + " samples \u00b7 " + m.functions + " function" + (m.functions === 1 ? "" : "s");
    if (zoom !== 0) { var z = matchedIn(zoom); text += " \u00b7 " + pct(z.samples, nTotal[zoom]) + " of zoom"; }
    matchedLabel.innerHTML = text;
    matchedLabel.title = matchedLabel.textContent;
  }
  var searchTimer = 0;
  searchBox.addEventListener("input", function () { stateTouched = true; clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 120); });

  // ---- tooltip ----
  function showTip(i, cx, cy) {
    var kind = nKind[i], parent = nParent[i], html = '<div class="fn">' + esc(i === 0 ? "all samples" : names[nName[i]]) +
      '<span class="kind" style="background:' + KIND_SWATCH[kind] + '">' + KINDS[kind] + "</span></div>";
    var mod = names[nMod[i]];
    if (mod) html += '<div class="mod">' + esc(mod) + "</div>";
    html += "<table><tr><td class=l>Total</td><td>" + grouped(nTotal[i]) + " samples</td><td>" + pct(nTotal[i], TOTAL) + " of all</td></tr>";
    html += "<tr><td class=l>Self</td><td>" + grouped(nSelf[i]) + " samples</td><td>" + pct(nSelf[i], TOTAL) + " of all</td></tr>";
    if (parent >= 0) html += "<tr><td class=l>Of caller</td><td colspan=2>" + pct(nTotal[i], nTotal[parent]) + "</td></tr>";
    if (zoom !== 0 && i !== zoom && nDepth[i] > nDepth[zoom]) html += "<tr><td class=l>Of zoomed</td><td colspan=2>" + pct(nTotal[i], nTotal[zoom]) + "</td></tr>";
    html += "</table><div class=hint>" + (i === zoom ? (zoom ? "Click to zoom out" : "") : "Click to zoom") + "</div>";
    tip.innerHTML = html;
    tip.style.display = "block";
    var tw = tip.offsetWidth, th = tip.offsetHeight, x = cx + 14, y = cy + 16;
    if (x + tw > window.innerWidth - 8) x = Math.max(8, cx - tw - 14);
    if (y + th > window.innerHeight - 8) y = Math.max(8, cy - th - 12);
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  canvas.addEventListener("mousemove", function (e) {
    var r = canvas.getBoundingClientRect(), i = nodeAt(e.clientX - r.left, e.clientY - r.top);
    if (i !== hover) { hover = i; draw(); }
    if (i >= 0) showTip(i, e.clientX, e.clientY); else tip.style.display = "none";
  });
  canvas.addEventListener("mouseleave", function () { hover = -1; tip.style.display = "none"; draw(); });
  canvas.addEventListener("click", function (e) {
    var r = canvas.getBoundingClientRect(), i = nodeAt(e.clientX - r.left, e.clientY - r.top);
    if (i < 0) return;
    setZoom(i === zoom ? Math.max(0, nParent[i]) : i, true);
  });
  resetButton.addEventListener("click", function () { setZoom(0, true); });
  invertButton.addEventListener("click", function () {
    stateTouched = true; inverted = !inverted; invertButton.setAttribute("aria-pressed", String(inverted)); saveState(); draw();
  });
  document.addEventListener("keydown", function (e) {
    if ((e.key === "/" && document.activeElement !== searchBox) || ((e.ctrlKey || e.metaKey) && e.key === "f")) {
      e.preventDefault(); searchBox.focus(); searchBox.select();
    } else if (e.key === "Escape") {
      stateTouched = true;
      if (searchBox.value) { searchBox.value = ""; runSearch(); } else if (zoom !== 0) setZoom(0, true);
      searchBox.blur();
    }
  });

  // ---- top functions ----
  var top = DATA.top, sortKey = 1;
  var kindByName = new Map();
  for (var t = N - 1; t > 0; t--) kindByName.set(names[nName[t]], nKind[t]);
  document.getElementById("topnote").textContent = top.length ? "self = running its own code, total = on the stack; click a row to highlight it" : "";
  function renderTop() {
    var rows = top.slice().sort(function (a, b) { return b[sortKey] - a[sortKey] || b[3 - sortKey] - a[3 - sortKey] || (a[0] < b[0] ? -1 : 1); });
    var head = '<thead><tr><th class="fn rankh">#</th><th class="fn">Function</th><th data-sort="1"' + (sortKey === 1 ? ' class="sorted"' : "") + ">Self \u25be</th>" +
      '<th data-sort="2"' + (sortKey === 2 ? ' class="sorted"' : "") + ">Total \u25be</th></tr></thead>";
    var body = rows.map(function (r, n) {
      var k = kindByName.has(r[0]) ? kindByName.get(r[0]) : 2;
      function cell(v) {
        var share = TOTAL ? 100 * v / TOTAL : 0;
        return '<td><span class="pct"><span>' + grouped(v) + '</span><span class="bar"><i style="width:' + Math.min(100, share).toFixed(1) + '%"></i></span><span style="min-width:48px">' + pct(v, TOTAL) + "</span></span></td>";
      }
      return '<tr data-name="' + esc(r[0]) + '"><td class="rank">' + (n + 1) + '</td><td class="fn"><span class="dot" style="background:' + KIND_SWATCH[k] + '"></span>' + esc(r[0]) + "</td>" + cell(r[1]) + cell(r[2]) + "</tr>";
    }).join("");
    document.getElementById("fns").innerHTML = head + "<tbody>" + body + "</tbody>";
  }
  document.getElementById("fns").addEventListener("click", function (e) {
    var th = e.target.closest("th[data-sort]");
    if (th) { sortKey = +th.getAttribute("data-sort"); renderTop(); return; }
    var tr = e.target.closest("tr[data-name]");
    if (!tr) return;
    stateTouched = true;
    searchBox.value = "^" + tr.getAttribute("data-name").replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$";
    runSearch();
    window.scrollTo({ top: 0, behavior: "smooth" });
  });
  renderTop();

  renderCrumbs();
  W = graph.clientWidth - 28;
  if (TOTAL) loadState();
  if (typeof ResizeObserver === "function") new ResizeObserver(function () { resize(); }).observe(graph);
  else window.addEventListener("resize", resize);
  resize();
})();
</script>
</body>
</html>
"""#
}
