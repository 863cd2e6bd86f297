# autopod_jobs.py: the requests of the pod side (appended to autopod_fetch.py when embedded), one
# JSON line on stdin after the program:
#   {"op": "list", "root": R}                    records, model files, free bytes, folder dirs
#   {"op": "start", "root": R, "job": ID, "files": [...], "connections": N, "parallel": P,
#    "stall_secs": S, "tokens": {"hf": ..., "civitai": ...}}   a detached download job
#   {"op": "status", "root": R, "job": ID, "wait_secs": W}   the job's state file ("" job: all
#                                                jobs; a scan's per-file "results" only with
#                                                "results": true); with W, answered once the job
#                                                is no longer running or after W seconds
#   {"op": "control", "root": R, "job": ID, "action": "pause"|"cancel"}
#   {"op": "resume", "root": R, "job": ID, "tokens": {...}}    a paused or failed job again
#   {"op": "prune", "root": R, "paths": [...]}   removes files that carry an autopod record
#   {"op": "scan", ...}                          a detached hashing job (autopod_scan.py)
# A job runs detached (double fork + setsid), so closing the laptop's terminal or losing its link
# does not stop it; its progress is <root>/.autopod/jobs/ID.json, its control ID.control, and its
# request (without tokens) ID.request.json for a resume. Tokens are kept in memory only.


def jobs_dir(root):
    d = os.path.join(root, ".autopod", "jobs")
    os.makedirs(d, exist_ok=True)
    return d


def model_dirs(root):
    dirs = [os.path.join(root, f) for f in sorted(os.listdir(root)) if not f.startswith(".")] \
        if os.path.isdir(root) else []
    return [d for d in dirs if os.path.isdir(d)] + [d for d in folder_dirs(root).values()
                                                    if os.path.isdir(d) and d not in dirs]


def free_bytes(root):
    """Free bytes on the filesystem the root is (or will be) on: its nearest existing ancestor."""
    d = os.path.abspath(root)
    while not os.path.isdir(d) and d != os.path.dirname(d):
        d = os.path.dirname(d)
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


def op_list(req):
    root = req["root"]
    records, files = [], []
    for d in model_dirs(root):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if name.endswith(".autopod.json"):
                model = p[: -len(".autopod.json")]
                rec = read_json(p)
                if rec is None:
                    continue
                try:
                    st = os.stat(model)
                    rec.update({"path": model, "now_size": st.st_size, "now_mtime_ns": st.st_mtime_ns})
                except OSError:
                    rec.update({"path": model, "now_size": -1, "now_mtime_ns": 0})
                records.append(rec)
            elif not name.endswith((".part", ".autopod-part.json", ".tmp")) and os.path.isfile(p):
                files.append(p)
    return {"records": records, "files": files, "free_bytes": free_bytes(root),
            "folder_dirs": folder_dirs(root), "version": AUTOPOD_FETCH_VERSION}


def job_alive(job):
    return job is not None and job.get("state") == "running" and owner_alive(
        {"host": job.get("host"), "pid": job.get("pid"), "start_ticks": job.get("start_ticks"),
         "heartbeat": job.get("heartbeat", 0)})


def overall(states):
    for s in ("failed", "cancelled", "paused", "running", "verifying", "queued"):
        if s in states:
            return s
    return "done"


def run_job(req, path, control_path):
    if req.get("kind") == "scan":
        return run_scan(req, path, control_path)  # autopod_scan.py
    o = me()
    job = {"job": req["job"], "pid": o["pid"], "start_ticks": o["start_ticks"], "host": o["host"],
           "heartbeat": o["heartbeat"], "state": "running", "started": int(time.time()), "tasks": []}
    for f in req["files"]:
        job["tasks"].append({"source": f["source"], "folder": f["folder"], "name": f["name"],
                             "state": "queued", "bytes": 0, "total": int(f.get("size", -1)),
                             "bytes_per_sec": 0, "eta_secs": -1, "connections": 0, "error": ""})
    write_json(path, job)
    dirs = folder_dirs(req["root"])

    def control():
        try:
            with open(control_path) as c:
                return c.read().strip() or None
        except OSError:
            return None

    lock = threading.Lock()  # a task's end is never overwritten by the progress loop
    ended, count = threading.Event(), [0]  # the last task's end is written at once, not at a tick

    def one(i, f):
        t = job["tasks"][i]
        slot = None
        try:
            slot = Slot(req["root"], "%s.%d" % (req["job"], i), f.get("priority", req.get("priority", 0)),
                        req.get("parallel", 3), control)
            slot.acquire()
            tr = Transfer(f, safe_dir(req["root"], f["folder"], dirs), req, control)
            with lock:
                t["state"], t["connections"] = "running", tr.connections
                live[i] = tr
            tr.run()
            end = {"state": "done", "bytes": tr.size, "total": tr.size, "eta_secs": 0}
        except Stop as s:
            end = {"state": "paused" if str(s) == "pause" else "cancelled"}
        except Exception as e:  # a task's failure is reported, the others go on
            end = {"state": "failed", "error": str(e)}
        if slot:
            slot.release()
        with lock:
            live.pop(i, None)
            t.update(end)
            count[0] += 1
        ended.set()

    live = {}
    threads = [threading.Thread(target=one, args=(i, f)) for i, f in enumerate(req["files"])]
    for th in threads:
        th.start()
    while True:
        ended.wait(0.2)
        ended.clear()
        job["heartbeat"] = int(time.time())
        with lock:
            if count[0] == len(threads):
                break
            progress(job, live)
            write_json(path, job)
    for th in threads:
        th.join()
    job["state"] = overall({t["state"] for t in job["tasks"]})
    write_json(path, job)


