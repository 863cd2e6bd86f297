# autopod_scan.py: the hash cache and the scan job (embedded between autopod_library.py and
# autopod_jobs.py).
#
# The cache: STEM.sha256 beside the model holds the bare 64 hex digits and nothing else (what
# pysssss reads and writes, model-sources.md section 5), and <root>/.autopod/hashes.json keys it:
# {model's real path: {"size", "mtime_ns", "sha256", "sidecar"}}. A hash is reused only while the
# model's size and mtime are the recorded ones and, when a sidecar was written ("sidecar": true),
# STEM.sha256 still holds that hash; a STEM.sha256 another tool wrote (no record) is hashed once
# more, then recorded. No sidecar is written where another model shares the stem (x.ckpt, x.pt:
# one x.sha256 cannot name both) or where the directory is read-only: the index alone keeps it.
#
#   {"op": "scan", "root": R, "job": ID, "folder": F, "paths": [...], "max_bytes_per_sec": N}
#       hashes every model under R (or F, or `paths`; the extra_model_paths.yaml folders too) as a
#       detached job of autopod_jobs.py: its state file <root>/.autopod/jobs/ID.json has one task
#       (bytes and files hashed, speed, ETA) and "results" (per file: path, sha256, cached,
#       bytes_read, error); status, control (pause, cancel) and resume are the sync job's. A resume
#       starts over the same list, and the files already done come from the cache. N > 0 caps the
#       read rate (bytes per second) so a running ComfyUI keeps its disk.


def load_index(root):
    idx = read_json(os.path.join(root, ".autopod", "hashes.json"))
    return idx if isinstance(idx, dict) else {}


def sha256_sidecar(path, names=None):
    """STEM.sha256 beside the model, or None when another model in its directory has that stem.
    `names`: the directory's entries, when the caller has listed it already."""
    d, name = os.path.split(path)
    stem = stem_of(name)
    if names is None:
        try:
            names = os.listdir(d or ".")
        except OSError:
            names = []
    if any(n != name and n.lower().endswith(MODEL_EXTS) and stem_of(n) == stem for n in names):
        return None
    return os.path.join(d, stem + ".sha256")


def cached_hash(index, path, st, names=None):
    """The cached sha256 of the model at `path` with stat `st`, or None. `names`: as for
    sha256_sidecar."""
    e = index.get(os.path.realpath(path))
    if not isinstance(e, dict) or e.get("size") != st.st_size or e.get("mtime_ns") != st.st_mtime_ns:
        return None
    if not e.get("sidecar", True):
        return e.get("sha256")
    try:
        with open(sha256_sidecar(path, names) or "") as f:
            h = f.read(200).strip().lower()
    except OSError:
        return None
    return h if re.fullmatch(r"[0-9a-f]{64}", h) and h == e.get("sha256") else None


def record_hash(index, pending, path, st, digest):
    """Writes STEM.sha256 (where it can) and queues the index entry in `pending`."""
    sidecar, written = sha256_sidecar(path), False
    if sidecar:
        try:
            write_bytes_atomic(sidecar, digest.encode())
            written = True
        except OSError:
            pass  # a read-only directory: the index alone keeps the hash
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest, "sidecar": written}
    index[os.path.realpath(path)] = pending[os.path.realpath(path)] = entry


