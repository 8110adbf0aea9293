//! Encoder/decoder/compaction tests: the golden layout from the format doc, hand-built
//! hostile files, corruption and truncation, and property tests.

use proptest::prelude::*;

use super::index::put_uvarint;
use super::*;
use crate::replicate::crc64::{page_checksum, Crc64, FLAG};
use crate::replicate::error::Error;

const TS: i64 = 1_764_000_000_000;

/// (page number, page flags, uncompressed page)
type RawFrame = (u32, u16, Vec<u8>);

fn l0(page_size: u32, commit: u32, txid: u64) -> Header {
    Header::new(page_size, commit, txid, txid, TS + txid as i64)
}

fn sqlite_like_page(ps: usize, seed: u32) -> Vec<u8> {
    let mut p = vec![0u8; ps];
    p[0] = 0x0d;
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    // Records at the end of the page, free space in the middle: partly compressible.
    for b in p[ps / 2..].iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = if x.is_multiple_of(4) {
            (x >> 8) as u8
        } else {
            b'a' + (x % 7) as u8
        };
    }
    p
}

fn encode(h: Header, pages: &[(u32, Vec<u8>)], enc: PageEncoding) -> Vec<u8> {
    let mut e = Encoder::with_encoding(Vec::new(), h, enc).unwrap();
    for (n, d) in pages {
        e.write_page(*n, d).unwrap();
    }
    e.finish().unwrap().0
}

/// Builds a file frame by frame without the encoder's checks, with a correct index and
/// checksum, so decoder checks can be hit one at a time. Frames are (pgno, flags, data);
/// with flag 0x1 `data` is LZ4-compressed here.
fn raw_file(h: &Header, frames: &[RawFrame], post: u64) -> Vec<u8> {
    let mut out = h.to_bytes().to_vec();
    let mut hash = Crc64::new();
    hash.update(&out);
    let mut index = Vec::new();
    for (pgno, flags, data) in frames {
        let off = out.len() as u64;
        let mut ph = pgno.to_be_bytes().to_vec();
        ph.extend_from_slice(&flags.to_be_bytes());
        hash.update(&ph);
        out.extend_from_slice(&ph);
        if flags & 1 == 1 {
            let c = lz4_flex::block::compress(data);
            let sz = (c.len() as u32).to_be_bytes();
            hash.update(&sz);
            out.extend_from_slice(&sz);
            out.extend_from_slice(&c);
        } else {
            frame::write_frame(data, &mut out).unwrap();
        }
        hash.update(data);
        put_uvarint(&mut index, u64::from(*pgno));
        put_uvarint(&mut index, off);
        put_uvarint(&mut index, out.len() as u64 - off);
    }
    out.extend_from_slice(&[0; 6]);
    hash.update(&[0; 6]);
    put_uvarint(&mut index, 0);
    let len = (index.len() as u64).to_be_bytes();
    for b in [&index[..], &len[..], &post.to_be_bytes()[..]] {
        out.extend_from_slice(b);
        hash.update(b);
    }
    out.extend_from_slice(&hash.flagged().to_be_bytes());
    out
}

fn golden_page() -> Vec<u8> {
    // Found so that lz4_flex compresses it to 58 bytes, the size in the doc's example.
    let mut p = vec![0u8; 4096];
    p[0] = 0x0d;
    p[5] = 0x0f;
    p[6] = 0xf0;
    for i in 0..28 {
        p[4096 - 28 + i] = (i * 37 % 251) as u8;
    }
    p
}

#[test]
fn golden_one_page_l0_layout() {
    let page = golden_page();
    let f = encode(l0(4096, 2, 2), &[(2, page.clone())], PageEncoding::Block);
    assert_eq!(f.len(), 202);
    assert_eq!(&f[100..106], &[0, 0, 0, 2, 0, 1]);
    assert_eq!(&f[106..110], &58u32.to_be_bytes());
    assert_eq!(&f[168..174], &[0; 6]);
    assert_eq!(&f[174..178], &[0x02, 0x64, 0x44, 0x00]);
    assert_eq!(&f[178..186], &4u64.to_be_bytes());
    assert_eq!(&f[186..194], &[0; 8]);

    // File checksum recomputed independently: header, page header, size prefix,
    // uncompressed page, end marker, index, index length, post-apply checksum.
    let mut h = Crc64::new();
    h.update(&f[..110]);
    h.update(&page);
    h.update(&f[168..194]);
    let want = FLAG | h.value();
    assert_eq!(&f[194..202], &want.to_be_bytes());

    let d = decode_file(&f).unwrap();
    assert_eq!(d.pages, vec![(2, page)]);
    assert_eq!(
        d.trailer,
        Trailer {
            post_apply_checksum: 0,
            file_checksum: want
        }
    );
    assert_eq!(
        read_page_index(&f).unwrap(),
        vec![IndexEntry {
            pgno: 2,
            offset: 100,
            size: 68
        }]
    );
}

