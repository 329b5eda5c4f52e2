// tagtrail live view: stock per zone (GET v1/zones) and a live movement feed (GET v1/stream).
//
// The token comes from the form or from the URL fragment (#token=...), which never reaches
// the server; it is kept in sessionStorage and sent only as "Authorization: Bearer". The
// stream is read with fetch() and a small Server-Sent Events parser instead of EventSource,
// because EventSource cannot send headers. On reconnect it sends Last-Event-ID and reloads
// the stock, since changes made while it was away are not replayed.
"use strict";

(() => {
  const TOKEN_KEY = "tagtrail.token";
  const FEED_MAX = 20; // rows kept in the feed
  const STOCK_EVERY_MS = 10000; // stock refresh without changes
  const STOCK_AFTER_CHANGE_MS = 300; // stock refresh after a change (coalesces bursts)
  const IDLE_MS = 45000; // nothing at all (not even a heartbeat) for this long: reconnect
  const FIRST_RETRY_MS = 1000; // the first reconnect after a stream ends
  const RETRY_MS = 5000; // then the server's retry: (this unless it says), doubling
  const RETRY_MAX_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $("conn"),
    connText: $("conn-text"),
    signout: $("signout"),
    login: $("login"),
    form: $("login-form"),
    input: $("token"),
    authError: $("auth-error"),
    view: $("view"),
    notice: $("notice"),
    stockBody: document.querySelector("#stock tbody"),
    stockEmpty: $("stock-empty"),
    stockTotal: $("stock-total"),
    stockUpdated: $("stock-updated"),
    feedBody: document.querySelector("#feed tbody"),
    feedEmpty: $("feed-empty"),
    feedCount: $("feed-count"),
  };
  $("feed-max").textContent = String(FEED_MAX);

  const clockFmt = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });

  // One "session" per token; bumping gen makes every loop of the old one stop.
  const state = {
    gen: 0,
    token: null,
    abort: null,
    stockTimer: 0,
    stockSoon: 0,
    lastEventId: "",
    retryMs: RETRY_MS,
    movements: new Map(), // event_id -> movement event, until its position event arrives
    shown: 0,
  };

  class AuthError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  // -- small helpers ---------------------------------------------------------------------

  // Event times have microseconds; Date only promises to parse milliseconds.
  function clockTime(iso) {
    const when = new Date(String(iso).replace(/(\.\d{3})\d+/, "$1"));
    return Number.isNaN(when.getTime()) ? String(iso) : clockFmt.format(when);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async function problem(resp) {
    try {
      const body = await resp.json();
      if (body && typeof body.detail === "string") return body.detail;
    } catch (_) {
      // not JSON: fall through to the status text
    }
    return resp.statusText || "no detail";
  }

  async function api(path, init = {}) {
    const headers = new Headers(init.headers || {});
    headers.set("Authorization", `Bearer ${state.token}`);
    const resp = await fetch(path, {
      ...init,
      headers,
      cache: "no-store",
      credentials: "omit",
    });
    if (resp.status === 401 || resp.status === 403) {
      throw new AuthError(resp.status, await problem(resp));
    }
    if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}: ${await problem(resp)}`);
    return resp;
  }

  function setConn(stateName, text) {
    ui.conn.dataset.state = stateName;
    ui.connText.textContent = text;
  }

  function showNotice(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  }

  // -- token and session -----------------------------------------------------------------

  function tokenFromFragment() {
    // not URLSearchParams: it would turn a "+" of a token into a space
    const found = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!found) return null;
    // keep the token out of the address bar, the history and bookmarks
    history.replaceState(null, "", location.pathname + location.search);
    try {
      return decodeURIComponent(found[1]).trim() || null;
    } catch (_) {
      return found[1].trim() || null;
    }
  }

  function stop() {
    state.gen += 1;
    state.abort?.abort();
    state.abort = null;
    clearInterval(state.stockTimer);
    clearTimeout(state.stockSoon);
    state.stockSoon = 0;
  }

  function showLogin(error) {
    stop();
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    ui.view.hidden = true;
    ui.signout.hidden = true;
    ui.login.hidden = false;
    ui.authError.textContent = error || "";
    ui.authError.hidden = !error;
    setConn(error ? "error" : "idle", error ? "Token refused" : "Not connected");
    ui.input.value = "";
    ui.input.setAttribute("aria-invalid", error ? "true" : "false");
    ui.input.focus();
  }

  function authFailed(err) {
    const why =
      err.status === 403
        ? `This token may not do that: ${err.detail || err.message}. ` +
          "The live view needs a token with the read and stream scopes."
        : `The gateway refused this token (${err.message}). Check it and try again.`;
    showLogin(why);
  }

  function start(token) {
    stop();
    const gen = state.gen;
    state.token = token;
    state.lastEventId = "";
    state.retryMs = RETRY_MS;
    state.movements.clear();
    sessionStorage.setItem(TOKEN_KEY, token);
    ui.login.hidden = true;
    ui.authError.hidden = true;
    ui.view.hidden = false;
    ui.signout.hidden = false;
    showNotice("");
    setConn("connecting", "Connecting…");
    state.stockTimer = setInterval(() => refreshStock(gen), STOCK_EVERY_MS);
    refreshStock(gen).then((ok) => {
      if (ok) streamLoop(gen);
    });
  }

  // -- stock -----------------------------------------------------------------------------

  async function refreshStock(gen) {
    try {
      const body = await (await api("v1/zones")).json();
      if (gen !== state.gen) return false;
      renderStock(body.zones || []);
      return true;
    } catch (err) {
      if (gen !== state.gen) return false;
      if (err instanceof AuthError) {
        authFailed(err);
        return false;
      }
      showNotice(`Stock could not be loaded: ${err.message}`);
      return true; // the stream may still work; the timer tries again
    }
  }

  function stockSoon(gen) {
    if (state.stockSoon) return;
    state.stockSoon = setTimeout(() => {
      state.stockSoon = 0;
      refreshStock(gen);
    }, STOCK_AFTER_CHANGE_MS);
  }

  function renderStock(zones) {
    const rows = zones
      .slice()
      .sort((a, b) => a.site.localeCompare(b.site) || a.zone.localeCompare(b.zone));
    const max = Math.max(1, ...rows.map((z) => z.count));
    const total = rows.reduce((sum, z) => sum + z.count, 0);
    const body = document.createDocumentFragment();
    for (const z of rows) {
      const tr = el("tr");
      tr.dataset.zone = z.zone;
      tr.dataset.site = z.site;
      const zoneCell = el("th", "zone");
      zoneCell.scope = "row";
      zoneCell.append(el("span", "zone-name", z.zone));
      const bar = el("span", "bar");
      bar.setAttribute("aria-hidden", "true");
      const fill = el("span", "fill");
      fill.style.inlineSize = `${(100 * z.count) / max}%`; // CSSOM: allowed by the CSP
      bar.append(fill);
      zoneCell.append(bar);
      tr.append(zoneCell, el("td", "site", z.site), el("td", "num count", String(z.count)));
      if (z.count === 0) tr.classList.add("zero");
      body.append(tr);
    }
    ui.stockBody.replaceChildren(body);
    ui.stockEmpty.hidden = rows.length > 0;
    ui.stockTotal.textContent = String(total);
    const now = new Date();
    ui.stockUpdated.textContent = clockFmt.format(now);
    ui.stockUpdated.dateTime = now.toISOString();
  }

  // -- live feed -------------------------------------------------------------------------

  function zoneChip(zone, placeholder) {
    return zone ? el("span", "chip", zone) : el("span", "chip none", placeholder);
  }

  function addMovement(position, movement) {
    const tr = el("tr", "new");
    tr.dataset.kind = position.kind;
    tr.dataset.eventId = position.event_id;

    const timeCell = el("td", "time");
    const time = el("time", "", clockTime(position.event_time));
    time.dateTime = position.event_time;
    timeCell.append(time);

    const itemCell = el("td", "item", position.item);
    itemCell.title = position.item;

    const moveCell = el("td", "move");
    const kind = el("span", `kind ${position.kind}`, position.kind);
    const arrow = el("span", "arrow", "→");
    moveCell.append(
      kind,
      " ",
      zoneChip(position.from_zone, "new"),
      " ",
      arrow,
      " ",
      zoneChip(position.to_zone, "gone"),
    );

    const reader = movement ? movement.reader : "?";
    const readerCell = el("td", "reader", reader);
    if (movement) readerCell.title = `${movement.device} / ${reader}, antenna ${movement.antenna}`;

    tr.append(timeCell, itemCell, moveCell, readerCell);
    ui.feedBody.prepend(tr);
    while (ui.feedBody.rows.length > FEED_MAX) ui.feedBody.deleteRow(-1);
    state.shown += 1;
    ui.feedCount.textContent = String(state.shown);
    ui.feedEmpty.hidden = true;
    setTimeout(() => tr.classList.remove("new"), 1500);
  }

  function onMessage(msg, gen) {
    if (gen !== state.gen) return;
    try {
      handle(msg, gen);
    } catch (err) {
      console.warn("tagtrail: ignored a stream message it could not read", msg.type, err);
    }
  }

  function handle(msg, gen) {
    if (msg.type === "movement") {
      const event = JSON.parse(msg.data);
      state.movements.set(event.event_id, event);
      if (state.movements.size > 500) {
        state.movements.delete(state.movements.keys().next().value);
      }
    } else if (msg.type === "position") {
      const position = JSON.parse(msg.data);
      const movement = state.movements.get(position.event_id);
      state.movements.delete(position.event_id);
      addMovement(position, movement);
      stockSoon(gen);
    } else if (msg.type === "disconnect") {
      let reason = msg.data;
      try {
        reason = JSON.parse(msg.data).reason || reason;
      } catch (_) {
        // plain text reason
      }
      showNotice(`The gateway ended the stream: ${reason}`);
    }
  }

  // A Server-Sent Events parser (the WHATWG "event stream interpretation"): feed it text,
  // it calls onEvent({type, data, id}) per message and onComment(text) per comment line.
  function sseParser(onEvent, onComment, onRetry) {
    const LINE = /\r\n|\r|\n/g;
    let buffer = "";
    let data = [];
    let type = "";
    let first = true;

    function line(text) {
      if (text === "") {
        if (data.length) {
          onEvent({ type: type || "message", data: data.join("\n"), id: state.lastEventId });
        }
        data = [];
        type = "";
        return;
      }
      if (text[0] === ":") {
        onComment(text.slice(1).trim());
        return;
      }
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) state.lastEventId = value;
      else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
    }

    return (chunk) => {
      buffer += chunk;
      if (first && buffer.length) {
        if (buffer[0] === "\ufeff") buffer = buffer.slice(1);
        first = false;
      }
      let start = 0;
      LINE.lastIndex = 0;
      for (let m = LINE.exec(buffer); m !== null; m = LINE.exec(buffer)) {
        // a lone CR at the end may be the first half of CRLF: wait for more
        if (m[0] === "\r" && m.index === buffer.length - 1) break;
        line(buffer.slice(start, m.index));
        start = LINE.lastIndex;
      }
      buffer = buffer.slice(start);
    };
  }

  async function readStream(resp, ctl, gen) {
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let idle = setTimeout(() => ctl.abort(), IDLE_MS);
    const parse = sseParser(
      (msg) => onMessage(msg, gen),
      (comment) => {
        if (comment === "connected" && gen === state.gen) {
          // subscribed: from now on every change reaches us, so the stock read now is
          // consistent with the feed (after a reconnect it also catches up what we missed)
          setConn("live", "Live");
          showNotice("");
          refreshStock(gen);
        }
      },
      (ms) => {
        state.retryMs = Math.max(FIRST_RETRY_MS, ms);
      },
    );
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(idle);
        idle = setTimeout(() => ctl.abort(), IDLE_MS);
        parse(value);
      }
    } finally {
      clearTimeout(idle);
      reader.releaseLock();
    }
  }

  async function streamLoop(gen) {
    let attempt = 0;
    while (gen === state.gen) {
      const ctl = new AbortController();
      state.abort = ctl;
      const headers = { Accept: "text/event-stream" };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const connecting = setTimeout(() => ctl.abort(), IDLE_MS);
      try {
        const resp = await api("v1/stream", { headers, signal: ctl.signal });
        clearTimeout(connecting);
        const type = resp.headers.get("content-type") || "";
        if (!type.startsWith("text/event-stream")) throw new Error(`not an event stream: ${type}`);
        attempt = 0;
        await readStream(resp, ctl, gen);
      } catch (err) {
        if (gen !== state.gen) return;
        if (err instanceof AuthError) {
          authFailed(err);
          return;
        }
        if (err.name !== "AbortError") showNotice(`Live stream interrupted: ${err.message}`);
      } finally {
        clearTimeout(connecting);
        ctl.abort(); // whatever ended the read, close the connection
      }
      if (gen !== state.gen) return;
      attempt += 1;
      const wait =
        attempt === 1
          ? Math.min(FIRST_RETRY_MS, state.retryMs)
          : Math.min(RETRY_MAX_MS, state.retryMs * 2 ** (attempt - 2));
      setConn("reconnecting", `Reconnecting in ${Math.round(wait / 1000)} s…`);
      const pause = new AbortController();
      state.abort = pause;
      await sleep(wait, pause.signal);
      if (gen === state.gen) setConn("reconnecting", "Reconnecting…");
    }
  }

  // -- wiring ----------------------------------------------------------------------------

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = ui.input.value.trim();
    if (!token) {
      ui.authError.textContent = "Enter a token.";
      ui.authError.hidden = false;
      ui.input.setAttribute("aria-invalid", "true");
      ui.input.focus();
      return;
    }
    ui.input.value = "";
    start(token);
  });

  ui.signout.addEventListener("click", () => showLogin(""));

  window.addEventListener("hashchange", () => {
    const token = tokenFromFragment();
    if (token) start(token);
  });

  const initial = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (initial) start(initial);
  else showLogin("");
})();
