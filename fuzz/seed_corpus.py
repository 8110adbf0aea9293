#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ from the repo's fixtures.

Every seed starts with the option byte the target reads first (see each target's header
comment). LTX files are built here byte by byte (literal-only LZ4 blocks and stored-block
legacy frames, CRC-64/GO-ISO checksums); WAL files come from Python's sqlite3 in WAL mode;
push seeds carry real HMAC-SHA256 signatures. The demo-site captures (demo_*) were fetched
once from `gleaner demo` and are committed as they are. Re-run after changing fixtures:
    python3 fuzz/seed_corpus.py
"""
import hashlib
import hmac
import os
import shutil
import sqlite3
import struct
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "harvest")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, opt, body):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes([opt]) + body)


def fixture(*parts):
    with open(os.path.join(FIX, *parts), "rb") as f:
        return f.read()


# --- LTX ---------------------------------------------------------------------------
def crc64_iso(data, crc=0):
    crc ^= 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xD800000000000000 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFFFFFFFFFF


assert crc64_iso(b"123456789") == 0xB90956C775A41001


class Crc:
    def __init__(self):
        self.buf = bytearray()

    def update(self, b):
        self.buf += b

    def flagged(self):
        return (1 << 63) | crc64_iso(bytes(self.buf))


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def lz4_literals(data):
    n = len(data)
    out = bytearray([min(n, 15) << 4])
    if n >= 15:
        rest = n - 15
        while rest >= 255:
            out.append(255)
            rest -= 255
        out.append(rest)
    return bytes(out + data)


def ltx(page_size, commit, min_txid, max_txid, pages, legacy=False):
    h = b"LTX1" + struct.pack(
        ">IIIQQqQqqIIQ", 2, page_size, commit, min_txid, max_txid,
        1_764_000_000_000 + max_txid, 0, 32, 0, 0, 0, 0) + bytes(20)
    assert len(h) == 100
    out = bytearray(h)
    crc = Crc()
    crc.update(h)
    index = bytearray()
    for pgno, data in pages:
        off = len(out)
        ph = struct.pack(">IH", pgno, 0 if legacy else 1)
        out += ph
        crc.update(ph)
        if legacy:
            frame = struct.pack("<I", 0x184D2204) + bytes([0x60, 0x40, 0])
            frame += struct.pack("<I", 0x80000000 | len(data)) + data + struct.pack("<I", 0)
            out += frame
        else:
            block = lz4_literals(data)
            sz = struct.pack(">I", len(block))
            out += sz + block
            crc.update(sz)
        crc.update(data)
        index += uvarint(pgno) + uvarint(off) + uvarint(len(out) - off)
    out += bytes(6)
    crc.update(bytes(6))
    index += uvarint(0)
    tail = bytes(index) + struct.pack(">Q", len(index)) + struct.pack(">Q", 0)
    out += tail
    crc.update(tail)
    out += struct.pack(">Q", crc.flagged())
    return bytes(out)


def page(ps, seed):
    p = bytearray(ps)
    p[0] = 0x0D
    for i in range(ps // 2, ps):
        p[i] = (seed * 31 + i * 7) % 251
    return bytes(p)


def ltx_seeds():
    put("ltx_decode", "snapshot-512", 0, ltx(512, 3, 1, 1, [(n, page(512, n)) for n in (1, 2, 3)]))
    put("ltx_decode", "l0-1024", 0, ltx(1024, 9, 5, 5, [(2, page(1024, 2)), (7, page(1024, 7))]))
    put("ltx_decode", "legacy-512", 0, ltx(512, 4, 2, 3, [(4, page(512, 4))], legacy=True))
    put("ltx_decode", "empty-l0", 0, ltx(4096, 1, 6, 6, []))
    # Round-trip mode: shape byte then page content.
    put("ltx_decode", "roundtrip-block", 0x03, bytes([0x1A]) + b"gleaner page " * 8)
    put("ltx_decode", "roundtrip-legacy", 0x95, bytes([0x08]) + bytes(range(256)))


# --- WAL ---------------------------------------------------------------------------
def wal_seeds():
    with tempfile.TemporaryDirectory() as d:
        for name, ps, rows in (("wal-512", 512, 3), ("wal-1024", 1024, 6)):
            db = os.path.join(d, name + ".db")
            c = sqlite3.connect(db, isolation_level=None)
            c.execute(f"PRAGMA page_size={ps}")
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA wal_autocheckpoint=0")
            c.execute("CREATE TABLE r (k TEXT PRIMARY KEY, v BLOB)")
            for i in range(rows):
                c.execute("INSERT INTO r VALUES (?, ?)", (f"key-{i}", bytes([i]) * 40))
            c.execute("BEGIN")
            c.execute("UPDATE r SET v = x'00' WHERE k = 'key-0'")  # left open: uncommitted
            with open(db + "-wal", "rb") as f:
                wal = f.read()
            c.execute("ROLLBACK")
            c.close()
            put("wal", name, 0, wal)
            put("wal", name + "-repair", 1 | (4 if ps == 1024 else 0) | 0x18, wal)


# --- the rest ----------------------------------------------------------------------
def text_seeds():
    reg = os.path.join("registry")
    put("html", "list_p1", 0x01, fixture(reg, "list_p1.html"))
    put("html", "list_p2", 0x05, fixture(reg, "list_p2.html"))
    put("html", "detail", 0x09, fixture(reg, "detail_100234.html"))
    put("html", "product", 0x0D, b'<html><body><main class="product"><h1>Lamp</h1>'
        b'<span class="price">12.50</span></main></body></html>')
    put("json", "permits_p1", 0x01, fixture("api", "permits_p1.json"))
    put("json", "permits_p2", 0x20, fixture("api", "permits_p2.json"))
    put("json", "next_link", 0x09, b'{"data": [{"meta": {"id": 7}, "name": "x"}], '
        b'"links": {"next": "/v1/items?limit=50&page=2"}}')
    put("json", "link_header", 0x15, b'<https://api.example/v1/items?page=2>; rel="next"\n'
        b'{"data": [{"meta": {"id": 1}, "name": "a"}]}')
    put("json", "offset", 0x19, b'{"data": [{"meta": {"id": 1}, "name": "a"}, {"meta": {"id": 2}, "name": "b"}]}')
    put("json", "items_array", 0x09, fixture("api", "items_link_p1.json"))
    put("sitemap", "index", 0x01, fixture("sitemap", "sitemap_index.xml"))
    put("sitemap", "products_gz", 0x00, fixture("sitemap", "products-1.xml.gz"))
    put("feed", "news_rss", 0x01, fixture("feed", "news.rss"))
    put("feed", "blog_atom", 0x04, fixture("feed", "blog.atom"))
    put("feed", "json_feed", 0x00, b'{"version": "https://jsonfeed.org/version/1.1", "title": "t", '
        b'"items": [{"id": "1", "url": "https://city.example/a", "content_text": "x"}]}')
    put("csv", "companies", 0x00, fixture("csv", "companies.csv"))
    put("csv", "plain", 0x05, b"export of 2024-03-01\nid,name,n,when\n1,Acme,3,2024-03-01T10:00:00Z\n"
        b'2,"B, Inc",x,\n3,,4,2024-13-01\n')
    for name, opt in (("registry.toml", 1), ("api.json", 0), ("news.toml", 1),
                      ("companies-csv.toml", 1), ("sitemap.toml", 1), ("push.toml", 1)):
        put("source_def", name.replace(".", "_"), opt, fixture("sources", name))
    secret = b"whsec_0123456789abcdef"
    body = b'[{"sku": "A-1", "qty": 2}]'
    ts = b"1709279990"
    sig = b"sha256=" + hmac.new(secret, ts + b"." + body, hashlib.sha256).hexdigest().encode()
    put("push_signature", "valid", 0x00, ts + b"\n" + sig + b"\n" + body)
    put("push_signature", "rotation", 0x01, ts + b"\nsha256=" + b"00" * 32 + b", " + sig + b"\n" + body)
    put("push_signature", "stale", 0x00, b"1709000000\n" + sig + b"\n" + body)


if __name__ == "__main__":
    for t in ("ltx_decode", "wal"):
        shutil.rmtree(os.path.join(OUT, t), ignore_errors=True)
    ltx_seeds()
    wal_seeds()
    text_seeds()