#[test]
fn round_trip_both_encodings() {
    let pages: Vec<_> = (1..=20).map(|n| (n, sqlite_like_page(4096, n))).collect();
    for enc in [PageEncoding::Block, PageEncoding::LegacyFrame] {
        let mut h = Header::new(4096, 20, 1, 7, TS);
        h.wal_offset = 32 + 4120 * 3;
        h.wal_size = 4120;
        h.wal_salt1 = 11;
        h.wal_salt2 = 12;
        let f = encode(h, &pages, enc);
        let d = decode_file(&f).unwrap();
        assert_eq!(d.header, h);
        assert_eq!(d.pages, pages);
        let idx = read_page_index(&f).unwrap();
        assert_eq!(idx.len(), 20);
        assert_eq!(idx[0].offset, 100);
        for w in idx.windows(2) {
            assert_eq!(w[0].offset + w[0].size, w[1].offset);
        }
    }
}

#[test]
fn empty_incremental_and_verify() {
    let f = encode(l0(1024, 9, 5), &[], PageEncoding::Block);
    let (h, t) = verify(&f[..]).unwrap();
    assert_eq!(h.commit, 9);
    assert_eq!(t.post_apply_checksum, 0);
    assert!(decode_file(&f).unwrap().pages.is_empty());
    assert!(read_page_index(&f).unwrap().is_empty());
}

#[test]
fn encoder_refuses_bad_pages() {
    let p = vec![0u8; 512];
    let mut e = Encoder::new(Vec::new(), l0(512, 10, 3)).unwrap();
    assert!(matches!(
        e.write_page(0, &p),
        Err(Error::EncodePage { pgno: 0, .. })
    ));
    assert!(matches!(
        e.write_page(11, &p),
        Err(Error::EncodePage { pgno: 11, .. })
    ));
    assert!(matches!(
        e.write_page(3, &p[..100]),
        Err(Error::EncodePage { pgno: 3, .. })
    ));
    e.write_page(5, &p).unwrap();
    assert!(matches!(
        e.write_page(5, &p),
        Err(Error::EncodePage { pgno: 5, .. })
    ));
    assert!(matches!(
        e.write_page(4, &p),
        Err(Error::EncodePage { pgno: 4, .. })
    ));
    assert_eq!(
        e.write_page(5, &p).unwrap_err().kind(),
        crate::replicate::CodecErrorKind::Usage
    );

    let mut s = Encoder::new(Vec::new(), Header::new(512, 3, 1, 1, TS)).unwrap();
    s.write_page(1, &p).unwrap();
    assert!(matches!(
        s.write_page(3, &p),
        Err(Error::EncodePage { pgno: 3, .. })
    ));
    s.write_page(2, &p).unwrap();
    assert!(matches!(s.finish(), Err(Error::EncodePage { pgno: 3, .. })));

    let mut h = l0(512, 3, 2);
    h.flags = 0;
    h.pre_apply_checksum = FLAG | 1;
    assert!(matches!(
        Encoder::new(Vec::new(), h),
        Err(Error::EncodeHeader(_))
    ));
    assert!(matches!(
        Encoder::new(Vec::new(), l0(1000, 3, 2)),
        Err(Error::PageSize(1000))
    ));
}

#[test]
fn lock_page_is_skipped_by_encoder_and_rejected_by_decoder() {
    let lp = lock_page(65536);
    let p = vec![1u8; 65536];
    let mut e = Encoder::new(Vec::new(), l0(65536, lp + 1, 2)).unwrap();
    e.write_page(lp - 1, &p).unwrap();
    e.write_page(lp, &p).unwrap();
    e.write_page(lp + 1, &p).unwrap();
    let f = e.finish().unwrap().0;
    let pgnos: Vec<u32> = decode_file(&f).unwrap().pages.iter().map(|x| x.0).collect();
    assert_eq!(pgnos, vec![lp - 1, lp + 1]);

    let hostile = raw_file(&l0(65536, lp + 1, 2), &[(lp, 1, p.clone())], 0);
    assert!(matches!(decode_file(&hostile), Err(Error::LockPage(n)) if n == lp));
}

