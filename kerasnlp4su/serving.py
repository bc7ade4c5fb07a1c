"""A tiny JSON web API around Python functions (bert4keras's `WebServing`), standard library only."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

__all__ = ["WebServing"]


class WebServing:
    """Serve functions as `GET`/`POST` endpoints returning `{"code", "desc", "data"}` JSON.

    `arguments` maps each parameter name to `(converter, required)`:
    query/form values arrive as strings and `converter` (e.g. `int`, or
    None to keep the string) turns them into the argument. `code` is 0 on
    success, 1 for a missing required argument, 2 when the function raised
    (its message in `desc`). Meant for demos and quick tests, like
    bert4keras's; unlike it, it needs no bottle/paste and no TF1 session:
    Keras 3 models can be called from the server's threads directly.
    `server` is accepted for bert4keras compatibility and ignored.

    Example:
    >>> web = WebServing(port=8864)
    >>> web.route("/upper", lambda text: text.upper(), {"text": (None, True)})
    >>> web.start()  # doctest: +SKIP
    >>> # http://127.0.0.1:8864/upper?text=hi -> {"code": 0, "desc": "succeeded", "data": "HI"}
    """

    def __init__(self, host="0.0.0.0", port=8000, server="paste"):
        self.host = host
        self.port = port
        self.server = server
        self.routes = {}
        self.httpd = None

    def wraps(self, func, arguments, method="GET"):
        """`func` as a handler taking the request's `{name: string value}` and returning JSON text."""

        def handle(values):
            outputs = {"code": 0, "desc": "succeeded", "data": {}}
            kwargs = {}
            for key, (converter, required) in arguments.items():
                value = values.get(key)
                if value is None:
                    if required:
                        outputs.update(code=1, desc=f'lack of "{key}" argument')
                        return json.dumps(outputs, ensure_ascii=False)
                    continue
                kwargs[key] = converter(value) if converter is not None else value
            try:
                outputs["data"] = func(**kwargs)
            except Exception as error:  # noqa: BLE001 - reported to the client as code 2
                outputs.update(code=2, desc=str(error))
            return json.dumps(outputs, ensure_ascii=False)

        handle.method = method.upper()
        return handle

    def route(self, path, func, arguments, method="GET"):
        """Serve `func` at `path`."""
        self.routes[path] = self.wraps(func, arguments, method)

    def _handler_class(self):
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method):
                url = urlparse(self.path)
                handle = routes.get(url.path)
                if handle is None or handle.method != method:
                    self.send_error(404, f"no {method} route {url.path}")
                    return
                query = url.query
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    query = self.rfile.read(length).decode("utf-8")
                values = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
                body = handle(values).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - http.server's name
                self._serve("GET")

            def do_POST(self):  # noqa: N802
                self._serve("POST")

            def log_message(self, *args):
                pass

        return Handler

    def start(self, block=True):
        """Serve until interrupted (`block=False`: in a daemon thread; `stop()` ends it)."""
        self.httpd = ThreadingHTTPServer((self.host, self.port), self._handler_class())
        self.port = self.httpd.server_address[1]  # the real port when 0 was asked for
        if block:
            self.httpd.serve_forever()
        else:
            threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
