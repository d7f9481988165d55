// agent-hub dashboard: keeps a server-rendered page live. It listens to the
// operator event stream (/ui/events, cookie session) and, when something happens,
// fetches the same page again and swaps in its [data-live] sections, keeping what
// the operator is typing; and it counts lease and lock deadlines down every second.
// Plain ES5-ish JavaScript: no framework, no inline script, no eval (the page's
// Content-Security-Policy allows only scripts from /ui/static).
(function () {
  "use strict";

  var body = document.body;
  if (!body || !body.dataset.events) {
    return; // the login and error pages are not live
  }
  var status = document.getElementById("live");
  // Deadlines are counted on the server's clock, not the browser's.
  var offset = Number(body.dataset.now) - Date.now();

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = "live " + kind;
  }

  // Same words as format::remaining on the server.
  function remaining(ms) {
    var secs = Math.floor(ms / 1000);
    if (secs <= 0) {
      return "expired";
    }
    var h = Math.floor(secs / 3600);
    var m = Math.floor(secs / 60) % 60;
    var s = secs % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (h > 0) {
      return h + "h " + two(m) + "m";
    }
    if (m > 0) {
      return m + "m " + two(s) + "s";
    }
    return s + "s";
  }

  function tick() {
    var now = Date.now() + offset;
    var times = document.querySelectorAll("time[data-deadline]");
    for (var i = 0; i < times.length; i++) {
      var left = Date.parse(times[i].dataset.deadline) - now;
      var text = remaining(left);
      if (times[i].textContent !== text) {
        times[i].textContent = text;
      }
      times[i].classList.toggle("expired", left <= 0);
    }
  }
  tick();
  setInterval(tick, 1000);

  function sessionEnded() {
    if (source) {
      source.close();
    }
    status.textContent = "Session ended: ";
    var a = document.createElement("a");
    a.href = "/ui/login";
    a.textContent = "log in again";
    status.appendChild(a);
    status.className = "live bad";
  }

  // Put the fresh page's live sections in place of ours.
  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var focused = document.activeElement ? document.activeElement.id : "";
    var sections = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < sections.length; i++) {
      var old = sections[i];
      var fresh = doc.getElementById(old.id);
      if (!fresh) {
        continue;
      }
      var typed = {};
      var fields = old.querySelectorAll("input[id], textarea[id]");
      for (var j = 0; j < fields.length; j++) {
        if (fields[j].type !== "hidden" && fields[j].value !== "") {
          typed[fields[j].id] = fields[j].value;
        }
      }
      old.innerHTML = fresh.innerHTML;
      for (var id in typed) {
        var f = document.getElementById(id);
        if (f) {
          f.value = typed[id];
        }
      }
    }
    if (focused) {
      var back = document.getElementById(focused);
      if (back && back !== document.activeElement) {
        back.focus();
      }
    }
    tick();
  }

  // One refresh at a time; events arriving meanwhile ask for one more after it.
  var timer = null;
  var running = false;
  var again = false;

  function refresh() {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected && new URL(r.url).pathname === "/ui/login") {
          sessionEnded();
          return null;
        }
        if (!r.ok) {
          throw new Error("HTTP " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        if (html !== null) {
          swap(html);
        }
      })
      .catch(function () {
        setStatus("Live (a refresh failed; retrying on the next event)", "warn");
      })
      .then(function () {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  function schedule() {
    if (timer === null) {
      timer = setTimeout(refresh, 200);
    }
  }

  // Every kind the stream sends (README, "Operator event stream").
  var KINDS = [
    "round_plan_submitted", "round_approved", "round_rejected",
    "assignment_claimed", "assignment_progress", "assignment_completed",
    "review_submitted", "task_closed", "lease_expired", "message_delivered",
    "lock_granted", "lock_renewed", "lock_released", "lock_force_released",
    "lock_released_agent_removed", "agent_online", "agent_offline",
    "agent_added", "agent_removed", "agent_token_rotated",
    "operator_token_rotated", "messages_purged", "store_fault", "store_healed",
    "resync"
  ];

  var source = null;
  var lastId = body.dataset.lastEvent || "";

  function onEvent(e) {
    if (e.lastEventId) {
      lastId = e.lastEventId;
    }
    body.dataset.lastSeen = e.type; // lets a test see that events arrive
    schedule();
  }

  function connect() {
    var url = body.dataset.events;
    if (lastId) {
      url += "?last_event_id=" + encodeURIComponent(lastId);
    }
    source = new EventSource(url);
    source.onopen = function () {
      setStatus("Live", "ok");
    };
    source.onerror = function () {
      if (source.readyState !== EventSource.CLOSED) {
        // The browser reconnects by itself, sending Last-Event-ID.
        setStatus("Reconnecting…", "warn");
        return;
      }
      // Refused (a 401 once the session ended) or the server went away: ask
      // the page, which tells the two apart, then connect anew.
      setStatus("Reconnecting…", "warn");
      fetch(location.href, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.redirected && new URL(r.url).pathname === "/ui/login") {
            sessionEnded();
          } else {
            setTimeout(connect, 1000);
            schedule();
          }
        })
        .catch(function () {
          setTimeout(connect, 3000);
        });
    };
    for (var i = 0; i < KINDS.length; i++) {
      source.addEventListener(KINDS[i], onEvent);
    }
  }
  connect();
})();
