# autopod_library.py: the model library's requests (embedded between autopod_fetch.py and
# autopod_jobs.py). Only header bytes leave the pod; parsing and recognition happen in autopod.
#   {"op": "headers", "root": R, "folder": F, "paths": [...], "cap": N, "texts": bool}
#       every model file under R and the folders extra_model_paths.yaml names (or folder F, or
#       just `paths`), labelled with its folder key: size, mtime, its first header bytes
#       (a safetensors header up to N bytes, else only its 8 length bytes; a GGUF file's first N),
#       its sidecars (model-sources.md section 5), its hash cache and autopod record; `texts` adds the
#       metadata sidecars' text.
#   {"op": "hash", "root": R, "paths": [...]}   sha256 of each model, cached (autopod_scan.py)
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


def places(root):
    """[(folder key or "", dir)]: the models root, then each directory extra_model_paths.yaml names
    for a folder (autopod_paths.py) that is not already under the root."""
    real_root, out = os.path.realpath(root), [("", root)]
    for key, dirs in sorted(extra_dirs(root).items()):
        for d in dirs:
            r = os.path.realpath(d)
            if r != real_root and not r.startswith(real_root + os.sep) and os.path.isdir(d):
                out.append((key, d))
    return out


def locate(root, real, where=None):
    """(folder, relative, extra dir) of a model's real path: under the root its first directory,
    in a directory extra_model_paths.yaml names that folder key ("" extra dir: under the root)."""
    for key, d in where or places(root):
        base = os.path.realpath(d)
        if real.startswith(base + os.sep):
            rel = os.path.relpath(real, base)
            if not key:
                return rel.split(os.sep, 1)[0], rel, ""
            return key, os.path.join(key, rel), d
    raise Fail("%s is outside the models root %s and the folders extra_model_paths.yaml names" % (real, root))


def inside(root, path, where=None):
    """The real path of `path` (relative to root, or to a folder's extra_model_paths.yaml directory
    as FOLDER/NAME, or absolute), refusing anything outside those and autopod's own files.
    `where`: places(root), when the caller has it already."""
    p = path if os.path.isabs(path) else os.path.join(root, path)
    real, where = os.path.realpath(p), where if where is not None else places(root)
    if not os.path.isabs(path) and not os.path.exists(real) and "/" in path:
        key, rest = path.split("/", 1)
        for k, d in where:
            if k == key and os.path.exists(os.path.join(d, rest)):
                real = os.path.realpath(os.path.join(d, rest))
                break
    try:
        rel = locate(root, real, where)[1]
    except Fail:
        raise Fail("%s is outside the models root %s" % (path, root))
    if ".autopod" in rel.split(os.sep):
        raise Fail("%s is outside the models root %s" % (path, root))
    return real


def model_files(root, folder):
    """(dir, name, names in dir, folder key, extra dir) of every model file under the root (or its
    `folder`) and the directories extra_model_paths.yaml names."""
    if folder and os.path.exists(os.path.join(root, folder)):
        inside(root, folder)
    elif folder:
        safe_name(folder)  # a folder only extra_model_paths.yaml names
    for key, base in places(root):
        if key and folder and key != folder:
            continue
        top = os.path.join(base, folder) if folder and not key else base
        for d, dirs, names in os.walk(top):
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            if d == root:
                continue
            for n in sorted(names):
                # Regular files only: opening a FIFO or a device named *.safetensors would block.
                if n.lower().endswith(MODEL_EXTS) and not n.startswith(".") and os.path.isfile(os.path.join(d, n)):
                    yield d, n, names, key, base


def head_bytes(path, cap):
    with open(path, "rb") as f:
        if path.lower().endswith((".safetensors", ".sft")):
            first = f.read(8)
            n = int.from_bytes(first, "little") if len(first) == 8 else 0
            return first + (f.read(n) if 0 < n <= cap - 8 else b"")
        if path.lower().endswith(".gguf"):
            return f.read(cap)
    return b""


def describe(root, d, name, names, cap, texts, index, where):
    path = os.path.join(d, name)
    st = os.stat(path)
    folder, rel, extra = locate(root, os.path.join(os.path.realpath(d), name), where)
    item = {"path": path, "relative": rel, "folder": folder, "extra_dir": extra, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "sidecars": sidecars_of(name, names),
            "sha256": cached_hash(index, path, st, names), "record": read_json(path + ".autopod.json")}
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
    files, index, where = [], load_index(root), places(root)
    if req.get("paths"):
        for p in req["paths"]:
            real = inside(root, p)
            if not os.path.isfile(real):
                raise Fail("no model file %s under %s" % (p, root))
            d, name = os.path.split(real)
            files.append(describe(root, d, name, os.listdir(d), cap, req.get("texts"), index, where))
    else:
        for d, name, names, _, _ in model_files(root, req.get("folder", "")):
            files.append(describe(root, d, name, names, cap, req.get("texts"), index, where))
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
    root, index, pending = req["root"], load_index(req["root"]), {}
    files = [hash_file(index, pending, p, lambda n: None) for p in scan_paths(req)]
    flush_index(root, pending)
    return {"files": files}


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