#[test]
fn snapshot_around_the_lock_page() {
    // A 65536-byte page size puts the lock page at 16385; build a snapshot past it.
    let lp = lock_page(65536);
    let zero = vec![0u8; 65536];
    let mut e = Encoder::new(Vec::new(), Header::new(65536, lp + 1, 1, 1, TS)).unwrap();
    for n in 1..=lp + 1 {
        if n != lp {
            e.write_page(n, &zero).unwrap();
        }
    }
    let f = e.finish().unwrap().0;
    let mut d = Decoder::new(&f[..]).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut count = 0;
    while let Some(n) = d.read_page(&mut buf).unwrap() {
        assert_ne!(n, lp);
        count += 1;
    }
    d.finish().unwrap();
    assert_eq!(count, lp);
}

#[test]
fn decoder_rejects_hostile_frames() {
    let p = vec![3u8; 512];
    let h = l0(512, 5, 2);
    let cases: Vec<(Vec<RawFrame>, &str)> = vec![
        (vec![(3, 1, p.clone()), (2, 1, p.clone())], "out of order"),
        (vec![(3, 1, p.clone()), (3, 1, p.clone())], "out of order"),
        (vec![(6, 1, p.clone())], "above the commit"),
        (vec![(2, 4, p.clone())], "unknown page flags"),
        (
            vec![(2, 1, vec![3u8; 256])],
            "256 bytes where the page size is 512",
        ),
        (vec![(2, 0, vec![3u8; 1024])], "page 2: LZ4 data is invalid"),
    ];
    for (frames, want) in cases {
        let f = raw_file(&h, &frames, 0);
        let err = decode_file(&f).unwrap_err();
        assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        assert_eq!(err.kind(), crate::replicate::CodecErrorKind::Corrupt);
    }
    // A hand-built file with legal frames decodes, legacy frames included.
    let ok = raw_file(&h, &[(2, 0, p.clone()), (4, 1, p.clone())], 0);
    assert_eq!(
        decode_file(&ok).unwrap().pages,
        vec![(2, p.clone()), (4, p.clone())]
    );
}

#[test]
fn snapshot_missing_pages() {
    let p = vec![3u8; 512];
    let h = Header::new(512, 3, 1, 1, TS);
    let gap = raw_file(&h, &[(1, 1, p.clone()), (3, 1, p.clone())], 0);
    assert!(matches!(decode_file(&gap), Err(Error::MissingPage(2))));
    let short = raw_file(&h, &[(1, 1, p.clone()), (2, 1, p.clone())], 0);
    assert!(matches!(decode_file(&short), Err(Error::MissingPage(3))));
    let late = raw_file(&h, &[(2, 1, p.clone()), (3, 1, p.clone())], 0);
    assert!(matches!(decode_file(&late), Err(Error::MissingPage(1))));
}

#[test]
fn checksummed_snapshot_verifies_database_checksum() {
    let pages: Vec<_> = (1..=3).map(|n| (n, sqlite_like_page(512, n))).collect();
    let mut h = Header::new(512, 3, 1, 1, TS);
    h.flags = 0;
    let acc = pages
        .iter()
        .fold(0u64, |a, (n, d)| a ^ page_checksum(*n, d));
    let frames: Vec<_> = pages.iter().map(|(n, d)| (*n, 1u16, d.clone())).collect();
    let good = raw_file(&h, &frames, FLAG | acc);
    assert_eq!(
        decode_file(&good).unwrap().trailer.post_apply_checksum,
        FLAG | acc
    );
    let bad = raw_file(&h, &frames, FLAG | (acc ^ 1));
    assert!(matches!(
        decode_file(&bad),
        Err(Error::DatabaseChecksumMismatch { .. })
    ));
    let zero = raw_file(&h, &frames, 0);
    assert!(matches!(decode_file(&zero), Err(Error::BadTrailer(_))));
    // NoChecksum files must carry post-apply 0.
    let nock = raw_file(&Header::new(512, 3, 1, 1, TS), &frames, FLAG | acc);
    assert!(matches!(
        decode_file(&nock),
        Err(Error::BadTrailer("post-apply checksum not allowed"))
    ));
}

fn sample_file() -> (Vec<u8>, Vec<(u32, Vec<u8>)>) {
    let pages: Vec<_> = [1u32, 2, 5]
        .iter()
        .map(|&n| (n, sqlite_like_page(512, n)))
        .collect();
    (encode(l0(512, 6, 4), &pages, PageEncoding::Block), pages)
}

