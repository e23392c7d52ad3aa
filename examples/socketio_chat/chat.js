// The page of examples/socketio_chat.lua: the official Socket.IO browser client, unchanged,
// against the Lua server. Polling first, then the upgrade to WebSocket (the client's default).
'use strict';

const socket = io(); // same origin, path /socket.io/
const statusEl = document.getElementById('status');
const list = document.getElementById('messages');
const roomName = document.getElementById('room-name');

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

socket.on('connect', () => {
  setStatus('online', `online as ${socket.id} (${socket.io.engine.transport.name})`);
  socket.io.engine.once('upgrade', (t) => setStatus('online', `online as ${socket.id} (${t.name})`));
  roomName.textContent = 'lobby'; // every connection starts in the lobby
});
socket.on('disconnect', (reason) => setStatus('offline', `offline: ${reason}`));
socket.on('connect_error', (err) => setStatus('offline', `cannot connect: ${err.message}`));

socket.on('chat message', (msg) => {
  const li = document.createElement('li');
  if (msg.from === socket.id) li.className = 'mine';
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = msg.from;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = msg.text;
  li.append(from, text);
  list.append(li);
  list.scrollTop = list.scrollHeight;
});

document.getElementById('send').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('text');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  socket.emit('chat message', text, (ok) => {
    if (!ok) setStatus(statusEl.dataset.state, 'message refused');
  });
});

document.getElementById('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = document.getElementById('room').value.trim();
  if (!room) return;
  socket.emit('join', room);
  roomName.textContent = room;
});
