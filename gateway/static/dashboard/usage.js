// Live usage: each request the tenant's members make is pushed over a WebSocket as it settles
// (ws/tenants/<slug>/usage/). The page then asks the server for that request's table row (under
// the page's own filters: a request that does not match them gets none) and, on the usage page,
// for fresh totals and charts. The server renders both, so live and reloaded pages look alike.
(function () {
  "use strict";

  const live = document.getElementById("usage-live");
  if (!live) return;
  const status = document.getElementById("live-status");
  const rows = document.getElementById("usage-rows");
  const overview = document.getElementById("usage-overview");
  const keepRows = parseInt(live.dataset.keepRows, 10) || 10;
  const FORBIDDEN = 4403;
  let retryDelay = 1000;
  let refreshTimer = null;

  function setStatus(text, state) {
    if (status) {
      status.textContent = text;
      status.className = "badge " + state;
    }
    document.body.dataset.live = state;
  }

  function fragment(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(function (response) {
      if (!response.ok) throw new Error(url + " answered " + response.status);
      return response.text();
    });
  }

  function addRow(requestId) {
    if (!rows || rows.querySelector('[data-request-id="' + CSS.escape(requestId) + '"]')) return;
    fragment(live.dataset.rowsUrl + "&request_id=" + encodeURIComponent(requestId)).then(function (html) {
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      const row = template.content.querySelector("tr[data-request-id]");
      if (!row || rows.querySelector('[data-request-id="' + CSS.escape(requestId) + '"]')) return;
      row.classList.add("arrived");
      rows.prepend(row);
      const empty = rows.querySelector(".empty-row");
      if (empty) empty.hidden = true;
      const all = rows.querySelectorAll("tr[data-request-id]");
      for (let i = keepRows; i < all.length; i++) all[i].remove();
    }).catch(function (error) { console.warn("live usage: no row for", requestId, error); });
  }

  function refreshOverview() {
    if (!overview) return;
    // Several requests settling together cost one refresh.
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      fragment(overview.dataset.refreshUrl).then(function (html) {
        overview.innerHTML = html;
        overview.dataset.refreshed = String(Date.now());
      }).catch(function (error) { console.warn("live usage: could not refresh the charts", error); });
    }, 250);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + live.dataset.socketPath);
    socket.addEventListener("open", function () {
      retryDelay = 1000;
      setStatus("live", "live");
    });
    socket.addEventListener("message", function (message) {
      const record = JSON.parse(message.data);
      addRow(record.request_id);
      refreshOverview();
    });
    socket.addEventListener("close", function (event) {
      if (event.code === FORBIDDEN) {
        setStatus("not live: no access", "closed");
        return;
      }
      setStatus("reconnecting…", "reconnecting");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }

  setStatus("connecting…", "connecting");
  connect();
})();
