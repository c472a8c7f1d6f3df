// The stockdata explorer: ticker search, a candlestick chart with volume, movers, an SQL console.
// Plain JS over the same-origin /v1 API; the only library is lightweight-charts (served by the API).
"use strict";
(function () {
  var body = document.body;
  var MAX_PAGE = Number(body.dataset.maxPage) || 5000;
  var MAX_YEARS = Number(body.dataset.maxYears) || 25;
  var RANGES = { "1M": 1, "6M": 6, "1Y": 12, "5Y": 60, "20Y": 240, MAX: null };
  var $ = function (id) { return document.getElementById(id); };
  var KEY_STORE = "stockdata.apiKey";
  // The API's adjustment bases (`adjust=`), as the legend and the movers caption name them.
  var BASES = { none: "as traded", splits: "split-adjusted", all: "split- and dividend-adjusted" };

  // -- the API ------------------------------------------------------------------------------

  function authHeaders() {
    var key = $("api-key").value.trim();
    if (!key) return {};
    // API keys start with sd_ (X-API-Key); anything else is sent as a bearer token (JWT).
    return key.indexOf("sd_") === 0 ? { "X-API-Key": key } : { Authorization: "Bearer " + key };
  }

  function query(params) {
    var q = new URLSearchParams();
    Object.keys(params).forEach(function (k) {
      if (params[k] !== null && params[k] !== undefined && params[k] !== "") q.set(k, params[k]);
    });
    var s = q.toString();
    return s ? "?" + s : "";
  }

  function api(path, params, init) {
    init = init || {};
    var headers = Object.assign({ Accept: "application/json" }, authHeaders(), init.headers || {});
    return fetch(path + query(params || {}), Object.assign({}, init, { headers: headers })).then(
      function (resp) {
        return resp.json().catch(function () { return null; }).then(function (doc) {
          if (!resp.ok) {
            var detail = doc && (doc.detail || doc.title);
            throw new Error(resp.status + ": " + (detail || resp.statusText));
          }
          return doc;
        });
      }
    );
  }

  function status(text) { $("status").textContent = text || ""; }
  function fail(err) { status(String(err && err.message ? err.message : err)); }

  // -- dates (UTC, ISO strings) ---------------------------------------------------------------

  function parseDay(iso) {
    var p = iso.split("-").map(Number);
    return new Date(Date.UTC(p[0], p[1] - 1, p[2]));
  }
  function isoDay(d) { return d.toISOString().slice(0, 10); }
  function addDays(iso, n) { var d = parseDay(iso); d.setUTCDate(d.getUTCDate() + n); return isoDay(d); }
  // Same day of the month `months` earlier, clamped to the month's last day.
  function monthsBefore(iso, months) {
    var d = parseDay(iso);
    var total = d.getUTCFullYear() * 12 + d.getUTCMonth() - months;
    var y = Math.floor(total / 12), m = total - y * 12;
    var last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
    return isoDay(new Date(Date.UTC(y, m, Math.min(d.getUTCDate(), last))));
  }

  // -- numbers --------------------------------------------------------------------------------

  function signed(x, digits) { return (x > 0 ? "+" : "") + x.toFixed(digits); }
  function cls(x) { return x > 0 ? "up" : x < 0 ? "down" : ""; }

  // -- chart ----------------------------------------------------------------------------------

  var LC = window.LightweightCharts;
  var chart = LC.createChart($("chart"), {
    autoSize: true,
    // The logo injects an inline <style> the page's CSP refuses; the footer links instead.
    layout: { background: { color: "#ffffff" }, textColor: "#1b1f24", attributionLogo: false },
    grid: { vertLines: { color: "#eef0f3" }, horzLines: { color: "#eef0f3" } },
    timeScale: { borderColor: "#dde1e6", minBarSpacing: 0.01 }, // Max fits decades
    rightPriceScale: { borderColor: "#dde1e6" },
  });
  var candles = chart.addSeries(LC.CandlestickSeries, {
    upColor: "#137333", downColor: "#a50e0e", borderVisible: false,
    wickUpColor: "#137333", wickDownColor: "#a50e0e",
  });
  // Volume in a second pane under the prices.
  var volume = chart.addSeries(LC.HistogramSeries, {
    priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false,
  }, 1);
  chart.panes()[1].setHeight(90);

  var state = { symbol: null, exchange: null, range: "1Y", adjust: "none", asOf: null, load: 0 };
  window.explorer = { firstRenderMs: null, loads: 0 };

  // The basis of every chart request, so the bars and the range's change share it; "as of"
  // (adjust_as_of) bounds it to the actions known on that day and needs a basis.
  function asOf() { return state.adjust === "none" ? null : state.asOf; }
  function priceParams() { return { adjust: state.adjust, adjust_as_of: asOf() }; }

  function fetchPages(symbol, params) {
    var rows = [];
    function page(offset) {
      return api("v1/eod/" + encodeURIComponent(symbol),
        Object.assign({}, params, { limit: MAX_PAGE, offset: offset || null })).then(function (doc) {
        rows.push.apply(rows, doc.data);
        var next = doc.pagination && doc.pagination.next_offset;
        return next ? page(next) : rows;
      });
    }
    return page(0);
  }

  // Bars from..to (from null: the whole history), split into windows the API accepts.
  function fetchBars(symbol, exchange, from, to) {
    var chunks = [];
    function windowEnding(hi) {
      var lo = addDays(monthsBefore(hi, 12 * MAX_YEARS), 1);
      if (from !== null && lo < from) lo = from;
      var params = Object.assign({ exchange: exchange, from: lo, to: hi }, priceParams());
      return fetchPages(symbol, params).then(function (rows) {
        if (rows.length) chunks.unshift(rows);
        if ((from !== null && lo <= from) || !rows.length) return [].concat.apply([], chunks);
        return windowEnding(addDays(lo, -1));
      });
    }
    return windowEnding(to);
  }

  function loadChart() {
    if (!state.symbol) return Promise.resolve();
    var load = ++state.load;
    var symbol = state.symbol, exchange = state.exchange, range = state.range;
    var basis = state.adjust;
    var started = performance.now();
    $("ticker-title").textContent = symbol + (exchange ? " · " + exchange : "");
    document.querySelectorAll("#ranges button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.range === range));
    });
    status("");
    body.dataset.chart = "loading";
    return api("v1/eod/" + encodeURIComponent(symbol) + "/latest",
      Object.assign({ exchange: exchange }, priceParams())).then(function (doc) {
      basis = doc.adjust; // what the API says it did
      var last = doc.data.date;
      var months = RANGES[range];
      var from = months === null ? null : addDays(monthsBefore(last, months), 1);
      return fetchBars(symbol, exchange, from, last);
    }).then(function (bars) {
      if (load !== state.load) return; // a newer load started
      draw(symbol, exchange, range, basis, bars, performance.now() - started);
    }).catch(function (err) {
      if (load !== state.load) return;
      body.dataset.chart = "error";
      fail(err);
    });
  }

  function draw(symbol, exchange, range, basis, bars, ms) {
    candles.setData(bars.map(function (b) {
      return { time: b.date, open: b.open, high: b.high, low: b.low, close: b.close };
    }));
    volume.setData(bars.map(function (b) {
      return { time: b.date, value: b.volume, color: b.close >= b.open ? "#13733355" : "#a50e0e55" };
    }));
    chart.timeScale().fitContent();
    $("chart-legend").textContent = [symbol, exchange, range === "MAX" ? "Max" : range,
      BASES[basis] || basis, asOf() && "as of " + asOf()].filter(Boolean).join(" · ");
    var first = bars[0], last = bars[bars.length - 1];
    if (!last) {
      $("last-close").textContent = "–"; $("last-date").textContent = "";
      $("range-info").textContent = "no bars"; $("range-change").textContent = "–";
    } else {
      $("last-close").textContent = String(last.close);
      $("last-date").textContent = "on " + last.date;
      var n = bars.length - 1;
      $("range-info").textContent = first.date + " → " + last.date + " (" + bars.length + " sessions)";
      var change = last.close - first.close;
      var el = $("range-change");
      el.textContent = signed(change, 2) + " (" + signed((last.close / first.close - 1) * 100, 2) +
        "%) over " + n + " sessions";
      el.className = cls(change);
      if (!$("movers-date").value) $("movers-date").value = last.date;
    }
    $("load-info").textContent = bars.length + " bars in " + Math.round(ms) + " ms";
    window.explorer.loads += 1;
    if (window.explorer.firstRenderMs === null) {
      // After the chart has painted: from navigation start (performance.timeOrigin).
      requestAnimationFrame(function () { window.explorer.firstRenderMs = performance.now(); });
    }
    body.dataset.chart = symbol + "|" + (exchange || "") + "|" + range + "|" + window.explorer.loads;
  }

  // -- navigation: #symbol=MSFT&exchange=XNAS&range=1Y&adjust=splits (as traded: no adjust) ---

  function hashFor(symbol, exchange, range) {
    var h = new URLSearchParams();
    h.set("symbol", symbol);
    if (exchange) h.set("exchange", exchange);
    h.set("range", range || state.range);
    if (state.adjust !== "none") h.set("adjust", state.adjust);
    if (asOf()) h.set("adjust_as_of", asOf());
    return "#" + h.toString();
  }
  function go(symbol, exchange, range) { location.hash = hashFor(symbol, exchange, range); }
  function fromHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    var symbol = h.get("symbol");
    if (!symbol) return;
    state.symbol = symbol.toUpperCase();
    state.exchange = h.get("exchange");
    state.range = RANGES.hasOwnProperty(h.get("range")) ? h.get("range") : "1Y";
    state.adjust = BASES.hasOwnProperty(h.get("adjust")) ? h.get("adjust") : "none";
    var day = h.get("adjust_as_of");
    state.asOf = day && /^\d{4}-\d{2}-\d{2}$/.test(day) ? day : null;
    $("basis").value = state.adjust;
    $("asof").value = state.asOf || "";
    $("asof").disabled = state.adjust === "none";
    loadChart();
  }
  window.addEventListener("hashchange", fromHash);
  $("ranges").addEventListener("click", function (e) {
    var r = e.target.dataset && e.target.dataset.range;
    if (r && state.symbol) go(state.symbol, state.exchange, r);
  });
  $("basis").addEventListener("change", function () {
    state.adjust = $("basis").value;
    $("asof").disabled = state.adjust === "none";
    if (state.symbol) go(state.symbol, state.exchange, state.range);
  });
  $("asof").addEventListener("change", function () {
    state.asOf = $("asof").value || null;
    if (state.symbol) go(state.symbol, state.exchange, state.range);
  });

  // -- search ---------------------------------------------------------------------------------

  var searchTimer = null, searchSeq = 0;
  function link(symbol, exchange, text) {
    var a = document.createElement("a");
    a.href = hashFor(symbol, exchange, state.range);
    a.textContent = text;
    return a;
  }
  function search() {
    var q = $("search").value.trim();
    var list = $("search-results");
    var seq = ++searchSeq;
    if (!q) { list.replaceChildren(); return Promise.resolve([]); }
    return api("v1/tickers", { q: q, limit: 10 }).then(function (doc) {
      if (seq !== searchSeq) return [];
      list.replaceChildren.apply(list, doc.data.map(function (t) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.appendChild(link(t.symbol, t.exchange_mic,
          t.symbol + " · " + t.exchange_mic + (t.name ? " — " + t.name : "")));
        return li;
      }));
      if (!doc.data.length) status("no ticker matches “" + q + "”");
      else status("");
      return doc.data;
    }).catch(fail);
  }
  $("search").addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 150);
  });
  $("search-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clearTimeout(searchTimer);
    search().then(function (found) {
      if (found && found.length) choose(found[0].symbol, found[0].exchange_mic);
    });
  });
  function choose(symbol, exchange) {
    $("search-results").replaceChildren();
    $("search").value = symbol;
    go(symbol, exchange);
  }
  $("search-results").addEventListener("click", function (e) {
    if (e.target.tagName === "A") { $("search-results").replaceChildren(); }
  });

  // -- movers ---------------------------------------------------------------------------------

  var movers = { rows: [], key: "rank", dir: 1 };
  function renderMovers() {
    var key = movers.key, dir = movers.dir;
    var th = document.querySelector('#movers th[data-key="' + key + '"]');
    var numeric = th && th.dataset.type === "number";
    var rows = movers.rows.slice().sort(function (a, b) {
      var x = a[key], y = b[key];
      if (x === null) return 1;
      if (y === null) return -1;
      var c = numeric ? x - y : String(x).localeCompare(String(y));
      return c * dir || a.rank - b.rank;
    });
    document.querySelectorAll("#movers th").forEach(function (h) {
      if (h.dataset.key === key) h.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      else h.removeAttribute("aria-sort");
    });
    var tbody = document.querySelector("#movers tbody");
    tbody.replaceChildren.apply(tbody, rows.map(function (r) {
      var tr = document.createElement("tr");
      function cell(v, className) {
        var td = document.createElement("td");
        if (v instanceof Node) td.appendChild(v); else td.textContent = v === null ? "–" : String(v);
        if (className) td.className = className;
        tr.appendChild(td);
      }
      cell(r.rank);
      cell(link(r.ticker, r.exchange_mic, r.ticker));
      cell(r.exchange_mic);
      cell(r.start_close);
      cell(r.end_close);
      cell(r.change === null ? null : signed(r.change, 2), cls(r.change));
      cell(r.pct_change === null ? null : signed(r.pct_change, 2) + "%", cls(r.pct_change));
      return tr;
    }));
  }
  $("movers").querySelector("thead").addEventListener("click", function (e) {
    var key = e.target.dataset && e.target.dataset.key;
    if (!key) return;
    movers.dir = movers.key === key ? -movers.dir : 1;
    movers.key = key;
    renderMovers();
  });
  // Movers keep their route's default basis (splits: a split is never a move) unless one is
  // picked in their own form; the chart's basis is about drawing prices and does not carry over.
  $("movers-form").addEventListener("submit", function (e) {
    e.preventDefault();
    body.dataset.movers = "loading";
    var picked = $("movers-basis").value;
    var days = $("movers-days").value;
    api("v1/movers", {
      date: $("movers-date").value,
      days: days,
      order: $("movers-order").value,
      limit: $("movers-limit").value,
      adjust: picked || null,
    }).then(function (doc) {
      $("movers-caption").textContent = doc.date + " · " + days + " session" +
        (days === "1" ? "" : "s") + " · " + (BASES[doc.adjust] || doc.adjust) +
        (picked ? "" : " (the route's default)");
      movers.rows = doc.data;
      movers.key = "rank";
      movers.dir = 1;
      renderMovers();
      status(doc.data.length ? "" : "no movers on " + doc.date);
      body.dataset.movers = doc.date + "|" + doc.data.length;
    }).catch(function (err) { body.dataset.movers = "error"; fail(err); });
  });

  // -- SQL ------------------------------------------------------------------------------------

  if (body.dataset.sql === "on") $("sql-section").hidden = false;
  $("sql-form").addEventListener("submit", function (e) {
    e.preventDefault();
    $("sql-status").textContent = "running…";
    api("v1/sql", {}, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sql: $("sql").value, limit: 1000 }),
    }).then(function (doc) {
      var head = document.querySelector("#sql-result thead");
      var tbody = document.querySelector("#sql-result tbody");
      var tr = document.createElement("tr");
      doc.columns.forEach(function (c) {
        var th = document.createElement("th");
        th.textContent = c.name;
        th.title = c.type;
        tr.appendChild(th);
      });
      head.replaceChildren(tr);
      tbody.replaceChildren.apply(tbody, doc.rows.map(function (row) {
        var r = document.createElement("tr");
        row.forEach(function (v) {
          var td = document.createElement("td");
          td.textContent = v === null ? "NULL" : String(v);
          r.appendChild(td);
        });
        return r;
      }));
      $("sql-status").textContent = doc.row_count + " row" + (doc.row_count === 1 ? "" : "s") +
        " in " + doc.elapsed_ms + " ms" + (doc.truncated ? " (truncated)" : "");
    }).catch(function (err) {
      document.querySelector("#sql-result thead").replaceChildren();
      document.querySelector("#sql-result tbody").replaceChildren();
      $("sql-status").textContent = String(err.message || err);
    });
  });

  // -- API key (kept for this tab only) --------------------------------------------------------

  $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  $("api-key").addEventListener("change", function () {
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    loadChart();
  });

  fromHash();
})();
