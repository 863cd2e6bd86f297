# autopod_library.py: the model library's requests (embedded between autopod_fetch.py and
# autopod_jobs.py). Only header bytes leave the pod; parsing and recognition happen in autopod.
#   {"op": "headers", "root": R, "folder": F, "paths": [...], "cap": N, "texts": bool}
#       every model file under R (or F, or just `paths`): size, mtime, its first header bytes
#       (a safetensors header up to N bytes, else only its 8 length bytes; a GGUF file's first N),
#       its sidecars (model-sources.md section 5), its hash cache and autopod record; `texts` adds the
#       metadata sidecars' text.
#   {"op": "hash", "root": R, "paths": [...]}   sha256 of each model, cached in STEM.sha256
#   {"op": "meta", "root": R, "path": P, "set": {...}, "files": {SUFFIX: TEXT},
#    "preview": {"ext", "data", "only_if_none"}}   sidecars of P, each written atomically
#   {"op": "rm", "root": R, "paths": [...]}     a model and every sidecar sharing its stem
import base64

MODEL_EXTS = (".safetensors", ".sft", ".gguf", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".onnx")
IMAGE_EXTS = (".webp", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".mp4", ".webm", ".avif", ".jxl")
# What peer tools keep beside a model, after its stem (model-sources.md section 5); matched case-insensitively.
SIDECAR_SUFFIXES = tuple(".preview" + e for e in IMAGE_EXTS) + IMAGE_EXTS + (
    ".thumb.jpg", ".thumb.png", ".md", ".txt", ".json", ".metadata.json", ".civitai.info",
    ".cm-info.json", ".cminfo.json", ".sha256", ".url")
META_SUFFIXES = (".metadata.json", ".cm-info.json", ".cminfo.json", ".civitai.info", ".json", ".md")
TEXT_CAP = 256 << 10


def stem_of(name):
    return name.rsplit(".", 1)[0] if "." in name else name


def sidecars_of(name, names):
    stem = stem_of(name).lower()
    out = [n for n in names if n.lower().startswith(stem + ".") and n != name
           and n.lower()[len(stem):] in SIDECAR_SUFFIXES]
    if name + ".autopod.json" in names:
        out.append(name + ".autopod.json")
    return sorted(out)


def inside(root, path):
    """The real path of `path` (relative to root or absolute), refusing anything outside root."""
    p = path if os.path.isabs(path) else os.path.join(root, path)
    real, real_root = os.path.realpath(p), os.path.realpath(root)
    if not real.startswith(real_root + os.sep) or "/.autopod/" in real[len(real_root):] + "/":
        raise Fail("%s is outside the models root %s" % (path, root))
    return real


def model_files(root, folder):
    top = os.path.join(root, folder) if folder else root
    if folder:
        inside(root, folder)
    for d, dirs, names in os.walk(top):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        if d == root:
            continue
        for n in sorted(names):
            # Regular files only: opening a FIFO or a device named *.safetensors would block.
            if n.lower().endswith(MODEL_EXTS) and not n.startswith(".") and os.path.isfile(os.path.join(d, n)):
                yield d, n, names


def hash_cache(path, st):
    """The cached sha256, when STEM.sha256 carries the model's mtime (autopod sets it so)."""
    p = os.path.join(os.path.dirname(path), stem_of(os.path.basename(path)) + ".sha256")
    try:
        if os.stat(p).st_mtime_ns != st.st_mtime_ns:
            return None
        with open(p) as f:
            h = f.read(200).split()
        return h[0].lower() if h and re.fullmatch(r"[0-9a-fA-F]{64}", h[0]) else None
    except OSError:
        return None


def head_bytes(path, cap):
    with open(path, "rb") as f:
        if path.lower().endswith((".safetensors", ".sft")):
            first = f.read(8)
            n = int.from_bytes(first, "little") if len(first) == 8 else 0
            return first + (f.read(n) if 0 < n <= cap - 8 else b"")
        if path.lower().endswith(".gguf"):
            return f.read(cap)
    return b""


def describe(root, d, name, names, cap, texts):
    path = os.path.join(d, name)
    st = os.stat(path)
    rel = os.path.relpath(path, root)
    item = {"path": path, "relative": rel, "folder": rel.split(os.sep, 1)[0], "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "sidecars": sidecars_of(name, names),
            "sha256": hash_cache(path, st), "record": read_json(path + ".autopod.json")}
    try:
        item["head"] = base64.b64encode(head_bytes(path, cap)).decode()
    except OSError as e:
        item["error"] = str(e)
    if texts:
        item["texts"] = {}
        for s in item["sidecars"]:
            if s.lower().endswith(META_SUFFIXES):
                with open(os.path.join(d, s), "rb") as f:
                    item["texts"][s] = f.read(TEXT_CAP).decode("utf-8", "replace")
    return item


