# examples/chat: the Flask chat runs under the `lichen` command; its page is
# served, a message from one client reaches every open websocket (the
# sender's too), one that is no chat message is ignored, and a plain GET of
# the websocket URL is a 400.
# Strategy: `lichen --chdir examples/chat app:app` in its own process group
# for a few seconds, two `websockets` clients, killed by PID at the end.
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

from proc_helpers import Master, free_port, wait_port


@pytest.fixture(scope="module")
def chat():
    port = free_port()
    master = Master("--chdir", "examples/chat", "app:app", "--bind", f"127.0.0.1:{port}", "--no-access-log")
    try:
        wait_port(port)
        yield port
    finally:
        master.close()


def test_the_page_opens_a_websocket_to_chat(chat):
    with urllib.request.urlopen(f"http://127.0.0.1:{chat}/", timeout=5) as r:
        page = r.read().decode()
    assert 'location.host + "/chat"' in page


def test_a_message_reaches_every_open_websocket(chat):
    with connect(f"ws://127.0.0.1:{chat}/chat", open_timeout=5) as a, \
            connect(f"ws://127.0.0.1:{chat}/chat", open_timeout=5) as b:
        time.sleep(0.2)  # both are in the room
        a.send("not json")
        a.send(json.dumps({"name": "ann", "text": "hello"}))
        expected = {"name": "ann", "text": "hello"}
        assert json.loads(a.recv(timeout=5)) == expected
        assert json.loads(b.recv(timeout=5)) == expected


def test_a_plain_get_of_the_websocket_url_is_refused(chat):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{chat}/chat", timeout=5)
    assert e.value.code == 400