def flush_index(root, pending):
    """Merges `pending` entries into <root>/.autopod/hashes.json under its lock (other scans of
    the same root add theirs meanwhile) and empties it."""
    if not pending:
        return
    os.makedirs(os.path.join(root, ".autopod"), exist_ok=True)
    with open(os.path.join(root, ".autopod", "hashes.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cur = load_index(root)
        cur.update(pending)
        write_json(os.path.join(root, ".autopod", "hashes.json"), cur)
    pending.clear()


def hash_file(index, pending, path, on_bytes, stop=lambda: None, rate=0):
    """{path, size, cached, bytes_read, sha256} of one model, read only when the cache misses (a
    new hash goes to `pending` for flush_index); on_bytes(n) after each block read; raises Stop
    when stop() names a reason."""
    st = os.stat(path)
    item = {"path": path, "size": st.st_size, "cached": False, "bytes_read": 0}
    cached = cached_hash(index, path, st)
    if cached is not None:
        item.update(cached=True, sha256=cached)
        return item
    h, buf, t0 = hashlib.sha256(), bytearray(1 << 20), time.time()
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        for n in iter(lambda: f.readinto(buf), 0):  # one buffer: no allocation per block
            h.update(view[:n])
            item["bytes_read"] += n
            on_bytes(n)
            why = stop()
            if why:
                raise Stop(why)
            ahead = item["bytes_read"] / rate - (time.time() - t0) if rate > 0 else 0
            if ahead > 0:
                time.sleep(ahead)  # the rate cap
    now = os.stat(path)
    if (now.st_mtime_ns, now.st_size) != (st.st_mtime_ns, st.st_size):
        raise Fail("%s changed while it was hashed; scan again" % path)
    item["sha256"] = h.hexdigest()
    record_hash(index, pending, path, st, item["sha256"])
    return item


def scan_paths(req):
    root = req["root"]
    if not os.path.isdir(root):
        raise Fail("no models root %s on this machine" % root)
    if req.get("paths"):  # reported as asked (the listing's paths), checked through their real one
        where = places(root)
        for p in req["paths"]:
            inside(root, p, where)
        return [p if os.path.isabs(p) else os.path.join(root, p) for p in req["paths"]]
    return [os.path.join(d, n) for d, n, _, _, _ in model_files(root, req.get("folder", ""))]


def run_scan(req, path, control_path):
    o, root = me(), req["root"]
    files = scan_paths(req)
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p in files]
    task = {"name": "scan", "folder": "", "state": "running", "bytes": 0, "total": sum(sizes),
            "files": len(files), "files_done": 0, "bytes_per_sec": 0, "eta_secs": -1, "error": ""}
    job = {"job": req["job"], "kind": "scan", "pid": o["pid"], "start_ticks": o["start_ticks"],
           "host": o["host"], "heartbeat": o["heartbeat"], "state": "running",
           "started": int(time.time()), "tasks": [task]}
    write_json(path, job)
    index, t0, clock = load_index(root), time.time(), {"read": 0, "written": 0.0, "looked": 0.0}
    pending, results = {}, []  # index entries not yet written; per-file results, written at the end

    def stop():  # the control file, looked at every 0.1 s at most
        if time.time() - clock["looked"] < 0.1:
            return None
        clock["looked"] = time.time()
        try:
            with open(control_path) as c:
                return c.read().strip() or None
        except OSError:
            return None

    def tick(n, force=False):
        clock["read"] += n
        task["bytes"] += n
        now = time.time()
        if force or now - clock["written"] >= 0.2:
            clock["written"] = now
            task["bytes_per_sec"] = clock["read"] / max(now - t0, 1e-3)
            left = task["total"] - task["bytes"]
            task["eta_secs"] = int(left / task["bytes_per_sec"]) if task["bytes_per_sec"] > 0 else -1
            job["heartbeat"] = int(now)
            write_json(path, job)
            if len(pending) >= 256 or (pending and force):
                flush_index(root, pending)

    end, failed = "done", 0
    try:
        for p, size in zip(files, sizes):
            clock["looked"] = 0.0
            why = stop()
            if why:
                raise Stop(why)
            before = task["bytes"]
            try:
                item = hash_file(index, pending, p, tick, stop, int(req.get("max_bytes_per_sec", 0)))
            except (OSError, Fail) as e:  # reported per file; the others go on
                item = {"path": p, "size": size, "cached": False, "bytes_read": 0, "error": str(e)}
                failed += 1
            task["bytes"], task["files_done"] = before + size, task["files_done"] + 1
            results.append(item)
            tick(0)
    except Stop as s:
        end = "paused" if str(s) == "pause" else "cancelled"
    task["state"], job["state"] = end, end
    if failed:
        task["error"] = "%d of %d files could not be hashed" % (failed, len(files))
    flush_index(root, pending)
    job["results"] = results
    tick(0, True)
    task["eta_secs"] = 0 if end == "done" else -1
    write_json(path, job)


def op_scan(req):
    scan_paths(req)  # a path outside the root is refused before anything starts
    saved = dict(req, kind="scan")
    write_json(os.path.join(jobs_dir(req["root"]), req["job"] + ".request.json"), saved, 0o600)
    return launch(saved)


LIBRARY_OPS["scan"] = op_scan