def op_headers(req):
    root, cap = req["root"], int(req.get("cap", 64 << 10))
    if not os.path.isdir(root):
        raise Fail("no models root %s on this machine" % root)
    files = []
    if req.get("paths"):
        for p in req["paths"]:
            real = inside(root, p)
            if not os.path.isfile(real):
                raise Fail("no model file %s under %s" % (p, root))
            d, name = os.path.split(real)
            files.append(describe(os.path.realpath(root), d, name, os.listdir(d), cap, req.get("texts")))
    else:
        for d, name, names in model_files(root, req.get("folder", "")):
            files.append(describe(root, d, name, names, cap, req.get("texts")))
    return {"files": files, "version": AUTOPOD_FETCH_VERSION}


def write_bytes_atomic(path, data, mtime_ns=None):
    tmp = "%s.%s.tmp" % (path, secrets.token_hex(4))
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if mtime_ns is not None:
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.replace(tmp, path)


def op_hash(req):
    root, out = req["root"], []
    targets = ([os.path.split(inside(root, p)) for p in req["paths"]] if req.get("paths")
               else [(d, n) for d, n, _ in model_files(root, "")])
    for d, name in targets:
        path = os.path.join(d, name)
        st = os.stat(path)
        cached = hash_cache(path, st)
        item = {"path": path, "size": st.st_size, "cached": cached is not None, "bytes_read": 0}
        if cached is None:
            h, buf = hashlib.sha256(), bytearray(1 << 20)
            view = memoryview(buf)
            with open(path, "rb", buffering=0) as f:
                for n in iter(lambda: f.readinto(buf), 0):  # one buffer: no allocation per block
                    h.update(view[:n])
                    item["bytes_read"] += n
            if os.stat(path).st_mtime_ns != st.st_mtime_ns:
                raise Fail("%s changed while it was hashed; scan again" % path)
            cached = h.hexdigest()
            # Plain hex, as pysssss reads it; the sidecar's own mtime keys it to the model's.
            write_bytes_atomic(os.path.join(d, stem_of(name) + ".sha256"), cached.encode(), st.st_mtime_ns)
        item["sha256"] = cached
        out.append(item)
    return {"files": out}


def op_meta(req):
    path = inside(req["root"], req["path"])
    if not os.path.isfile(path):
        raise Fail("no model file %s" % req["path"])
    d, name = os.path.split(path)
    written = []
    if req.get("set"):
        side = os.path.join(d, stem_of(name) + ".metadata.json")
        cur = read_json(side) if os.path.exists(side) else {}
        if not isinstance(cur, dict):
            raise Fail("%s is not a JSON object; not overwriting it" % side)
        cur.update(req["set"])
        write_bytes_atomic(side, (json.dumps(cur, indent=2) + "\n").encode())
        written.append(side)
    for suffix, text in (req.get("files") or {}).items():
        if suffix.lower() not in SIDECAR_SUFFIXES:
            raise Fail("%s is not a sidecar name" % suffix)
        side = os.path.join(d, stem_of(name) + suffix)
        write_bytes_atomic(side, text.encode())
        written.append(side)
    if req.get("preview"):
        ext = req["preview"]["ext"].lower()
        if ext not in IMAGE_EXTS:
            raise Fail("a preview must be one of %s" % " ".join(IMAGE_EXTS))
        has = any(s.lower().endswith(IMAGE_EXTS) for s in sidecars_of(name, os.listdir(d)))
        if not (req["preview"].get("only_if_none") and has):
            side = os.path.join(d, stem_of(name) + ".preview" + ext)
            write_bytes_atomic(side, base64.b64decode(req["preview"]["data"]))
            written.append(side)
    return {"written": written}


def op_rm(req):
    root, plan = req["root"], []
    for p in req["paths"]:  # every path is checked before anything is removed
        real = inside(root, p)
        if not os.path.isfile(real) or not real.lower().endswith(MODEL_EXTS):
            raise Fail("%s is not a model file under %s" % (p, root))
        d, name = os.path.split(real)
        plan.append([real] + [os.path.join(d, s) for s in sidecars_of(name, os.listdir(d))])
    removed = []
    for group in plan:
        for q in group:
            os.unlink(q)
            removed.append(q)
    return {"removed": removed}


LIBRARY_OPS = {"headers": op_headers, "hash": op_hash, "meta": op_meta, "rm": op_rm}
