# examples/chat/app.py: a small Flask chat room over lichen's websockets.
#
# Strategy: the page at / opens a websocket to /chat; every message a client
# sends is broadcast to every open websocket, the sender's included. The
# websocket is environ["wsgi.websocket"] (gevent-websocket's interface), so
# the route needs no extension; once it has used the websocket, what it
# returns is not sent (the connection is the websocket's). The broadcast
# runs in the sender's greenlet: each send waits only for that client's
# socket (bounded by the server's write timeout), and a client that went
# away is dropped from the room.
#
# Run it from the repository root:  lichen --chdir examples/chat app:app
# then open http://127.0.0.1:8000/ in two browser windows.
from __future__ import annotations

import json

from flask import Flask, abort, request

from lichen.websocket import WebSocketError

app = Flask(__name__)
room: set = set()  # the open websockets

PAGE = """<!doctype html>
<meta charset="utf-8"><title>lichen chat</title>
<ul id="log"></ul>
<form id="f"><input id="name" placeholder="name" size="8"> <input id="text" autofocus size="40"> <button>send</button></form>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chat");
ws.onmessage = (e) => {
  const m = JSON.parse(e.data), li = document.createElement("li");
  li.textContent = m.name + ": " + m.text;
  document.getElementById("log").appendChild(li);
};
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const text = document.getElementById("text");
  ws.send(JSON.stringify({name: document.getElementById("name").value || "anonymous", text: text.value}));
  text.value = "";
};
</script>
"""


@app.route("/")
def index() -> str:
    return PAGE


@app.route("/chat", websocket=True)  # (Werkzeug routes websocket requests only to such rules)
def chat() -> str:
    ws = request.environ.get("wsgi.websocket")
    if ws is None:  # (lichen with its websocket setting off)
        abort(400, "this URL speaks WebSocket")
    room.add(ws)
    try:
        while (message := ws.receive()) is not None:
            try:
                data = json.loads(message)
                text = json.dumps({"name": str(data["name"])[:40], "text": str(data["text"])[:2000]})
            except (ValueError, KeyError, TypeError):
                continue  # not a chat message: ignored
            broadcast(text)
    finally:
        room.discard(ws)
    return ""


def broadcast(text: str) -> None:
    """Send `text` to every open websocket; drop those that went away."""
    for other in list(room):
        try:
            other.send(text)
        except WebSocketError:
            room.discard(other)
