//! Throughput of the replication codecs on a realistic L0 file: 256 pages of 4096 bytes
//! with SQLite-like leaf content (cell headers, text records, random hex, free space),
//! and the WAL scan that produces such a file.
//!
//! `cargo bench --bench ltx -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gleaner::replicate::ltx::{Decoder, Encoder, Header};
use gleaner::replicate::wal::{checksum, scan_slice, MAGIC_LE, VERSION};

const PAGE_SIZE: usize = 4096;
const PAGES: u32 = 256;

/// A table leaf page: 8-byte header, cell pointers, free space, then records packed at
/// the end, each a short text prefix and a hex payload. About half the page compresses.
fn leaf_page(n: u32) -> Vec<u8> {
    let mut p = vec![0u8; PAGE_SIZE];
    let mut x = n.wrapping_mul(0x9E37_79B9) | 1;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    p[0] = 0x0d;
    let mut end = PAGE_SIZE;
    let mut cells = 0u16;
    while end > 2200 {
        let len = 60 + (rnd() % 90) as usize;
        let start = end - len;
        let rec = &mut p[start..end];
        rec[..12].copy_from_slice(b"harvest rec ");
        for b in rec[12..].iter_mut() {
            *b = b"0123456789abcdef"[(rnd() & 15) as usize];
        }
        let at = 8 + 2 * cells as usize;
        p[at..at + 2].copy_from_slice(&(start as u16).to_be_bytes());
        cells += 1;
        end = start;
    }
    p[3..5].copy_from_slice(&cells.to_be_bytes());
    p[5..7].copy_from_slice(&(end as u16).to_be_bytes());
    p
}

fn l0_file(pages: &[Vec<u8>]) -> Vec<u8> {
    let h = Header::new(PAGE_SIZE as u32, PAGES, 2, 2, 1_764_000_000_000);
    let mut e = Encoder::new(Vec::with_capacity(PAGES as usize * PAGE_SIZE), h).unwrap();
    for (i, p) in pages.iter().enumerate() {
        e.write_page(i as u32 + 1, p).unwrap();
    }
    e.finish().unwrap().0
}

/// A WAL with one transaction per 16 frames over the same pages, as SQLite writes it.
fn wal(pages: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Vec::new();
    for v in [MAGIC_LE, VERSION, PAGE_SIZE as u32, 0, 0x1234, 0x5678] {
        w.extend_from_slice(&v.to_be_bytes());
    }
    let mut seed = checksum(false, (0, 0), &w);
    w.extend_from_slice(&seed.0.to_be_bytes());
    w.extend_from_slice(&seed.1.to_be_bytes());
    for (i, p) in pages.iter().enumerate() {
        let commit = if i % 16 == 15 { PAGES } else { 0 };
        let mut fh = Vec::with_capacity(24);
        for v in [i as u32 + 1, commit, 0x1234, 0x5678] {
            fh.extend_from_slice(&v.to_be_bytes());
        }
        seed = checksum(false, seed, &fh[..8]);
        seed = checksum(false, seed, p);
        fh.extend_from_slice(&seed.0.to_be_bytes());
        fh.extend_from_slice(&seed.1.to_be_bytes());
        w.extend_from_slice(&fh);
        w.extend_from_slice(p);
    }
    w
}

fn benches(c: &mut Criterion) {
    let pages: Vec<Vec<u8>> = (1..=PAGES).map(leaf_page).collect();
    let raw = (PAGES as usize * PAGE_SIZE) as u64;
    let file = l0_file(&pages);
    eprintln!(
        "L0 fixture: {} pages, {} bytes of pages, {} bytes encoded ({:.0}%)",
        PAGES,
        raw,
        file.len(),
        100.0 * file.len() as f64 / raw as f64
    );

    let mut g = c.benchmark_group("ltx");
    g.throughput(Throughput::Bytes(raw));
    g.bench_function("encode_l0_256x4k", |b| {
        b.iter(|| black_box(l0_file(black_box(&pages))))
    });
    g.bench_function("decode_l0_256x4k", |b| {
        let mut buf = vec![0u8; PAGE_SIZE];
        b.iter(|| {
            let mut d = Decoder::new(black_box(&file[..])).unwrap();
            while let Some(n) = d.read_page(&mut buf).unwrap() {
                black_box(n);
            }
            black_box(d.finish().unwrap())
        })
    });
    g.finish();

    let w = wal(&pages);
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Bytes(w.len() as u64));
    g.bench_function("scan_256x4k", |b| {
        b.iter(|| black_box(scan_slice(black_box(&w), 32, None).unwrap()))
    });
    g.finish();
}

criterion_group!(ltx, benches);
criterion_main!(ltx);
