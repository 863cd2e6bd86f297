# autopod_paths.py: where files go on the pod, and the pod-wide download slots (appended to
# autopod_fetch.py when embedded).
#
# Folders: <root>/<folder>, unless ComfyUI's extra_model_paths.yaml (next to main.py, i.e. beside
# the models root: comfyui-api.md section 5.1) names the folder; then the yaml wins, because a user writes
# it to keep models elsewhere (a shared volume). Among its sections ComfyUI's own order decides:
# `is_default: true` sections first (the last dir listed first), then the others in file order.
#
# Slots: at most `parallel` files download at once per models root, across every job on the pod;
# a waiting file with a higher priority goes first, then the one that waited longest.

import fcntl

LEGACY = {"clip": "text_encoders", "unet": "diffusion_models"}


def _scalar(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return re.sub(r"\s+#.*$", "", v)


def parse_extra_paths(text):
    """The subset of YAML extra_model_paths.yaml uses: sections of `key: value` and `key: |`
    blocks (one path per line). {section: {key: [values]}}."""
    sections, section, block, block_indent = {}, None, None, 0
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip())
        if block is not None and indent > block_indent:
            block.append(raw.strip())
            continue
        block = None
        m = re.match(r"^(\s*)([^:#]+?):\s*(.*)$", raw)
        if not m:
            continue
        key, value = m.group(2).strip(), m.group(3)
        if indent == 0:
            section = sections.setdefault(key, {})
            continue
        if section is None:
            continue
        if value.strip() in ("|", "|-", "|+", ">"):
            block, block_indent = section.setdefault(key, []), indent
        elif value.strip():
            section.setdefault(key, []).append(_scalar(value))
    return sections


def extra_dirs(root):
    """{folder key: [dirs]} that extra_model_paths.yaml beside the models root names."""
    yaml_path = os.path.join(os.path.dirname(os.path.abspath(root)), "extra_model_paths.yaml")
    try:
        with open(yaml_path) as f:
            sections = parse_extra_paths(f.read())
    except OSError:
        return {}
    first, rest = {}, {}
    for name, keys in sections.items():
        is_default = (keys.get("is_default") or ["false"])[0].lower() == "true"
        base = (keys.get("base_path") or [""])[0]
        base = os.path.expandvars(os.path.expanduser(base)) if base else ""
        if base and not os.path.isabs(base):
            base = os.path.join(os.path.dirname(yaml_path), base)
        for key, values in keys.items():
            if key in ("base_path", "is_default"):
                continue
            dirs = []
            for v in values:
                v = os.path.expandvars(os.path.expanduser(v))
                dirs.append(os.path.normpath(os.path.join(base or os.path.dirname(yaml_path), v)))
            folder = LEGACY.get(key, key)
            if is_default:
                first[folder] = list(reversed(dirs)) + first.get(folder, [])
            else:
                rest.setdefault(folder, []).extend(dirs)
    return {k: first.get(k, []) + rest.get(k, []) for k in set(first) | set(rest)}


def folder_dirs(root):
    """{folder key: the directory its files go to}, for the folders the yaml names."""
    return {k: v[0] for k, v in extra_dirs(root).items() if v}


def safe_dir(root, folder, dirs=None):
    """The folder's directory (created), refusing anything that leaves the models root (.., a
    symlink pointing outside) unless extra_model_paths.yaml put it there."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", folder) or folder in (".", ".."):
        raise Fail("folder %r escapes the models root" % folder)
    dirs = folder_dirs(root) if dirs is None else dirs
    if folder in dirs:
        os.makedirs(dirs[folder], exist_ok=True)
        return dirs[folder]
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


class Slot:
    """One file's turn to download, shared by every job under the root (files in
    <root>/.autopod/slots, decided under a lock there)."""

    def __init__(self, root, key, priority, limit, control):
        self.dir = os.path.join(root, ".autopod", "slots")
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, key + ".json")
        self.name, self.control = key + ".json", control
        self.entry = {"owner": me(), "priority": int(priority), "t": time.time(), "running": False}
        self.limit = max(1, int(limit))

    def _entries(self):
        out = []
        for n in os.listdir(self.dir):
            if not n.endswith(".json"):
                continue
            e = read_json(os.path.join(self.dir, n))
            if e is None:
                continue
            if not owner_alive(e.get("owner")):
                Transfer.remove(os.path.join(self.dir, n))  # its job died
                continue
            out.append((n, e))
        return out

    def acquire(self):
        write_json(self.path, self.entry)
        while True:
            with open(os.path.join(self.dir, ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                entries = self._entries()
                free = self.limit - sum(1 for _, e in entries if e.get("running"))
                waiting = sorted((-int(e.get("priority", 0)), float(e.get("t", 0)), n)
                                 for n, e in entries if not e.get("running"))
                if free > 0 and self.name in [w[2] for w in waiting[:free]]:
                    self.entry["running"] = True
                    write_json(self.path, self.entry)
                    return
            if self.control() is not None:
                self.release()
                raise Stop(self.control())
            time.sleep(0.1)

    def release(self):
        Transfer.remove(self.path)
