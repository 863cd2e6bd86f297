# autopod_jobs.py: the requests of the pod side (appended to autopod_fetch.py when embedded).
# A job runs detached (double fork + setsid), so closing the laptop's terminal or losing its link
# does not stop it; its progress is <root>/.autopod/jobs/ID.json, its control ID.control.


def jobs_dir(root):
    d = os.path.join(root, ".autopod", "jobs")
    os.makedirs(d, exist_ok=True)
    return d


def op_list(req):
    root = req["root"]
    records, files = [], []
    for folder in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        d = os.path.join(root, folder)
        if folder.startswith(".") or not os.path.isdir(d):
            continue
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
            elif not name.endswith((".part", ".autopod-part.json", ".tmp")):
                files.append(p)
    st = os.statvfs(root if os.path.isdir(root) else os.path.dirname(root.rstrip("/")) or "/")
    return {"records": records, "files": files, "free_bytes": st.f_bavail * st.f_frsize,
            "version": AUTOPOD_FETCH_VERSION}


def run_job(req, path, control_path):
    job = {"job": req["job"], "pid": os.getpid(), "host": socket.gethostname(), "state": "running",
           "started": int(time.time()), "tasks": []}
    for f in req["files"]:
        job["tasks"].append({"source": f["source"], "folder": f["folder"], "name": f["name"],
                             "state": "queued", "bytes": 0, "total": int(f.get("size", -1)),
                             "bytes_per_sec": 0, "eta_secs": -1, "connections": 0, "error": ""})
    lock = threading.Lock()
    write_json(path, job)

    def control():
        try:
            with open(control_path) as c:
                return c.read().strip() or None
        except OSError:
            return None

    def one(i, f):
        t = job["tasks"][i]
        if control() is not None:
            t["state"] = "paused" if control() == "pause" else "cancelled"
            return
        tr = Transfer(f, req["root"], int(req.get("connections", 8)), control)
        t["state"], t["connections"] = "running", tr.connections
        live[i] = tr
        try:
            tr.run()
            t["state"], t["bytes"], t["total"], t["eta_secs"] = "done", tr.size, tr.size, 0
        except Stop as s:
            t["state"] = "paused" if str(s) == "pause" else "cancelled"
        except Exception as e:  # a task's failure is reported, the others go on
            t["state"], t["error"] = "failed", str(e)
        live.pop(i, None)

    live, slots = {}, threading.Semaphore(int(req.get("parallel", 3)))

    def guarded(i, f):
        with slots:
            one(i, f)

    threads = [threading.Thread(target=guarded, args=(i, f)) for i, f in enumerate(req["files"])]
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads):
        time.sleep(0.5)
        for i, tr in list(live.items()):
            t = job["tasks"][i]
            dt = max(time.time() - tr.t0, 1e-3)
            t["bytes"], t["total"] = tr.bytes, tr.size
            t["bytes_per_sec"] = tr.fetched / dt
            t["state"] = "verifying" if getattr(tr, "verifying", False) else t["state"]
            left = tr.size - tr.bytes
            t["eta_secs"] = int(left / t["bytes_per_sec"]) if t["bytes_per_sec"] > 0 and tr.size > 0 else -1
        with lock:
            write_json(path, job)
    states = {t["state"] for t in job["tasks"]}
    job["state"] = "failed" if "failed" in states else "done" if states <= {"done"} else sorted(states)[0]
    write_json(path, job)


def op_start(req):
    root = req["root"]
    for f in req["files"]:
        safe_dir(root, f["folder"]), safe_name(f["name"])
    need = sum(max(int(f.get("size", 0)), 0) for f in req["files"])
    free = op_list({"root": root})["free_bytes"]
    if need > free:
        raise Fail("not enough space on the volume: %d bytes to arrive, %d free under %s" % (need, free, root))
    d = jobs_dir(root)
    path, control_path = os.path.join(d, req["job"] + ".json"), os.path.join(d, req["job"] + ".control")
    if req.get("detach", True):
        if os.fork() > 0:
            return {"event": "started", "job": req["job"], "state_file": path}
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            run_job(req, path, control_path)
        finally:
            os._exit(0)
    run_job(req, path, control_path)
    return read_json(path)


def op_status(req):
    d = jobs_dir(req["root"])
    names = [req["job"] + ".json"] if req.get("job") else sorted(n for n in os.listdir(d) if n.endswith(".json"))
    jobs = []
    for n in names:
        j = read_json(os.path.join(d, n))
        if j is None:
            continue
        if j.get("state") == "running" and not os.path.exists("/proc/%d" % int(j.get("pid", 0))):
            j["state"] = "failed"  # its worker died (pod restarted): the next sync resumes
            for t in j["tasks"]:
                if t["state"] in ("queued", "running", "verifying"):
                    t["state"], t["error"] = "failed", "the pod-side worker died; run the sync again"
        jobs.append(j)
    return {"jobs": jobs}


def op_control(req):
    with open(os.path.join(jobs_dir(req["root"]), req["job"] + ".control"), "w") as c:
        c.write(req["action"])
    return {"job": req["job"], "asked": req["action"]}


def op_prune(req):
    removed = []
    for p in req["paths"]:
        real = os.path.realpath(p)
        if os.path.dirname(os.path.dirname(real)) != os.path.realpath(req["root"]) or not os.path.exists(p + ".autopod.json"):
            raise Fail("%s was not placed by autopod; not removing it" % p)
        for q in (p, p + ".autopod.json"):
            if os.path.exists(q):
                os.unlink(q)
        removed.append(p)
    return {"removed": removed}


def main():
    req = json.loads(sys.stdin.readline())
    ops = {"list": op_list, "start": op_start, "status": op_status, "control": op_control, "prune": op_prune}
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
