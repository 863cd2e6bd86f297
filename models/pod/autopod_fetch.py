# autopod_fetch.py: the pod side of `autopod models sync` (python3 stdlib only, nothing installed).
# Sent over SSH on stdin by autopod (never written to the pod), followed by one JSON request line:
#   {"op": "list", "root": R}                    records, model files and free bytes under R
#   {"op": "start", "root": R, "job": ID, "files": [...], "connections": N}  detached download
#   {"op": "status", "root": R, "job": ID}       the job's state file ("" job: all jobs)
#   {"op": "control", "root": R, "job": ID, "action": "pause"|"cancel"}
#   {"op": "prune", "root": R, "paths": [...]}   removes files that carry an autopod record
# The same protocol as models/transfer*.cpp: ranges of one pre-sized uniquely named partial file,
# per-range retry with backoff, a state record beside it (owner host/pid/start time), resume with
# If-Range, a 200 to a Range restarts, size + sha256 verified before the atomic rename, and the
# placed-file record NAME.autopod.json. No token ever reaches this script: URLs are presigned.
AUTOPOD_FETCH_VERSION = 1

import hashlib, json, os, queue, re, secrets, shutil, socket, sys, threading, time
import urllib.error, urllib.request

CHUNK = 16 << 20
SINGLE_BELOW = 8 << 20
UA = "autopod/0.1"


class Stop(Exception):
    pass


class Fail(Exception):
    pass


def write_json(path, obj):
    tmp = "%s.%s.tmp" % (path, secrets.token_hex(4))
    with open(tmp, "w") as f:
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


def owner_alive(o):
    if not o or o.get("host") != socket.gethostname():
        return False
    pid = int(o.get("pid", 0))
    return pid > 0 and start_ticks(pid) == int(o.get("start_ticks", 0))