#[test]
fn flipped_bytes_in_fixed_parts_are_checksum_mismatches() {
    let (f, _) = sample_file();
    let trailer_at = f.len() - TRAILER_SIZE;
    // Timestamp, node id and reserved bytes pass header validation: only the checksum
    // can catch them. So do both trailer fields.
    for at in (32..40).chain(72..100).chain(trailer_at..f.len()) {
        let mut g = f.clone();
        g[at] ^= 0x10;
        assert!(
            matches!(decode_file(&g), Err(Error::ChecksumMismatch { .. })),
            "byte {at}"
        );
    }
    let idx = read_page_index(&f).unwrap();
    let index_start = (idx[2].offset + idx[2].size) as usize + PAGE_HEADER_SIZE;
    for at in index_start..trailer_at {
        let mut g = f.clone();
        g[at] ^= 0x01;
        assert!(
            matches!(decode_file(&g), Err(Error::BadIndex(_))),
            "byte {at}"
        );
    }
}

#[test]
fn every_flip_is_an_error_or_harmless() {
    // No byte flip may yield different pages without an error: the checksum covers
    // the uncompressed pages, so only a flip that decompresses to the same bytes passes.
    let (f, pages) = sample_file();
    for at in 0..f.len() {
        for bit in [0x01, 0x80] {
            let mut g = f.clone();
            g[at] ^= bit;
            if let Ok(d) = decode_file(&g) {
                assert_eq!(d.pages, pages, "flip at {at} changed pages silently");
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let (f, _) = sample_file();
    for len in 0..f.len() {
        let err = decode_file(&f[..len]).unwrap_err();
        assert_eq!(
            err.kind(),
            crate::replicate::CodecErrorKind::Corrupt,
            "len {len}: {err}"
        );
        assert!(
            read_page_index(&f[..len]).is_err() || len > f.len() - 30,
            "len {len}"
        );
    }
    let mut long = f.clone();
    long.push(0);
    assert!(matches!(decode_file(&long), Err(Error::TrailingData)));
}

#[test]
fn huge_claimed_length_is_an_error_not_an_allocation() {
    let (mut f, _) = sample_file();
    f[106..110].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode_file(&f),
        Err(Error::CompressedTooLarge { pgno: 1, .. })
    ));
}

#[test]
fn compaction_merges_newest_wins_and_drops_above_commit() {
    let ps = 512;
    let v = |n: u32, gen: u32| sqlite_like_page(ps as usize, n * 100 + gen);
    let snap = encode(
        Header::new(ps, 4, 1, 1, TS),
        &(1..=4).map(|n| (n, v(n, 1))).collect::<Vec<_>>(),
        PageEncoding::Block,
    );
    let grow = encode(
        l0(ps, 6, 2),
        &[(2, v(2, 2)), (5, v(5, 2)), (6, v(6, 2))],
        PageEncoding::Block,
    );
    let mut h3 = l0(ps, 5, 3);
    h3.timestamp_ms = TS + 100;
    let shrink = encode(h3, &[(1, v(1, 3)), (5, v(5, 3))], PageEncoding::LegacyFrame);
    let mut h4 = l0(ps, 5, 4);
    h4.timestamp_ms = TS + 50;
    let last = encode(h4, &[(3, v(3, 4))], PageEncoding::Block);

    let (out, h, _) = compact(vec![&grow[..], &shrink[..], &last[..]], Vec::new()).unwrap();
    assert_eq!(
        (h.min_txid, h.max_txid, h.commit, h.timestamp_ms),
        (2, 4, 5, TS + 100)
    );
    assert_eq!(
        (h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2),
        (0, 0, 0, 0)
    );
    let d = decode_file(&out).unwrap();
    assert_eq!(d.header, h);
    let want = vec![(1, v(1, 3)), (2, v(2, 2)), (3, v(3, 4)), (5, v(5, 3))];
    assert_eq!(d.pages, want);

    let (full, hs, _) = compact(
        vec![&snap[..], &grow[..], &shrink[..], &last[..]],
        Vec::new(),
    )
    .unwrap();
    assert!(hs.is_snapshot());
    let d = decode_file(&full).unwrap();
    assert_eq!(
        d.pages,
        vec![
            (1, v(1, 3)),
            (2, v(2, 2)),
            (3, v(3, 4)),
            (4, v(4, 1)),
            (5, v(5, 3))
        ]
    );
}

#[test]
fn compaction_errors() {
    let p = vec![0u8; 512];
    let a = encode(l0(512, 2, 2), &[(1, p.clone())], PageEncoding::Block);
    let c = encode(l0(512, 2, 4), &[(1, p.clone())], PageEncoding::Block);
    let big = encode(l0(1024, 2, 3), &[(1, vec![0u8; 1024])], PageEncoding::Block);
    assert!(matches!(
        compact(vec![&a[..], &c[..]], Vec::new()),
        Err(Error::NonContiguous { have: 2, next: 4 })
    ));
    assert!(matches!(
        compact(vec![&c[..], &a[..]], Vec::new()),
        Err(Error::NonContiguous { have: 4, next: 2 })
    ));
    assert!(matches!(
        compact(vec![&a[..], &big[..]], Vec::new()),
        Err(Error::PageSizeMismatch { .. })
    ));
    assert!(matches!(
        compact(Vec::<&[u8]>::new(), Vec::new()),
        Err(Error::NoInput)
    ));
    // Snapshot then a growth that forgot its new page 3.
    let snap = encode(
        Header::new(512, 2, 1, 1, TS),
        &[(1, p.clone()), (2, p.clone())],
        PageEncoding::Block,
    );
    let grow = encode(l0(512, 4, 2), &[(4, p.clone())], PageEncoding::Block);
    assert!(matches!(
        compact(vec![&snap[..], &grow[..]], Vec::new()),
        Err(Error::MissingPage(3))
    ));
    let mut bad = a.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let b2 = encode(l0(512, 2, 3), &[(1, p.clone())], PageEncoding::Block);
    assert!(matches!(
        compact(vec![&bad[..], &b2[..]], Vec::new()),
        Err(Error::ChecksumMismatch { .. })
    ));
}

fn page_set() -> impl Strategy<Value = (u32, u32, Vec<(u32, Vec<u8>)>)> {
    (prop::sample::select(vec![512u32, 1024, 4096]), 1u32..40).prop_flat_map(|(ps, commit)| {
        let page = prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], ps as usize);
        (
            Just(ps),
            Just(commit),
            prop::collection::btree_map(1..=commit, page, 0..(commit as usize).min(12)),
        )
            .prop_map(|(ps, c, m)| (ps, c, m.into_iter().collect()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip((ps, commit, pages) in page_set(), legacy in any::<bool>(), txid in 2u64..1000) {
        let enc = if legacy { PageEncoding::LegacyFrame } else { PageEncoding::Block };
        let f = encode(l0(ps, commit, txid), &pages, enc);
        let d = decode_file(&f).unwrap();
        prop_assert_eq!(d.pages, pages.clone());
        prop_assert_eq!(d.header.commit, commit);
        let idx = read_page_index(&f).unwrap();
        prop_assert_eq!(idx.iter().map(|e| e.pgno).collect::<Vec<_>>(), pages.iter().map(|p| p.0).collect::<Vec<_>>());
    }

    #[test]
    fn prop_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), with_header in any::<bool>()) {
        let mut input = bytes;
        if with_header {
            let mut h = l0(512, 8, 2).to_bytes().to_vec();
            h.extend_from_slice(&input);
            input = h;
        }
        prop_assert!(decode_file(&input).is_err());
        let _ = read_page_index(&input);
    }

    #[test]
    fn prop_mutations_never_pass_silently(
        (ps, commit, pages) in page_set(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let f = encode(l0(ps, commit, 3), &pages, PageEncoding::Block);
        let mut g = f.clone();
        for (i, b) in &edits {
            let at = i.index(g.len());
            g[at] = *b;
        }
        if let Some(c) = cut {
            g.truncate(c.index(g.len()));
        }
        match decode_file(&g) {
            Ok(d) => prop_assert_eq!(d.pages, pages),
            Err(e) => prop_assert!(matches!(e.kind(), crate::replicate::CodecErrorKind::Corrupt)),
        }
        let _ = read_page_index(&g);
    }
}

#[test]
fn decoder_wants_a_page_sized_buffer() {
    let (f, pages) = sample_file();
    let mut d = Decoder::new(&f[..]).unwrap();
    let mut small = vec![0u8; 100];
    let e = d.read_page(&mut small).unwrap_err();
    assert!(matches!(
        e,
        Error::BufferSize {
            expected: 512,
            actual: 100
        }
    ));
    assert_eq!(e.kind(), crate::replicate::CodecErrorKind::Usage);
    // Nothing was consumed: the decoder still works with the right buffer.
    let mut buf = vec![0u8; 512];
    assert_eq!(d.read_page(&mut buf).unwrap(), Some(1));
    assert_eq!(buf, pages[0].1);
    d.finish().unwrap();
}
