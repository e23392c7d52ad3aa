// lua-ws chat: the browser side of the JSON protocol described in docs/chat.md.
// One WebSocket per page; when it drops, the page reconnects with exponential backoff and
// jitter, joins its room again and redraws the room from the history the server replays.
(() => {
  'use strict';

  const RECONNECT_INITIAL_MS = 500;
  const RECONNECT_MAX_MS = 30000;
  const GROUP_WINDOW_MS = 5 * 60 * 1000;   // consecutive messages of one sender share a header
  const ROOM_PATTERN = /^[A-Za-z0-9_.-]+$/;
  // Errors the server answers to a join: the page goes back to the form instead of retrying.
  const JOIN_ERRORS = new Set(['bad_nick', 'bad_room', 'nick_taken', 'too_many_rooms', 'room_full']);

  const $ = (id) => document.getElementById(id);
  const el = {
    app: $('app'), joinView: $('join-view'), chatView: $('chat-view'),
    joinForm: $('join-form'), nick: $('nick'), room: $('room'), joinError: $('join-error'),
    joinButton: $('join-button'), roomName: $('room-name'), status: $('status'),
    statusText: $('status-text'), banner: $('banner'), bannerText: $('banner-text'),
    retryButton: $('retry-button'), messages: $('messages'), memberList: $('member-list'),
    memberCount: $('member-count'), memberBadge: $('member-count-badge'),
    membersToggle: $('members-toggle'), leaveButton: $('leave-button'), composer: $('composer'),
    text: $('text'), counter: $('counter'), sendButton: $('send-button'), toast: $('toast'),
  };

  const limits = { nick: 32, room: 32, text: 2000 };
  const s = {
    ws: null,
    wanted: false,        // the user wants to be in a room: keep (re)connecting
    joined: false,
    everJoined: false,    // joined at least once since the form was submitted
    lastSeq: null,        // seq of the last message shown: a reconnect asks for what followed it
    myId: null,
    nick: '',
    room: '',
    attempt: 0,
    retryTimer: null,
    countdownTimer: null,
    retryAt: 0,
    members: new Map(),   // id -> nick
    last: null,           // { nick, ts } of the last message drawn, for grouping
    unread: 0,
    toastTimer: null,
  };

  // ---------- the socket ----------

  function socketUrl() {
    const meta = document.querySelector('meta[name="chat-socket"]');
    const url = new URL((meta && meta.content) || 'ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.href;
  }

  function connect() {
    clearRetry();
    if (s.ws) return;
    setStatus('connecting', s.everJoined ? 'Reconnecting…' : 'Connecting…');
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      showBanner(`Cannot open the connection: ${err.message}`, 'error');
      scheduleReconnect();
      return;
    }
    s.ws = ws;
    ws.onmessage = (ev) => {
      if (s.ws !== ws) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg && typeof msg.type === 'string') handle(msg);
    };
    ws.onclose = (ev) => {
      if (s.ws !== ws) return;
      s.ws = null;
      const wasJoined = s.joined;
      s.joined = false;
      setComposerEnabled(false);
      if (!s.wanted) { setStatus('offline', 'Offline'); return; }
      if (wasJoined) notice('Connection lost');
      scheduleReconnect(ev);
    };
  }

  function send(obj) {
    if (s.ws && s.ws.readyState === WebSocket.OPEN) {
      s.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  function closeReason(ev) {
    if (!ev) return '';
    if (ev.reason) return ` (${ev.reason})`;
    switch (ev.code) {
      case 1001: return ' (server going away)';
      case 1008: return ' (refused by policy)';
      case 1011: return ' (server error)';
      case 1013: return ' (server busy)';
      default: return '';
    }
  }

  function scheduleReconnect(ev) {
    clearRetry();
    // Full backoff doubles per failed attempt; the jitter spreads a crowd of pages that lost
    // the same server so they do not all come back in the same millisecond.
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_INITIAL_MS * 2 ** s.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    s.attempt += 1;
    s.retryAt = Date.now() + delay;
    const why = s.everJoined ? 'Connection lost' : 'Cannot reach the chat server';
    const tick = () => {
      const left = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
      setStatus('reconnecting', `Retrying in ${left}s`);
      showBanner(`${why}${closeReason(ev)}. Reconnecting in ${left} s…`, s.everJoined ? 'warn' : 'error');
    };
    tick();
    s.countdownTimer = setInterval(tick, 250);
    s.retryTimer = setTimeout(connect, delay);
  }

  function clearRetry() {
    clearTimeout(s.retryTimer);
    clearInterval(s.countdownTimer);
    s.retryTimer = s.countdownTimer = null;
  }

  // ---------- what the server says ----------

  function handle(msg) {
    switch (msg.type) {
      case 'welcome':
        s.myId = msg.id;
        if (msg.limits) Object.assign(limits, msg.limits);
        el.text.maxLength = limits.text;
        // Back after a dropped link: ask for exactly the messages that came meanwhile.
        send(s.lastSeq === null ? { type: 'join', room: s.room, nick: s.nick }
          : { type: 'join', room: s.room, nick: s.nick, since: s.lastSeq });
        break;
      case 'members':
        if (msg.room !== s.room) break;
        s.members = new Map((msg.members || []).map((m) => [m.id, m.nick]));
        renderMembers();
        s.joined = true;
        s.everJoined = true;
        s.attempt = 0;
        hideBanner();
        setStatus('online', 'Connected');
        setComposerEnabled(true);
        showChat();
        break;
      case 'history':
        if (msg.room !== s.room) break;
        clearMessages();
        s.lastSeq = 0;
        if (msg.reset) notice('Some messages were missed while offline');
        if (msg.messages && msg.messages.length) {
          divider('Earlier messages');
          for (const m of msg.messages) { drawMessage(m, true); noteSeq(m); }
          divider('Now');
        }
        break;
      case 'resumed':
        // What was missed since msg.since follows as ordinary messages; nothing is redrawn.
        if (msg.room !== s.room) break;
        break;
      case 'joined':
        if (msg.room !== s.room) break;
        s.members.set(msg.id, msg.nick);
        renderMembers();
        notice(msg.id === s.myId ? `You joined #${msg.room}` : `${msg.nick} joined`);
        break;
      case 'left':
        if (msg.room !== s.room) break;
        s.members.delete(msg.id);
        renderMembers();
        notice(`${msg.nick} left`);
        break;
      case 'message':
        if (msg.room && msg.room !== s.room) break;
        if (typeof msg.seq === 'number' && s.lastSeq !== null && msg.seq <= s.lastSeq) break; // seen
        drawMessage(msg, false);
        noteSeq(msg);
        if (document.hidden) { s.unread += 1; updateTitle(); }
        break;
      case 'error':
        serverError(msg);
        break;
      default:
        break;   // newer servers may say more; an older page ignores it
    }
  }

  function noteSeq(m) {
    if (typeof m.seq === 'number' && (s.lastSeq === null || m.seq > s.lastSeq)) s.lastSeq = m.seq;
  }

  function serverError(msg) {
    const text = msg.message || 'Something went wrong';
    if (!s.joined && JOIN_ERRORS.has(msg.code)) {
      // The join itself was refused: retrying would be refused again.
      s.wanted = false;
      if (s.ws) s.ws.close(1000);
      showJoin(text);
      return;
    }
    toast(text);
  }

  // ---------- drawing ----------

  // Colours that stay readable under white initials, picked by an FNV-1a hash of the nick, so
  // a person keeps one colour on every page.
  const AVATAR_COLOURS = ['#e11d48', '#db2777', '#9333ea', '#4f46e5', '#2563eb', '#0e7490', '#047857',
    '#4d7c0f', '#b45309', '#c2410c', '#0369a1', '#7c3aed', '#be123c', '#15803d'];
  function colourOf(name) {
    let h = 0x811c9dc5;
    for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 0x01000193) >>> 0;
    return AVATAR_COLOURS[h % AVATAR_COLOURS.length];
  }

  function avatar(nick, small) {
    const a = document.createElement('span');
    a.className = small ? 'avatar small' : 'avatar';
    a.style.backgroundColor = colourOf(nick);
    a.textContent = Array.from(nick.trim())[0] || '?';
    a.setAttribute('aria-hidden', 'true');
    return a;
  }

  function timeOf(ts) {
    const d = new Date(typeof ts === 'number' ? ts : Date.now());
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function append(node) {
    const stick = nearBottom();
    el.messages.appendChild(node);
    if (stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function clearMessages() {
    el.messages.replaceChildren();
    s.last = null;
  }

  function drawMessage(m, fromHistory) {
    const nick = String(m.nick || '?');
    const ts = typeof m.ts === 'number' ? m.ts : Date.now();
    const grouped = s.last && s.last.nick === nick && ts - s.last.ts < GROUP_WINDOW_MS;
    const row = document.createElement('div');
    row.className = 'msg';
    if (!grouped) row.classList.add('first');
    if (nick === s.nick) row.classList.add('mine');
    if (fromHistory) row.classList.add('history');
    row.dataset.from = m.from;
    row.appendChild(avatar(nick));
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = 'nick';
    who.textContent = nick;
    const when = document.createElement('time');
    when.className = 'time';
    when.dateTime = new Date(ts).toISOString();
    when.textContent = timeOf(ts);
    meta.append(who, when);
    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    bubble.textContent = String(m.text || '');
    bubble.title = new Date(ts).toLocaleString();
    row.append(meta, bubble);
    append(row);
    s.last = { nick, ts };
  }

  function notice(text) {
    const n = document.createElement('div');
    n.className = 'notice';
    n.textContent = text;
    append(n);
    s.last = null;
  }

  function divider(text) {
    const d = document.createElement('div');
    d.className = 'divider';
    d.textContent = text;
    append(d);
    s.last = null;
  }

  function renderMembers() {
    const list = [...s.members].sort((a, b) => a[1].localeCompare(b[1]));
    el.memberList.replaceChildren(...list.map(([id, nick]) => {
      const li = document.createElement('li');
      if (id === s.myId) li.className = 'me';
      li.dataset.id = id;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = nick;
      li.append(avatar(nick, true), name);
      return li;
    }));
    el.memberCount.textContent = el.memberBadge.textContent = String(list.length);
  }

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.statusText.textContent = text;
  }

  function showBanner(text, kind) {
    el.bannerText.textContent = text;
    el.banner.dataset.kind = kind || 'warn';
    el.banner.hidden = false;
  }

  function hideBanner() { el.banner.hidden = true; }

  function toast(text) {
    el.toast.textContent = text;
    el.toast.hidden = false;
    clearTimeout(s.toastTimer);
    s.toastTimer = setTimeout(() => { el.toast.hidden = true; }, 4000);
  }

  function updateTitle() {
    const base = s.room ? `#${s.room} · lua-ws chat` : 'lua-ws chat';
    document.title = s.unread ? `(${s.unread}) ${base}` : base;
  }

  function setComposerEnabled(on) {
    el.text.disabled = !on;
    el.text.placeholder = on ? `Message #${s.room}` : 'Waiting for the connection…';
    updateComposer();
  }

  function updateComposer() {
    const len = Array.from(el.text.value).length;
    const blank = el.text.value.trim() === '';
    el.sendButton.disabled = el.text.disabled || blank || len > limits.text;
    const showCounter = len > limits.text * 0.8;
    el.counter.hidden = !showCounter;
    el.counter.textContent = String(limits.text - len);
    el.counter.classList.toggle('over', len > limits.text);
    // Grow with the text up to the CSS max-height.
    el.text.style.height = 'auto';
    el.text.style.height = `${el.text.scrollHeight + 2}px`;
  }

  // ---------- views ----------

  function showChat() {
    el.app.dataset.view = 'chat';
    el.joinView.hidden = true;
    el.chatView.hidden = false;
    el.roomName.textContent = s.room;
    updateTitle();
    if (document.activeElement !== el.text) el.text.focus();
  }

  function showJoin(error) {
    clearRetry();
    el.app.dataset.view = 'join';
    el.chatView.hidden = true;
    el.joinView.hidden = false;
    el.joinButton.disabled = false;
    el.joinError.hidden = !error;
    el.joinError.textContent = error || '';
    s.room = '';
    updateTitle();
    (error && /nick/i.test(error) ? el.nick : el.room).focus();
  }

  function validateForm(nick, room) {
    if (!nick) return 'Pick a nickname.';
    if (Array.from(nick).length > limits.nick) return `A nickname has at most ${limits.nick} characters.`;
    if (!room) return 'Pick a room.';
    if (room.length > limits.room) return `A room name has at most ${limits.room} characters.`;
    if (!ROOM_PATTERN.test(room)) return 'A room name uses letters, digits, "-", "_" and "." only.';
    return null;
  }

  // ---------- user actions ----------

  el.joinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const nick = el.nick.value.trim();
    const room = el.room.value.trim().replace(/^#/, '');
    const problem = validateForm(nick, room);
    if (problem) {
      el.joinError.textContent = problem;
      el.joinError.hidden = false;
      return;
    }
    el.joinError.hidden = true;
    el.joinButton.disabled = true;
    try { localStorage.setItem('chat.nick', nick); } catch (_) { /* private mode */ }
    if (location.hash !== `#${room}`) history.replaceState(null, '', `#${room}`);
    s.nick = nick;
    s.room = room;
    s.wanted = true;
    s.everJoined = false;
    s.attempt = 0;
    s.lastSeq = null;
    clearMessages();
    s.members.clear();
    renderMembers();
    // The chat view appears on the server's "members"; until then the form shows progress.
    el.roomName.textContent = room;
    if (s.ws && s.ws.readyState === WebSocket.OPEN) send({ type: 'join', room, nick });
    else connect();
    // If the server is down, show the chat view with its reconnect banner rather than a
    // form that seems to hang.
    setTimeout(() => { if (s.wanted && !s.joined) { el.joinButton.disabled = false; showChatPending(); } }, 1500);
  });

  function showChatPending() {
    el.app.dataset.view = 'chat';
    el.joinView.hidden = true;
    el.chatView.hidden = false;
    el.roomName.textContent = s.room;
    setComposerEnabled(false);
  }

  el.leaveButton.addEventListener('click', () => {
    s.wanted = false;
    send({ type: 'leave' });
    if (s.ws) s.ws.close(1000, 'bye');
    s.ws = null;
    s.joined = false;
    hideBanner();
    setStatus('offline', 'Offline');
    showJoin();
  });

  el.retryButton.addEventListener('click', () => { s.attempt = 0; connect(); });
  window.addEventListener('online', () => { if (s.wanted && !s.ws) connect(); });

  el.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = el.text.value;
    if (!text.trim() || Array.from(text).length > limits.text) return;
    if (send({ type: 'message', text })) {
      el.text.value = '';
      updateComposer();
      el.messages.scrollTop = el.messages.scrollHeight;
    } else {
      toast('Not connected: the message was not sent.');
    }
  });

  el.text.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      el.composer.requestSubmit();
    }
  });
  el.text.addEventListener('input', updateComposer);

  el.membersToggle.addEventListener('click', () => {
    const open = el.app.classList.toggle('members-open');
    el.membersToggle.setAttribute('aria-expanded', String(open));
  });

  el.messages.addEventListener('click', () => {
    el.app.classList.remove('members-open');
    el.membersToggle.setAttribute('aria-expanded', 'false');
  });

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && s.unread) { s.unread = 0; updateTitle(); }
  });

  // ---------- start ----------

  try { el.nick.value = localStorage.getItem('chat.nick') || ''; } catch (_) { /* private mode */ }
  el.room.value = decodeURIComponent(location.hash.slice(1)) || 'lobby';
  (el.nick.value ? el.room : el.nick).focus();
})();
