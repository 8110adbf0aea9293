"""Scrapy side of scripts/bench-harvest.sh: the same pages, the same fields, into SQLite
with batched commits (one transaction per 500 items), like Gleaner's records table."""

import json
import os
import sqlite3

import scrapy


class RegistrySpider(scrapy.Spider):
    name = "registry"
    start_urls = [os.environ.get("BENCH_START_URL", "http://127.0.0.1:18089/registry/list/1.html")]

    def parse(self, response):
        for row in response.css("tr.result"):
            item = {
                "code": row.css("td.code a::text").get(),
                "title": row.css("td.title::text").get(),
                "status": row.css("td.status::text").get(),
                "released": row.css("td.released::text").get(),
            }
            href = row.css("td.code a::attr(href)").get()
            if href:
                yield response.follow(href, self.parse_detail, cb_kwargs={"item": item})
        nxt = response.css("a.next::attr(href)").get()
        if nxt:
            yield response.follow(nxt, self.parse)

    def parse_detail(self, response, item):
        item["sector"] = response.css("#sector::text").get()
        item["fee"] = response.css("#fee::text").get()
        item["description"] = " ".join(
            t.strip() for t in response.css("#description ::text").getall() if t.strip()
        )
        yield item


class SqlitePipeline:
    BATCH = 500

    def open_spider(self, spider=None):
        self.db = sqlite3.connect(os.environ["BENCH_SQLITE"])
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, fields TEXT NOT NULL)"
        )
        self.buf = []

    def flush(self):
        if self.buf:
            self.db.executemany(
                "INSERT OR REPLACE INTO records (key, fields) VALUES (?, ?)", self.buf
            )
            self.db.commit()
            self.buf = []

    def process_item(self, item, spider=None):
        self.buf.append((item["code"], json.dumps(item, sort_keys=True)))
        if len(self.buf) >= self.BATCH:
            self.flush()
        return item

    def close_spider(self, spider=None):
        self.flush()
        self.db.close()
