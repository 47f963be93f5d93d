"""The real Flask app behind a real HTTP server, for clients that need a URL.

``LiveServer(app)`` serves it with werkzeug's threaded server on a free port of
127.0.0.1 in a daemon thread of the test process; ``stop()`` shuts it down.
"""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
