# autopod_hash.py: a file's sha256 while it downloads (appended to autopod_base.py when embedded,
# before autopod_fetch.py). Ranges land out of order on several connections; one thread hashes
# the contiguous prefix from offset 0 as it grows, reading it back with pread from the page cache
# (the bytes were just written), so the sha256 is ready a moment after the last byte lands instead
# of after a second pass over the whole file. hashlib and pread release the GIL on large blocks.
# A restart from zero (a 200 to a Range, a server without ranges) starts the hash over; a resumed
# file's finished ranges are reported first and hashed from disk while the rest downloads.

HASH_BLOCK = 4 << 20


class PrefixHasher:
    """Hashes fd's bytes in order while they land. The writers report each range's landed end with
    landed(i, end) (an absolute offset; range i starts at i * span; span 0: one stream from zero);
    finish(size), called once the writers are done, is the sha256 hex digest of bytes [0, size)."""

    def __init__(self, fd, span):
        self.fd, self.span, self.cond = fd, span, threading.Condition()
        self.ends, self.gen, self.total, self.stopped = {}, 0, None, False
        self.digest, self.error = None, None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def landed(self, i, end):
        with self.cond:
            self.ends[i] = end
            self.cond.notify()

    def restart(self, span):
        """The file starts over from zero (call it before truncating): what was hashed is dropped."""
        with self.cond:
            self.gen, self.ends, self.span = self.gen + 1, {}, span
            self.cond.notify()

    def finish(self, size):
        with self.cond:
            self.total = size
            self.cond.notify()
        self.thread.join()
        if self.digest is None:
            raise Fail("hashing the partial file failed: %s" % (self.error or "stopped"))
        return self.digest

    def stop(self):
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join()

    def prefix(self, pos):
        """The end of the landed bytes contiguous from pos (which is at a landed boundary)."""
        while True:
            i = pos // self.span if self.span else 0
            end = self.ends.get(i, 0)
            if end <= pos:
                return pos
            pos = end
            if not self.span or end < (i + 1) * self.span:
                return pos

    def next_block(self, h, pos, gen):
        """Waits for bytes past pos; (h, pos, gen, end) to hash [pos, end), or None when done."""
        with self.cond:
            while not self.stopped:
                if gen != self.gen:
                    h, pos, gen = hashlib.sha256(), 0, self.gen
                end = self.prefix(pos)
                if end > pos:
                    return h, pos, gen, min(end, pos + HASH_BLOCK)
                if self.total is not None:  # the writers are done: nothing more will land
                    if pos == self.total:
                        self.digest = h.hexdigest()
                    else:
                        self.error = "%d bytes landed, %d expected" % (pos, self.total)
                    return None
                self.cond.wait()
            return None

    def run(self):
        h, pos, gen = hashlib.sha256(), 0, self.gen
        try:
            while True:
                step = self.next_block(h, pos, gen)
                if step is None:
                    return
                h, pos, gen, end = step
                block = os.pread(self.fd, end - pos, pos)
                with self.cond:
                    if gen != self.gen:
                        continue  # truncated meanwhile: next_block starts over
                if len(block) != end - pos:
                    raise OSError("the partial file is shorter than what landed (%d at %d)" % (len(block), pos))
                h.update(block)
                pos += len(block)
        except OSError as e:
            with self.cond:
                self.error = str(e)
