// shopify_sync staff dashboard: reads the staff API's JSON with the bearer token kept in
// this tab's sessionStorage (never in a URL), and draws KPIs, two uPlot charts, top
// products and pipeline health. No framework, no build step.
(function () {
  "use strict";
  var TOKEN_KEY = "shopify_sync.api_token";
  var CONFIG = JSON.parse(document.getElementById("dashboard-config").textContent);
  var COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7f89", "#57606a"];
  var charts = {};
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function message(text, kind) {
    var box = $("messages");
    box.textContent = "";
    if (text) box.appendChild(el("p", { "class": "msg " + (kind || "error") }, [text]));
  }

  function status(text) { $("status").textContent = text || ""; }

  function ApiFailure(status, code, text) { this.status = status; this.code = code; this.message = text; }

  function api(path) {
    var token = sessionStorage.getItem(TOKEN_KEY);
    return fetch(path, { headers: { "Authorization": "Bearer " + token, "Accept": "application/json" } })
      .catch(function () { throw new ApiFailure(0, "unreachable", "The API did not answer (network error)."); })
      .then(function (resp) {
        return resp.json().catch(function () { return null; }).then(function (body) {
          if (resp.ok && body) return body;
          var err = body && body.error ? body.error : { code: "http_" + resp.status, message: resp.statusText };
          throw new ApiFailure(resp.status, err.code, err.message);
        });
      });
  }

  function money(value, currency) {
    var n = Number(value);
    try {
      return n.toLocaleString(undefined, { style: "currency", currency: currency || "XXX" });
    } catch (e) {
      return value + " " + (currency || "");
    }
  }

  function when(iso) {
    if (!iso) return "never";
    return iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, " UTC");
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "no watermark yet";
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
    if (h >= 48) return Math.floor(h / 24) + " days";
    return h ? h + " h " + m + " min" : m + " min";
  }

  function query() {
    var params = new URLSearchParams({ start: $("start").value, end: $("end").value });
    if ($("shop").value) params.set("shop", $("shop").value);
    return params.toString();
  }

  function renderKpis(overview) {
    var body = $("kpis").querySelector("tbody");
    body.textContent = "";
    overview.shops.forEach(function (r) {
      var cell = function (name, text) {
        return el("td", { "class": "num", "data-kpi": name, "data-value": String(r[name]) }, [text]);
      };
      body.appendChild(el("tr", { "data-shop": r.shop, "data-currency": r.currency_code }, [
        el("th", { scope: "row" }, [r.shop]), el("td", {}, [r.currency_code]),
        cell("orders", String(r.orders)), cell("units", String(r.units)),
        cell("gross_sales", money(r.gross_sales, r.currency_code)),
        cell("net_sales", money(r.net_sales, r.currency_code)),
        cell("average_order_value", money(r.average_order_value, r.currency_code)),
        cell("refunds", money(r.refunds, r.currency_code)),
      ]));
    });
    $("kpi-range").textContent = overview.start + " to " + overview.end;
    var seen = {};
    overview.shops.forEach(function (r) { seen[r.shop] = true; });
    var wanted = $("shop").value ? [$("shop").value] : CONFIG.shops;
    var notes = $("empty-shops");
    notes.textContent = "";
    wanted.filter(function (s) { return !seen[s]; }).forEach(function (s) {
      notes.appendChild(el("li", { "class": "msg info", "data-empty-shop": s },
        [s + ": no counted orders between " + overview.start + " and " + overview.end + "."]));
    });
  }

  function drawChart(id, daily, field, label) {
    var box = $(id);
    if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    box.textContent = "";
    if (!daily.series.length) {
      box.appendChild(el("p", { "class": "msg info" }, ["No orders in this range: nothing to chart."]));
      box.dataset.series = "0";
      return;
    }
    var xs = daily.series[0].days.map(function (d) { return Date.parse(d.date + "T00:00:00Z") / 1000; });
    var data = [xs], series = [{ label: "Day (UTC)" }];
    daily.series.forEach(function (s, i) {
      data.push(s.days.map(function (d) { return Number(d[field]); }));
      series.push({ label: s.shop + " (" + s.currency_code + ")", stroke: COLORS[i % COLORS.length], width: 2,
                    points: { show: xs.length <= 45 } });
    });
    var opts = {
      width: Math.max(320, box.clientWidth || 600), height: 260, series: series,
      scales: { x: { time: true } }, tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [{}, { label: label, size: 70 }], legend: { live: true },
    };
    charts[id] = new uPlot(opts, data, box);
    box.dataset.series = String(daily.series.length);
    box.setAttribute("aria-label", label + " per day for " +
      daily.series.map(function (s) { return s.shop + " (" + s.currency_code + ")"; }).join(", "));
  }

  function renderTop(top) {
    var box = $("top-products");
    box.textContent = "";
    top.shops.forEach(function (shop) {
      box.appendChild(el("h3", {}, [shop.shop + (shop.metrics_as_of ? " · as of " + shop.metrics_as_of : "")]));
      if (!shop.products.length) {
        box.appendChild(el("p", { "class": "msg info", "data-empty-shop": shop.shop },
          [shop.shop + ": no product figures yet (run a sync first)."]));
        return;
      }
      var rows = shop.products.map(function (p) {
        var arrow = { up: "▲", down: "▼", flat: "▬", "new": "★" }[p.trend] || "";
        var pct = p.trend_pct === null ? p.trend : (p.trend_pct > 0 ? "+" : "") + p.trend_pct + "%";
        return el("tr", {}, [
          el("th", { scope: "row" }, [p.title || String(p.product_id)]),
          el("td", { "class": "num" }, [String(p.units_7d)]), el("td", { "class": "num" }, [p.net_sales_7d]),
          el("td", { "class": "num" }, [String(p.units_30d)]), el("td", { "class": "num" }, [p.net_sales_30d]),
          el("td", { "class": "trend " + p.trend, title: "7-day daily rate against the 30-day daily rate" },
             [arrow + " " + pct]),
        ]);
      });
      var head = el("tr", {}, ["Product", "Units 7d", "Net sales 7d", "Units 30d", "Net sales 30d", "Trend"]
        .map(function (h, i) { return el("th", { scope: "col", "class": i && i < 5 ? "num" : "" }, [h]); }));
      box.appendChild(el("table", { "data-shop": shop.shop }, [el("thead", {}, [head]), el("tbody", {}, rows)]));
    });
  }

  function renderHealth(pipes) {
    var body = $("health").querySelector("tbody");
    body.textContent = "";
    pipes.shops.forEach(function (p) {
      var fails = p.recent_failures.length
        ? p.recent_failures.length + " · last: " + ((p.recent_failures[0].error || {}).message || "no message")
        : "none";
      body.appendChild(el("tr", { "data-shop": p.shop }, [
        el("th", { scope: "row" }, [p.shop]), el("td", {}, [when(p.last_success_at)]),
        el("td", {}, [when(p.watermark_at)]), el("td", {}, [duration(p.lag_seconds)]),
        el("td", { "class": "num" }, [String(p.open_jobs)]),
        el("td", { "class": p.recent_failures.length ? "bad" : "" }, [fails]),
      ]));
    });
  }

  function load() {
    message("");
    status("Loading…");
    var q = query();
    var pending = [
      api("/analytics/commerce/overview?" + q).then(renderKpis),
      api("/analytics/commerce/daily?" + q).then(function (daily) {
        drawChart("chart-net", daily, "net_sales", "Net sales");
        drawChart("chart-units", daily, "units", "Net units");
      }),
      api("/analytics/products/top?limit=10" + ($("shop").value ? "&shop=" + $("shop").value : "")).then(renderTop),
      api("/analytics/pipelines").then(renderHealth),
    ];
    return Promise.allSettled(pending).then(function (results) {
      var failed = results.filter(function (r) { return r.status === "rejected"; }).map(function (r) { return r.reason; });
      if (failed.some(function (f) { return f.status === 401; })) { signOut("The API refused the token; enter it again."); return; }
      if (failed.length) {
        var f = failed[0];
        message("Could not load everything: " + (f.message || String(f)) + (f.code ? " (" + f.code + ")" : ""));
      }
      status(failed.length ? "" : "Updated " + new Date().toISOString().slice(11, 19) + " UTC");
      document.body.dataset.loaded = failed.length ? "error" : "ok";
    });
  }

  function showMain() {
    $("login").hidden = true;
    $("main").hidden = false;
    load();
  }

  function signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("main").hidden = true;
    $("login").hidden = false;
    message(why || "", why ? "error" : "info");
    $("token").value = "";
    $("token").focus();
  }

  $("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    showMain();
    $("start").focus();
  });

  $("range-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    if ($("start").value > $("end").value) { message("The start date is after the end date."); return; }
    load();
  });

  document.querySelectorAll("[data-days]").forEach(function (button) {
    button.addEventListener("click", function () {
      var end = new Date(Date.parse($("end").value + "T00:00:00Z") || Date.now());
      var start = new Date(end.getTime() - (Number(button.dataset.days) - 1) * 86400000);
      $("start").value = start.toISOString().slice(0, 10);
      load();
    });
  });

  $("sign-out").addEventListener("click", function () { signOut(); });

  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (id) {
      charts[id].setSize({ width: Math.max(320, $(id).clientWidth), height: 260 });
    });
  });

  if (sessionStorage.getItem(TOKEN_KEY)) showMain(); else signOut();
})();
