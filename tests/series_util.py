"""Helpers for the series tests: small real git repositories, real format-patch mails, and
the whitespace folding the 2010 mail archive did."""

import re
import subprocess
from pathlib import Path

from tests.conftest import git

C_FILE = """/* a small C file shaped like kernel code */
#include <linux/mm.h>

static int first(struct vm_area_struct *vma)
{
	int error = 0;

	spin_lock(&mm->page_table_lock);
	if (error)
		return error;
	spin_unlock(&mm->page_table_lock);
	return 0;
}

static int second(struct vm_area_struct *vma)
{
	int error = 0;

	spin_lock(&mm->page_table_lock);
	if (error)
		return error;
	spin_unlock(&mm->page_table_lock);
	return 0;
}
"""


def c_repo(tmp: Path) -> Path:
    """A git repository with mm/demo.c (tabs, two look-alike functions) and a README."""
    repo = tmp / "crepo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "mm").mkdir()
    (repo / "mm" / "demo.c").write_text(C_FILE)
    (repo / "README").write_text("hello\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    return repo


def change(repo: Path, path: str, old: str, new: str, msg: str) -> None:
    f = repo / path
    text = f.read_text()
    assert old in text, old
    f.write_text(text.replace(old, new, 1))
    git(repo, "commit", "-q", "-a", "-m", msg)


def format_patch(repo: Path, rng: str, out: Path, *args: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    names = git(repo, "format-patch", "-o", str(out), *args, rng).split()
    return [Path(n) for n in names]


def mangle(text: str) -> str:
    """Fold every run of blanks to one space and drop the leading space of hunk context
    lines, as the 2010 archive did (trailing blanks go too)."""
    out, need = [], [0, 0]
    hunk = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
    for ln in text.splitlines():
        folded = re.sub(r"[ \t]+", " ", ln).rstrip()
        if m := hunk.match(ln):
            need = [int(m.group(1) or 1), int(m.group(2) or 1)]
        elif need[0] > 0 or need[1] > 0:
            kind = ln[:1]
            if kind == "-":
                need[0] -= 1
            elif kind == "+":
                need[1] -= 1
            elif kind != "\\":
                need[0] -= 1
                need[1] -= 1
                folded = folded[1:] if kind == " " else folded
        out.append(folded)
    return "\n".join(out) + "\n"


def run_kpv(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os
    import sys
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})},
                          cwd=Path(__file__).resolve().parent.parent)


class Routes:
    """A tiny HTTP server on 127.0.0.1 answering fixed answers per path.

    An answer is (status, body) or (status, body, headers); a list of answers is
    served in turn, its last one from then on. `hits` counts the requests per path.
    A path in `drip` sends its body one byte every drip[path] seconds (a server
    that never quite stops answering) until all is sent or the server closes.
    """

    def __init__(self, routes: dict[str, tuple | list[tuple]],
                 drip: dict[str, float] | None = None):
        import collections
        import http.server
        import threading

        table, slow = routes, drip or {}
        hits: collections.Counter[str] = collections.Counter()
        closing = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                answer = table.get(self.path, (404, b"not found"))
                if isinstance(answer, list):
                    answer = answer[min(hits[self.path], len(answer) - 1)]
                hits[self.path] += 1
                status, body, *headers = answer
                self.send_response(status)
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path not in slow:
                    self.wfile.write(body)
                    return
                for i in range(len(body)):
                    if closing.wait(slow[self.path]):
                        return
                    try:
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                    except OSError:  # the client gave up: what the drip is for
                        return

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.routes = routes
        self.hits = hits
        self.closing = closing
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