def safe_dir(root, folder):
    """The folder's directory, refusing anything that leaves the models root (.., symlinks)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", folder) or folder in (".", ".."):
        raise Fail("folder %r escapes the models root" % folder)
    real_root = os.path.realpath(root)
    d = os.path.join(root, folder)
    os.makedirs(d, exist_ok=True)
    if os.path.dirname(os.path.realpath(d)) != real_root:
        raise Fail("%s points outside the models root %s" % (d, root))
    return d


def safe_name(name):
    if not name or "/" in name or "\0" in name or name in (".", "..") or name.startswith(".."):
        raise Fail("name %r escapes the models root" % name)
    return name


class Transfer:
    """One file: claim, resume or start, fetch ranges on several connections, verify, rename."""

    def __init__(self, f, root, connections, control):
        self.f, self.control, self.lock = f, control, threading.Lock()
        self.dir = safe_dir(root, f["folder"])
        self.dest = os.path.join(self.dir, safe_name(f["name"]))
        self.state_path = self.dest + ".autopod-part.json"
        self.size = int(f.get("size", -1))
        self.connections = connections if f.get("ranges") and self.size >= SINGLE_BELOW else 1
        self.bytes, self.fetched, self.t0 = 0, 0, time.time()

    def claim(self):
        prev = read_json(self.state_path)
        if prev and owner_alive(prev.get("owner")):
            raise Fail("%s is being downloaded by pid %s" % (self.dest, prev["owner"].get("pid")))
        f, chunks = self.f, max(1, -(-max(self.size, 0) // CHUNK))
        same = (prev and prev.get("source") == f["source"] and prev.get("size") == self.size
                and prev.get("sha256") == f.get("sha256", "") and f.get("validator")
                and prev.get("validator") == f["validator"] and f.get("ranges")
                and os.path.exists(os.path.join(self.dir, prev.get("partial", ""))))
        if prev and not same and prev.get("partial"):
            try:
                os.unlink(os.path.join(self.dir, os.path.basename(prev["partial"])))
            except OSError:
                pass
        me = os.getpid()
        self.state = {"version": 1, "source": f["source"], "size": self.size,
                      "sha256": f.get("sha256", ""), "validator": f.get("validator", ""),
                      "chunk_bytes": CHUNK,
                      "partial": prev["partial"] if same else "%s.%s.part" % (f["name"], secrets.token_hex(4)),
                      "done": prev["done"] if same else "0" * chunks,
                      "owner": {"host": socket.gethostname(), "pid": me, "start_ticks": start_ticks(me),
                                "heartbeat": int(time.time())}}
        self.partial = os.path.join(self.dir, self.state["partial"])
        self.resumed = bool(same)
        write_json(self.state_path, self.state)

    def save(self):
        with self.lock:
            self.state["owner"]["heartbeat"] = int(time.time())
            write_json(self.state_path, self.state)

    def request(self, start=None, end=None):
        req = urllib.request.Request(self.f["url"], headers={"User-Agent": UA})
        if start is not None:
            req.add_header("Range", "bytes=%d-%d" % (start, end))
            if self.f.get("validator"):
                req.add_header("If-Range", self.f["validator"])
        return urllib.request.urlopen(req, timeout=30)

    def pump(self, resp, fd, offset, limit):
        while limit is None or offset < limit:
            if self.control() is not None:
                raise Stop(self.control())
            block = resp.read(1 << 20 if limit is None else min(1 << 20, limit - offset))
            if not block:
                break
            os.pwrite(fd, block, offset)
            offset += len(block)
            with self.lock:
                self.bytes += len(block)
                self.fetched += len(block)
        return offset

    def fetch_range(self, fd, i):
        start = i * CHUNK
        end = min(self.size, start + CHUNK) - 1
        delay = 0.25
        for attempt in range(8):
            got = 0
            try:
                with self.request(start, end) as resp:
                    if resp.status == 200:
                        raise Fail("restart: the server answered 200 to a Range request")
                    m = re.match(r"bytes (\d+)-(\d+)/", resp.headers.get("Content-Range", ""))
                    if resp.status != 206 or not m or int(m.group(1)) != start:
                        raise OSError("range %d: unexpected answer %d" % (i, resp.status))
                    got = self.pump(resp, fd, start, end + 1) - start
                    if got != end + 1 - start:
                        raise OSError("range %d: body ended early" % i)
                with self.lock:
                    self.state["done"] = self.state["done"][:i] + "1" + self.state["done"][i + 1:]
                self.save()
                return
            except urllib.error.HTTPError as e:
                if e.code in (403, 410):
                    raise Fail("the signed url expired (http %d); run the sync again to resume" % e.code)
                if e.code < 500 and e.code != 429:
                    raise Fail("http %d for range %d" % (e.code, i))
            except (OSError, urllib.error.URLError):
                pass
            with self.lock:
                self.bytes -= got
            time.sleep(delay)
            delay = min(delay * 2, 8)
        raise Fail("range %d failed 8 times" % i)

    def ranged(self, fd):
        todo = queue.Queue()
        for i, c in enumerate(self.state["done"]):
            if c == "1":
                self.bytes += min(CHUNK, self.size - i * CHUNK)
            else:
                todo.put(i)
        errors = []

        def worker():
            while not errors:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    self.fetch_range(fd, i)
                except (Stop, Fail) as e:
                    errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(self.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def single(self, fd):
        os.ftruncate(fd, 0)
        self.bytes = 0
        with self.request() as resp:
            n = self.pump(resp, fd, 0, None)
        if self.size >= 0 and n != self.size:
            raise Fail("%s: got %d bytes, expected %d" % (self.f["name"], n, self.size))
        self.size = n

    def run(self):
        self.claim()
        fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if self.connections > 1 or (self.f.get("ranges") and self.size > 0):
                os.ftruncate(fd, self.size)
                try:
                    self.ranged(fd)
                except Fail as e:
                    if not str(e).startswith("restart"):
                        raise
                    self.state["done"] = "0" * len(self.state["done"])  # never append to it
                    self.single(fd)
            else:
                self.single(fd)
            os.fsync(fd)
        except Stop as s:
            os.close(fd)
            if str(s) == "cancel":
                self.discard()
            else:
                self.state["owner"]["pid"] = 0
                write_json(self.state_path, self.state)
            raise
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return self.verify()

    def discard(self):
        for p in (self.partial, self.state_path):
            try:
                os.unlink(p)
            except OSError:
                pass

    def verify(self):
        self.verifying = True
        if os.path.getsize(self.partial) != self.size:
            self.discard()
            raise Fail("%s: size %d, expected %d" % (self.f["name"], os.path.getsize(self.partial), self.size))
        h = hashlib.sha256()
        with open(self.partial, "rb") as f:
            for block in iter(lambda: f.read(4 << 20), b""):
                h.update(block)
        actual, expected = h.hexdigest(), self.f.get("sha256", "")
        if expected and actual != expected:
            self.discard()
            raise Fail("%s: sha256 %s, expected %s" % (self.f["name"], actual, expected))
        os.replace(self.partial, self.dest)
        os.unlink(self.state_path)
        st = os.stat(self.dest)
        f = self.f
        write_json(self.dest + ".autopod.json",
                   {"version": 1, "source": f["source"], "folder": f["folder"], "name": f["name"],
                    "revision": f.get("revision", ""), "etag": f.get("validator", ""),
                    "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": actual})
        return actual
