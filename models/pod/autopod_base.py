# autopod_base.py: the pod side of `autopod models sync` (python3 stdlib only, nothing installed).
# autopod_base.py, autopod_hash.py, autopod_fetch.py, autopod_paths.py, autopod_library.py,
# autopod_scan.py and autopod_jobs.py are concatenated in that order and sent over SSH on stdin by
# autopod (never written to the pod), followed by one JSON request line (the requests are in
# autopod_jobs.py). Keep them ASCII: the bootstrap reads the program by character count. This
# part: state files, owners, and HTTP with redirects by hand.
# Tokens arrive on stdin with the request and live in memory only; one is sent only to the host of
# the file's origin (the Hub or Civitai API), never to storage.
AUTOPOD_FETCH_VERSION = 2

import hashlib, json, os, queue, re, secrets, socket, sys, threading, time
import urllib.error, urllib.parse, urllib.request

CHUNK = 16 << 20
SINGLE_BELOW = 8 << 20
UA = "autopod/0.1"
ATTEMPTS = 8
REMOTE_OWNER_STALE_SECS = 120  # an owner on another host with an older heartbeat is dead


class Stop(Exception):
    pass


class Fail(Exception):
    pass


class ShortBody(OSError):
    pass


def write_json(path, obj, mode=0o644):
    tmp = "%s.%s.tmp" % (path, secrets.token_hex(4))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def start_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def me():
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start_ticks": start_ticks(pid),
            "heartbeat": int(time.time())}


def owner_alive(o):
    if not o or int(o.get("pid", 0)) <= 0:
        return False
    if o.get("host") != socket.gethostname():
        return time.time() - int(o.get("heartbeat", 0)) < REMOTE_OWNER_STALE_SECS
    return start_ticks(int(o["pid"])) == int(o.get("start_ticks", 0))


def origin_of(url):
    p = urllib.parse.urlsplit(url)
    return (p.scheme, p.netloc.lower())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # urllib would re-send Authorization to the new host (aria2 issue #1176)


OPENER = urllib.request.build_opener(_NoRedirect)


def http_open(url, headers, timeout, origin="", token=""):
    """Opens url following up to 10 redirects by hand; the token goes only to origin's host.
    Returns (response, final url)."""
    for _ in range(10):
        h = dict(headers, **{"User-Agent": UA})
        if token and origin and origin_of(url) == origin_of(origin):
            h["Authorization"] = "Bearer " + token
        try:
            return OPENER.open(urllib.request.Request(url, headers=h), timeout=timeout), url
        except urllib.error.HTTPError as e:
            loc = e.headers.get("Location") if 300 <= e.code < 400 else None
            if not loc:
                raise
            e.close()
            url = urllib.parse.urljoin(url, loc)
    raise Fail("too many redirects from %s" % origin_of(url)[1])
