//! The record codec on realistic small records (~300-byte JSON, the registry's shape):
//! records per second to encode (canonical JSON, blake3, zstd) and to decode, and bytes
//! per stored record, without and with a zstd dictionary trained on 2,000 of the source's
//! records. Bytes per record are printed once before the timings.

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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
