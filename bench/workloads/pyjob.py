"""pyjob: a fixed job for a real program, run by the benchmark as
    PYTHONMALLOC=malloc PYTHONHASHSEED=0 /usr/bin/python3 pyjob.py [scale]
so every Python object goes through the preloaded malloc.  It builds and
serializes records, sorts, indexes, does string and bytes work, and
checks its own results; it prints "python ok <digest>" (the digest depends
only on the scale) or raises."""
import hashlib
import json
import sys


class Record:
    __slots__ = ("id", "name", "tags", "score", "children")

    def __init__(self, i):
        self.id = i
        self.name = "item-%07d-%s" % (i, "x" * (i % 23))
        self.tags = ["t%d" % (i % k) for k in (3, 5, 7, 11)]
        self.score = (i * 2654435761) % 1000003 / 7.0
        self.children = list(range(i % 17))

    def as_dict(self):
        return {"id": self.id, "name": self.name, "tags": self.tags,
                "score": self.score, "children": self.children}


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    n = max(200, int(12000 * scale))
    h = hashlib.sha256()
    for rnd in range(4):
        recs = [Record(i + rnd) for i in range(n)]
        # JSON round trip of everything
        text = json.dumps([r.as_dict() for r in recs])
        back = json.loads(text)
        assert len(back) == n and back[n // 2]["id"] == n // 2 + rnd
        assert back == [r.as_dict() for r in recs]
        h.update(hashlib.sha256(text.encode()).digest())
        # sort by a derived key, check order
        order = sorted(back, key=lambda d: (d["score"], d["id"]))
        assert all(order[i]["score"] <= order[i + 1]["score"]
                   for i in range(len(order) - 1))
        h.update(repr([d["id"] for d in order[:100]]).encode())
        # inverted index: tag -> ids
        index = {}
        for d in back:
            for t in d["tags"]:
                index.setdefault(t, []).append(d["id"])
        assert sum(len(v) for v in index.values()) == 4 * n
        h.update(repr(sorted((k, len(v)) for k, v in index.items())).encode())
        # string building and splitting
        lines = "\n".join("%s,%s,%d" % (d["name"], "|".join(d["tags"]),
                                        sum(d["children"])) for d in back)
        parts = [line.split(",") for line in lines.split("\n")]
        total = sum(int(p[2]) for p in parts)
        expect = sum(sum(range((i + rnd) % 17)) for i in range(n))
        assert total == expect, (total, expect)
        h.update(str(total).encode())
        # bytes growth and slicing
        buf = bytearray()
        for d in back[: n // 4]:
            buf += d["name"].encode() * 3
        assert len(buf) == 3 * sum(len(d["name"]) for d in back[: n // 4])
        h.update(hashlib.sha256(bytes(buf[::7])).digest())
        # dict churn: insert and delete many keys
        m = {}
        for i in range(n * 2):
            m["k%d" % i] = (i, str(i))
            if i % 3 == 0:
                del m["k%d" % (i // 2)]
        h.update(str(len(m)).encode())
        del recs, text, back, order, index, lines, parts, buf, m
    print("python ok %s" % h.hexdigest()[:16])


main()
