// The status page: fetches status/data (with the admin token when the page was served on the
// main listener) every few seconds and draws the last hour with uPlot.
"use strict";
(function () {
  var TOKEN_KEY = "uwlr-gateway-admin-token";
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var charts = {};
  var body = document.body;

  function fail(message) {
    body.setAttribute("data-error", message);
    document.getElementById("problem").textContent = message;
  }
  window.addEventListener("error", function (event) { fail(String(event.message)); });

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function table(target, columns, rows) {
    var holder = document.getElementById(target);
    holder.textContent = "";
    if (!rows.length) { holder.appendChild(el("div", "none", "empty")); return; }
    var t = el("table"), head = el("tr");
    columns.forEach(function (c) { head.appendChild(el("th", c[0])); });
    t.appendChild(head);
    rows.forEach(function (row) {
      var tr = el("tr");
      columns.forEach(function (c) {
        var v = row[c[1]];
        tr.appendChild(el("td", v === null || v === undefined ? "" : v, typeof v === "number" ? "n" : ""));
      });
      t.appendChild(tr);
    });
    holder.appendChild(t);
  }

  // Series from a list of [name, value] pairs per point, in first-seen order.
  function pairsSeries(points, field) {
    var names = [];
    points.forEach(function (p) { p[field].forEach(function (pair) { if (names.indexOf(pair[0]) < 0) names.push(pair[0]); }); });
    var data = names.map(function (name) {
      return points.map(function (p) {
        for (var i = 0; i < p[field].length; i++) if (p[field][i][0] === name) return p[field][i][1];
        return null;
      });
    });
    return { names: names, data: data };
  }

  function draw(key, title, unit, names, columns, times) {
    var width = Math.max(400, Math.floor(document.getElementById("charts").clientWidth / 2) - 24);
    var signature = names.join("|");
    var data = [times].concat(columns);
    var chart = charts[key];
    if (chart && chart.signature === signature) {
      chart.plot.setData(data);
      return;
    }
    var box;
    if (chart) { box = chart.box; chart.plot.destroy(); box.textContent = ""; }
    else { box = el("div", null, "chart"); box.setAttribute("data-chart", key); document.getElementById("charts").appendChild(box); }
    box.appendChild(el("h3", title));
    var series = [{}].concat(names.map(function (name, i) {
      return { label: name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
               value: function (u, v) { return v === null || v === undefined ? "-" : (+v).toFixed(2) + unit; } };
    }));
    var plot = new uPlot({ width: width, height: 180, series: series, scales: { x: { time: true } },
                           axes: [{}, { size: 60 }] }, data, box);
    charts[key] = { plot: plot, signature: signature, box: box };
  }

  function render(d) {
    var points = d.points;
    var times = points.map(function (p) { return p.t; });
    var messages = pairsSeries(points, "messages");
    draw("messages", "Messages per second by outcome", "/s", messages.names, messages.data, times);
    draw("latency", "Message duration p50 / p99 (ms)", " ms", ["p50", "p99"],
         [points.map(function (p) { return p.p50_ms; }), points.map(function (p) { return p.p99_ms; })], times);
    var faults = pairsSeries(points, "faults");
    draw("faults", "Faults per second by rule", "/s", faults.names, faults.data, times);
    draw("results", "Results stored per second", "/s", ["results"], [points.map(function (p) { return p.results_per_sec; })], times);
    draw("publisher", "Publisher lag", "", ["seconds", "changes"],
         [points.map(function (p) { return p.publisher_lag_secs; }), points.map(function (p) { return p.publisher_lag_changes; })], times);
    var lrs = pairsSeries(points, "lrs_lag_secs");
    draw("lrs", "Delivery lag per LRS (s)", " s", lrs.names, lrs.data, times);

    document.getElementById("version").textContent = "version " + d.version;
    var summary = document.getElementById("summary");
    summary.textContent = "";
    var totals = d.totals;
    [["accepted", totals.accepted], ["rejected", totals.rejected], ["replay", totals.replay], ["refused", totals.refused],
     ["error", totals.error], ["results", totals.results], ["publisher lag (changes)", d.publisher.lag_changes],
     ["publisher lag (s)", d.publisher.lag_secs.toFixed(0)]].forEach(function (pair) {
      var span = el("span", pair[0] + " ");
      var figure = el("b", pair[1]);
      figure.setAttribute("data-figure", pair[0]);
      span.appendChild(figure);
      summary.appendChild(span);
    });
    table("lrs", [["LRS", "name"], ["pending", "pending"], ["lag (s)", "lag_secs"], ["dead letters", "dead_letters"], ["last error", "last_error_class"]], d.lrs);
    table("faults", [["received", "received_at"], ["klantcode", "klantcode"], ["school", "school"], ["faultcode", "faultcode"],
                     ["rule", "rule"], ["violations", "violations"], ["first violation", "message"], ["receipt", "receipt_id"]], d.last_faults);
    table("deadletters", [["failed", "failed_at"], ["LRS", "lrs"], ["statement", "statement_id"], ["status", "status"],
                          ["attempts", "attempts"], ["answer", "answer"]], d.dead_letters);
    table("schools", [["school", "school"], ["naam", "naam"], ["messages", "messages"], ["accepted", "accepted"],
                      ["rejected", "rejected"], ["resultaten", "resultaten"], ["last", "last_received_at"]], d.schools_today);

    var lastPoint = points.length ? points[points.length - 1] : null;
    body.setAttribute("data-ready", JSON.stringify({
      charts: document.querySelectorAll("#charts .uplot").length,
      points: points.length,
      accepted: totals.accepted,
      rejected: totals.rejected,
      results: totals.results,
      fault_rules: faults.names,
      faults: d.last_faults.length,
      schools: d.schools_today.length,
      lrs: d.lrs.map(function (l) { return l.name; }),
      last_messages_per_sec: lastPoint ? lastPoint.messages : []
    }));
  }

  function load() {
    var headers = { "Accept": "application/json" };
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch("status/data", { headers: headers, cache: "no-store" }).then(function (response) {
      if (response.status === 401 || response.status === 404) {
        document.getElementById("login").style.display = "block";
        fail("the data needs the admin token (or open this page on metrics_listen)");
        return;
      }
      if (!response.ok) { fail("status/data answered " + response.status); return; }
      document.getElementById("login").style.display = "none";
      document.getElementById("problem").textContent = "";
      body.removeAttribute("data-error");
      return response.json().then(render);
    }, function (error) { fail("cannot reach the gateway: " + error); });
  }

  document.getElementById("login").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    load();
  });
  load();
  setInterval(load, 5000);
})();
