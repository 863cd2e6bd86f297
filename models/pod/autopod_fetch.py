# autopod_fetch.py: one file's transfer (appended to autopod_base.py when embedded): ranges of one
# pre-sized, uniquely named partial file, per-range retry with backoff, a state record beside it
# claimed with link(2) (owner host/pid/start time), resume with If-Range, a 200 to a Range restarts
# from zero, an expired signed URL (403/410) re-resolved through its origin, size + sha256 verified
# before the atomic rename (the sha256 computed while the bytes land: autopod_hash.py), and the
# placed-file record NAME.autopod.json.


class Transfer:
    """One file: claim, resume or start, fetch ranges on several connections, verify, rename."""

    def __init__(self, f, dest_dir, opts, control):
        self.f, self.control, self.lock = f, control, threading.Lock()
        self.dir = dest_dir
        self.dest = os.path.join(self.dir, f["name"])
        self.state_path = self.dest + ".autopod-part.json"
        self.size = int(f.get("size", -1))
        self.url, self.resolved_at = f["url"], time.time()
        self.token = opts.get("tokens", {}).get(f.get("auth", ""), "")
        self.stall = float(opts.get("stall_secs", 30))
        self.chunk = int(opts.get("chunk_bytes", CHUNK))
        self.connections = int(opts.get("connections", 8)) if f.get("ranges") and self.size >= SINGLE_BELOW else 1
        self.bytes, self.fetched, self.t0, self.verifying = 0, 0, time.time(), False
        self.partial, self.closed, self.saved_at, self.hasher = None, False, 0, None
        self.next_look = 0

    # -- ownership ------------------------------------------------------------------------------

    def placed_already(self):
        rec = read_json(self.dest + ".autopod.json")
        try:
            st = os.stat(self.dest)
        except OSError:
            return False
        want = self.f.get("sha256", "")
        return bool(rec and rec.get("source") == self.f["source"] and rec.get("size") == st.st_size
                    and rec.get("mtime_ns") == st.st_mtime_ns and (not want or rec.get("sha256") == want))

    def fresh_state(self, prev):
        f, chunks = self.f, max(1, -(-max(self.size, 0) // self.chunk))
        same = (prev and prev.get("source") == f["source"] and prev.get("size") == self.size
                and prev.get("sha256") == f.get("sha256", "") and f.get("validator")
                and prev.get("validator") == f["validator"] and f.get("ranges")
                and prev.get("chunk_bytes") == self.chunk
                and os.path.exists(os.path.join(self.dir, os.path.basename(prev.get("partial", "")))))
        if prev and not same and prev.get("partial"):
            self.remove(os.path.join(self.dir, os.path.basename(prev["partial"])))
        self.resumed = bool(same)
        return {"version": 1, "source": f["source"], "size": self.size, "sha256": f.get("sha256", ""),
                "validator": f.get("validator", ""), "chunk_bytes": self.chunk,
                "partial": prev["partial"] if same else "%s.%s.part" % (f["name"], secrets.token_hex(4)),
                "done": prev["done"] if same else "0" * chunks, "owner": me()}

    def claim(self):
        """Makes this process the file's only writer: the state record is created with link(2),
        which is atomic on network filesystems too. A live owner is waited for (then the file is
        usually placed: True); a dead one's record is taken over by rename and its partial file
        resumed. False: this process now owns the download."""
        prev = None
        while True:
            if self.placed_already():
                return True
            self.state = self.fresh_state(prev)
            tmp = "%s.%s.tmp" % (self.state_path, secrets.token_hex(4))
            write_json(tmp, self.state)
            try:
                os.link(tmp, self.state_path)
                self.partial = os.path.join(self.dir, self.state["partial"])
                return False
            except FileExistsError:
                pass
            finally:
                self.remove(tmp)
            if not prev or self.state["partial"] != prev.get("partial"):
                self.remove(os.path.join(self.dir, self.state["partial"]))
            prev = read_json(self.state_path)
            if prev is None:
                continue
            if owner_alive(prev.get("owner")):
                prev = None
                self.wait_for_owner()
                continue
            stale = "%s.stale.%s" % (self.state_path, secrets.token_hex(4))
            try:
                os.rename(self.state_path, stale)  # only one taker wins the rename
            except FileNotFoundError:
                prev = None
                continue
            prev = read_json(stale)
            self.remove(stale)

    def wait_for_owner(self):
        while True:
            prev = read_json(self.state_path)
            if prev is None or not owner_alive(prev.get("owner")):
                return
            if self.control() is not None:
                raise Stop(self.control())
            time.sleep(0.2)

    def save(self, every=0):
        """Writes the state record (at most once per `every` seconds); never after the file was
        placed, paused or discarded, so no stale record is left behind."""
        with self.lock:
            if self.closed or time.time() - self.saved_at < every:
                return
            self.state["owner"]["heartbeat"] = int(time.time())
            write_json(self.state_path, self.state)
            self.saved_at = time.time()

    def close(self):
        with self.lock:
            self.closed = True

    # -- bytes ----------------------------------------------------------------------------------

    def request(self, start=None, end=None):
        h = {}
        if start is not None:
            h["Range"] = "bytes=%d-%s" % (start, "" if end is None else end)
            if self.f.get("validator"):
                h["If-Range"] = self.f["validator"]
        resp, _ = http_open(self.url, h, self.stall, self.f.get("origin", ""), self.token)
        return resp

    def reresolve(self, seen):
        """A fresh signed URL from the origin (the signature expired: 403/410), unless another
        range already got one after `seen`. Fails when the file changed at the source."""
        with self.lock:
            if self.resolved_at > seen:
                return
            origin = self.f.get("origin") or self.f["url"]
            try:
                resp, url = http_open(origin, {"Range": "bytes=0-0"}, self.stall, origin, self.token)
            except urllib.error.HTTPError as e:
                raise Fail("re-resolving %s after its signed url expired: http %d" % (self.f["source"], e.code))
            with resp:
                m = re.match(r"bytes \d+-\d+/(\d+)", resp.headers.get("Content-Range", ""))
                total = int(m.group(1)) if m else int(resp.headers.get("Content-Length", -1))
                etag = resp.headers.get("ETag", "")
            if total != self.size or (self.f.get("validator") and etag and etag != self.f["validator"]):
                raise Fail("%s changed at the source while downloading (size %d, was %d); sync again"
                           % (self.f["source"], total, self.size))
            self.url, self.resolved_at = url, time.time()
            sys.stderr.write("re-resolved %s\n" % self.f["source"])

    def pump(self, resp, fd, pos, limit, i=0):
        """Writes the body at pos[0] onwards (up to limit), advancing pos[0] as bytes land, so a
        cut or a stall (socket timeout) leaves it at what is on disk, and tells the hasher that
        range i has landed up to pos[0]."""
        buf = memoryview(bytearray(1 << 20))  # one buffer per response: no allocation per block
        while limit is None or pos[0] < limit:
            self.stopping()
            n = resp.readinto(buf if limit is None else buf[:min(len(buf), limit - pos[0])])
            if not n:
                break
            if os.pwrite(fd, buf[:n], pos[0]) != n:
                raise Fail("%s: a short write to the partial file (is the volume full?)" % self.f["name"])
            pos[0] += n
            self.hasher.landed(i, pos[0])
            with self.lock:
                self.bytes += n
                self.fetched += n

    def stopping(self):
        """Raises Stop when a pause or cancel was asked; the control is read at most every 0.1 s
        (a file read per block cost a fifth of the CPU at 1 GB/s)."""
        now = time.monotonic()
        if now >= self.next_look:
            self.next_look = now + 0.1
            asked = self.control()
            if asked is not None:
                raise Stop(asked)

    def retrying(self, what, attempt_fn):
        """Runs attempt_fn(seen) until it returns True; transient failures (cut, stall, 5xx, 429)
        back off, 403/410 re-resolve, and the count resets whenever bytes arrived."""
        delay, failures = 0.25, 0
        while failures < ATTEMPTS:
            seen, before = time.time(), self.fetched
            try:
                if attempt_fn():
                    return
            except urllib.error.HTTPError as e:
                if e.code in (403, 410):
                    self.reresolve(seen)
                elif e.code < 500 and e.code != 429:
                    raise Fail("%s: http %d from storage for %s" % (self.f["name"], e.code, what))
            except (OSError, urllib.error.URLError):
                pass  # cut, stall (socket timeout), refused: retried
            failures = 0 if self.fetched > before else failures + 1
            time.sleep(delay)
            delay = min(delay * 2, 8) if failures else 0.25
        raise Fail("%s: %s failed %d times in a row" % (self.f["name"], what, ATTEMPTS))

    def fetch_range(self, fd, i):
        start = i * self.chunk
        end = min(self.size, start + self.chunk) - 1
        pos = [start]

        def attempt():
            with self.request(pos[0], end) as resp:
                if resp.status == 200:
                    raise Fail("restart: the server answered 200 to a Range request")
                m = re.match(r"bytes (\d+)-(\d+)/", resp.headers.get("Content-Range", ""))
                if resp.status != 206 or not m or int(m.group(1)) != pos[0]:
                    raise OSError("range %d: unexpected answer %d" % (i, resp.status))
                self.pump(resp, fd, pos, end + 1, i)
            if pos[0] != end + 1:
                raise ShortBody("range %d: body ended early" % i)
            return True

        self.retrying("range %d" % i, attempt)
        with self.lock:
            self.state["done"] = self.state["done"][:i] + "1" + self.state["done"][i + 1:]
        self.save()

    def ranged(self, fd):
        todo = queue.Queue()
        for i, c in enumerate(self.state["done"]):
            if c == "1":  # landed before a resume: hashed from disk while the rest arrives
                self.bytes += min(self.chunk, self.size - i * self.chunk)
                self.hasher.landed(i, min(self.size, (i + 1) * self.chunk))
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
                except Exception as e:  # every failure stops the others: none is lost
                    errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(self.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def single(self, fd):
        """One stream from zero; a cut resumes with Range when the server takes ranges (a 200
        then truncates), else starts over. The body must reach its Content-Length."""
        self.hasher.restart(0)
        os.ftruncate(fd, 0)
        self.bytes, pos = 0, [0]

        def attempt():
            if pos[0] and not self.f.get("ranges"):
                self.hasher.restart(0)
                os.ftruncate(fd, 0)  # no ranges there: a cut download starts over
                self.bytes, pos[0] = 0, 0
            with self.request(pos[0] if pos[0] else None) as resp:
                if resp.status == 200 and pos[0]:
                    self.hasher.restart(0)
                    os.ftruncate(fd, 0)  # the Range was ignored: never append
                    self.bytes, pos[0] = 0, 0
                m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if resp.status == 206 and (not m or int(m.group(1)) != pos[0]):
                    raise OSError("resume: a 206 at another offset")
                length = int(resp.headers.get("Content-Length", -1))
                start = pos[0]
                self.pump(resp, fd, pos, None)
            if length >= 0 and pos[0] - start < length:
                raise ShortBody("body ended early (a cut, or a Content-Length that lied)")
            return True

        self.retrying("the download", attempt)
        if self.size >= 0 and pos[0] != self.size:
            raise Fail("%s: got %d bytes, expected %d" % (self.f["name"], pos[0], self.size))
        self.size = pos[0]

    def run(self):
        """Downloads, verifies and places the file; its sha256. Raises Stop on pause/cancel."""
        if self.claim():
            self.bytes = self.size
            return (read_json(self.dest + ".autopod.json") or {}).get("sha256", "")
        fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        self.hasher = PrefixHasher(fd, self.chunk)
        try:
            if self.f.get("ranges") and self.size > 0:
                os.ftruncate(fd, self.size)
                try:
                    self.ranged(fd)
                except Fail as e:
                    if not str(e).startswith("restart"):
                        raise
                    self.state["done"] = "0" * len(self.state["done"])
                    self.save()
                    self.single(fd)
            else:
                self.single(fd)
            os.fsync(fd)  # the hasher catches up meanwhile
            actual = self.hashed(fd)
        except Stop as s:
            self.close()
            if str(s) == "cancel":
                self.discard()
            else:
                self.state["owner"]["pid"] = 0
                write_json(self.state_path, self.state)
            raise
        finally:
            self.hasher.stop()
            os.close(fd)
        return self.verify(actual)

    @staticmethod
    def remove(path):
        try:
            os.unlink(path)
        except OSError:
            pass

    def discard(self):
        self.close()
        for p in (self.partial, self.state_path):
            if p:
                self.remove(p)

    def hashed(self, fd):
        """The partial file's sha256 once its size is checked (a wrong size removes it)."""
        self.verifying = True
        have = os.fstat(fd).st_size
        if have != self.size:
            self.discard()
            raise Fail("%s: size %d, expected %d; the partial file was removed" % (self.f["name"], have, self.size))
        return self.hasher.finish(self.size)

    def verify(self, actual):
        """Checks the sha256 against the source's and places the file with its record."""
        expected = self.f.get("sha256", "")
        if expected and actual != expected:
            self.discard()
            raise Fail("%s: sha256 mismatch: expected %s, actual %s; the partial file was removed"
                       % (self.f["name"], expected, actual))
        os.replace(self.partial, self.dest)
        st = os.stat(self.dest)
        f = self.f
        # The record before the state record goes: a sync waiting for this owner looks for the
        # record the moment the state record is gone, and would fetch the file again without it.
        write_json(self.dest + ".autopod.json",
                   {"version": 1, "source": f["source"], "folder": f["folder"], "name": f["name"],
                    "revision": f.get("revision", ""), "etag": f.get("validator", ""),
                    "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": actual})
        self.close()
        self.remove(self.state_path)
        return actual
