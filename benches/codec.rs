//! The record codec on realistic small records (~300-byte JSON, the registry's shape):
//! records per second to encode (canonical JSON, blake3, zstd) and to decode, and bytes
//! per stored record, without and with a zstd dictionary trained on 2,000 of the source's
//! records. Bytes per record are printed once before the timings.
//!
//! Then `codec_small`: records of `gleaner bench-seed`'s shape (~95 bytes, the API
//! benchmark's data), which zstd shrinks by less than an eighth, so the codec keeps them in
//! stored frames. Their decode is timed beside the same records in zstd's own frames, with
//! Huffman-coded literals and with raw literals (what the codec wrote for them before), in
//! one run.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gleaner::store::{
    canonical_json, decode_payload, decode_payload_with, encode_canonical_payload,
    encode_payload_with, train_dictionary,
};

const N: usize = 2_000;

fn record(i: usize) -> serde_json::Value {
    const VERBS: [&str; 6] = [
        "Operate",
        "Maintain",
        "Inspect",
        "Install",
        "Assess",
        "Coordinate",
    ];
    const OBJECTS: [&str; 5] = [
        "lifting equipment",
        "cutting tools",
        "welding stations",
        "conveyor systems",
        "hydraulic presses",
    ];
    const SECTORS: [&str; 4] = [
        "Manufacturing",
        "Construction",
        "Agriculture",
        "Transport and Logistics",
    ];
    let h = (i as u32).wrapping_mul(2_654_435_761) as usize;
    serde_json::json!({
        "code": format!("ICT{:05}", i),
        "title": format!("{} {}", VERBS[h % 6], OBJECTS[(h >> 8) % 5]),
        "status": if i.is_multiple_of(5) { "Superseded" } else { "Current" },
        "released": format!("20{:02}-{:02}-{:02}", 10 + i % 15, 1 + i % 12, 1 + i % 28),
        "sector": SECTORS[(h >> 16) % 4],
        "fee_eur": 100 + (h >> 20) % 900,
        "description": format!("Describes the skills and knowledge required to {} in a workplace's day-to-day operations. Entry {i} of the national register.", OBJECTS[(h >> 8) % 5]),
    })
}

fn bench(c: &mut Criterion) {
    let train: Vec<Vec<u8>> = (0..N).map(|i| canonical_json(&record(i))).collect();
    let dict = train_dictionary(&train).expect("training");
    let test: Vec<Vec<u8>> = (N..2 * N).map(|i| canonical_json(&record(i))).collect();
    let plain: Vec<Vec<u8>> = test
        .iter()
        .map(|r| encode_canonical_payload(r).unwrap().compressed)
        .collect();
    let with: Vec<Vec<u8>> = test
        .iter()
        .map(|r| encode_payload_with(r, &dict).unwrap().compressed)
        .collect();
    let avg = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / v.len() as f64;
    println!(
        "bytes per record: json {:.0}, zstd {:.0}, zstd+dictionary {:.0} (dictionary {} bytes)",
        avg(&test),
        avg(&plain),
        avg(&with),
        dict.bytes.len()
    );

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(test.len() as u64));
    g.bench_function("encode/plain", |b| {
        b.iter(|| {
            test.iter()
                .map(|r| encode_canonical_payload(r).unwrap().compressed.len())
                .sum::<usize>()
        })
    });
    g.bench_function("encode/dictionary", |b| {
        b.iter(|| {
            test.iter()
                .map(|r| encode_payload_with(r, &dict).unwrap().compressed.len())
                .sum::<usize>()
        })
    });
    g.bench_function("decode/plain", |b| {
        b.iter(|| {
            plain
                .iter()
                .map(|p| decode_payload(p, 1 << 20).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("decode/dictionary", |b| {
        b.iter(|| {
            with.iter()
                .map(|p| decode_payload_with(p, 1 << 20, &dict.bytes).unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
    c.bench_function("codec/train_dictionary_2000", |b| {
        b.iter_batched(
            || train.clone(),
            |t| train_dictionary(&t).unwrap().id,
            BatchSize::LargeInput,
        )
    });
}

fn bench_small(c: &mut Criterion) {
    let json: Vec<Vec<u8>> = (500_000..500_000 + N as u64)
        .map(|i| canonical_json(&gleaner::commands::bench_seed::seed_fields(i)))
        .collect();
    let stored: Vec<Vec<u8>> = json
        .iter()
        .map(|r| encode_canonical_payload(r).unwrap().compressed)
        .collect();
    let zstd_frames = |raw_literals: bool| -> Vec<Vec<u8>> {
        use zstd::zstd_safe::{CParameter, ParamSwitch};
        let mut z = zstd::bulk::Compressor::new(3).unwrap();
        z.set_parameter(CParameter::ChecksumFlag(true)).unwrap();
        if raw_literals {
            z.set_parameter(CParameter::LiteralCompressionMode(ParamSwitch::Disable))
                .unwrap();
        }
        json.iter().map(|r| z.compress(r).unwrap()).collect()
    };
    let huffman = zstd_frames(false);
    let raw_literals = zstd_frames(true);
    let avg = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / v.len() as f64;
    println!(
        "small records: json {:.0} bytes; stored frame {:.0}, zstd frame {:.0}, zstd frame with raw literals {:.0}",
        avg(&json),
        avg(&stored),
        avg(&huffman),
        avg(&raw_literals)
    );
    let mut g = c.benchmark_group("codec_small");
    g.throughput(Throughput::Elements(json.len() as u64));
    for (name, frames) in [
        ("decode/stored", &stored),
        ("decode/zstd", &huffman),
        ("decode/zstd-raw-literals", &raw_literals),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                frames
                    .iter()
                    .map(|p| decode_payload(p, 1 << 20).unwrap().len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench, bench_small
}
criterion_main!(benches);