def progress(job, live):
    """Copies the running transfers' bytes, speed and ETA into their tasks."""
    for i, tr in live.items():
        t = job["tasks"][i]
        dt = max(time.time() - tr.t0, 1e-3)
        t["bytes"], t["total"] = tr.bytes, tr.size
        t["bytes_per_sec"] = tr.fetched / dt
        t["state"] = "verifying" if tr.verifying else t["state"]
        left = tr.size - tr.bytes
        t["eta_secs"] = int(left / t["bytes_per_sec"]) if t["bytes_per_sec"] > 0 and tr.size > 0 else -1
        if tr.partial:
            tr.save(every=5)  # the heartbeat an owner on another host is judged by


def detach(run):
    """Runs run() in a grandchild in its own session; the caller returns at once."""
    if os.fork() > 0:
        return
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        run()
    finally:
        os._exit(0)


def launch(req):
    d = jobs_dir(req["root"])
    path, control_path = os.path.join(d, req["job"] + ".json"), os.path.join(d, req["job"] + ".control")
    Transfer.remove(control_path)
    if not req.get("detach", True):
        run_job(req, path, control_path)
        return read_json(path)
    detach(lambda: run_job(req, path, control_path))
    return {"event": "started", "job": req["job"], "state_file": path}


def op_start(req):
    root = req["root"]
    dirs = folder_dirs(root)
    for f in req["files"]:
        safe_dir(root, f["folder"], dirs), safe_name(f["name"])
    need = sum(max(int(f.get("size", 0)), 0) for f in req["files"])
    free = free_bytes(root)
    if need > free:
        raise Fail("not enough space on the volume: %d bytes to arrive, %d free under %s" % (need, free, root))
    saved = {k: v for k, v in req.items() if k != "tokens"}
    write_json(os.path.join(jobs_dir(root), req["job"] + ".request.json"), saved, 0o600)
    return launch(req)


def op_resume(req):
    d = jobs_dir(req["root"])
    saved = read_json(os.path.join(d, req["job"] + ".request.json"))
    job = read_json(os.path.join(d, req["job"] + ".json"))
    if saved is None:
        raise Fail("no job %s under %s to resume" % (req["job"], req["root"]))
    if job_alive(job):
        raise Fail("job %s is still running" % req["job"])
    saved["tokens"] = req.get("tokens", {})
    saved["detach"] = req.get("detach", True)
    return launch(saved)


def op_status(req):
    d = jobs_dir(req["root"])
    until = time.time() + float(req.get("wait_secs", 0))
    while req.get("job") and time.time() < until:
        j = read_json(os.path.join(d, req["job"] + ".json"))
        if j is not None and not job_alive(j):  # none yet: the detached job is starting
            break
        time.sleep(0.05)  # a local file: cheap, where another look over ssh costs a connection
    names = [req["job"] + ".json"] if req.get("job") else sorted(
        n for n in os.listdir(d) if n.endswith(".json") and not n.endswith(".request.json"))
    jobs = []
    for n in names:
        j = read_json(os.path.join(d, n))
        if j is None:
            continue
        if not req.get("results"):
            j.pop("results", None)  # a scan's per-file results: asked for once, at its end
        if j.get("state") == "running" and not job_alive(j):
            j["state"] = "failed"  # its worker died (pod restarted): a resume or a sync continues
            for t in j["tasks"]:
                if t["state"] in ("queued", "running", "verifying"):
                    t["state"], t["error"] = "failed", "the pod-side worker died; resume it or sync again"
        jobs.append(j)
    return {"jobs": jobs}


def op_control(req):
    d = jobs_dir(req["root"])
    path = os.path.join(d, req["job"] + ".json")
    with open(os.path.join(d, req["job"] + ".control"), "w") as c:
        c.write(req["action"])
    job = read_json(path)
    if job is None or job_alive(job) or req["action"] != "cancel":
        return {"job": req["job"], "asked": req["action"]}
    # Not running (paused, failed): cancelling removes what its files left behind here.
    saved = read_json(os.path.join(d, req["job"] + ".request.json")) or {}
    dirs = folder_dirs(req["root"])
    for f in saved.get("files", []):  # a scan job has none and leaves nothing behind
        tr = Transfer(f, safe_dir(req["root"], f["folder"], dirs), {}, lambda: None)
        prev = read_json(tr.state_path)
        if prev and prev.get("source") == f["source"] and not owner_alive(prev.get("owner")):
            tr.partial = os.path.join(tr.dir, os.path.basename(prev.get("partial", "")))
            tr.discard()
    for t in job["tasks"]:
        if t["state"] != "done":
            t["state"] = "cancelled"
    job["state"] = overall({t["state"] for t in job["tasks"]})
    write_json(path, job)
    return {"job": req["job"], "asked": req["action"], "state": job["state"]}


def op_prune(req):
    removed = []
    root = os.path.realpath(req["root"])
    allowed = {os.path.realpath(x) for x in folder_dirs(req["root"]).values()}
    for p in req["paths"]:
        parent = os.path.dirname(os.path.realpath(p))
        if (os.path.dirname(parent) != root and parent not in allowed) or not os.path.exists(p + ".autopod.json"):
            raise Fail("%s was not placed by autopod; not removing it" % p)
        for q in (p, p + ".autopod.json"):
            if os.path.exists(q):
                os.unlink(q)
        removed.append(p)
    return {"removed": removed}


def main():
    req = json.loads(sys.stdin.readline())
    ops = {"list": op_list, "start": op_start, "status": op_status, "control": op_control,
           "resume": op_resume, "prune": op_prune}
    ops.update(LIBRARY_OPS)  # autopod_library.py
    try:
        out = ops[req["op"]](req)
    except (Fail, OSError, KeyError) as e:
        print(json.dumps({"error": str(e)}))
        sys.stdout.flush()
        sys.exit(3)
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
