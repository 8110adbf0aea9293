//! The LTX decoder. Option bit 0 clear: the input (after the option byte) is an LTX file;
//! decoding in memory, streaming through 1–7-byte reads and verify-only must agree, and a
//! file that decodes re-encodes to one that decodes to the same header and pages. Bit 0
//! set: the input describes pages to encode (both page encodings); decode(encode(x)) == x.
#![no_main]

use std::io::Read;

use gleaner::replicate::ltx::{
    decode_file, lock_page, verify, DecodedFile, Encoder, Header, PageEncoding, FLAG_NO_CHECKSUM,
};
use gleaner_fuzz::split;
use libfuzzer_sys::fuzz_target;

/// Hands out at most `step` bytes per read, as a socket or a slow disk might.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn encode(header: Header, pages: &[(u32, Vec<u8>)], enc: PageEncoding) -> Vec<u8> {
    let mut e = Encoder::with_encoding(Vec::new(), header, enc).expect("valid header");
    for (pgno, data) in pages {
        e.write_page(*pgno, data).expect("valid page");
    }
    e.finish().expect("encoder finishes").0
}

fn check_decoded(f: &DecodedFile) {
    let h = &f.header;
    let mut prev = 0;
    for (pgno, data) in &f.pages {
        assert!(
            *pgno > prev && *pgno <= h.commit,
            "page {pgno} after {prev}, commit {}",
            h.commit
        );
        assert_ne!(*pgno, lock_page(h.page_size), "lock page stored");
        assert_eq!(data.len(), h.page_size as usize);
        prev = *pgno;
    }
    if h.is_snapshot() {
        let expect = h.commit - u32::from(h.commit >= lock_page(h.page_size));
        assert_eq!(f.pages.len() as u32, expect, "snapshot misses pages");
    }
}

fn decode_bytes(opt: u8, file: &[u8]) {
    let whole = decode_file(file);
    let step = usize::from(opt >> 1 & 7).max(1);
    let streamed = verify(Trickle { data: file, step });
    assert_eq!(
        whole.is_ok(),
        verify(file).is_ok(),
        "decode_file and verify disagree"
    );
    assert_eq!(
        whole.is_ok(),
        streamed.is_ok(),
        "streaming changes the answer: {streamed:?}"
    );
    let Ok(f) = whole else {
        return;
    };
    check_decoded(&f);
    if let Ok((h, t)) = streamed {
        assert_eq!((h, t), (f.header, f.trailer));
    }
    if f.header.flags == FLAG_NO_CHECKSUM {
        for enc in [PageEncoding::Block, PageEncoding::LegacyFrame] {
            let again =
                decode_file(&encode(f.header, &f.pages, enc)).expect("re-encoded file decodes");
            assert_eq!(
                (again.header, &again.pages),
                (f.header, &f.pages),
                "re-encode differs"
            );
        }
    }
}

/// Builds a file from the input: page size, TXIDs, page numbers and contents all come
/// from it, so the fuzzer explores the encoder's and decoder's page handling together.
fn round_trip(opt: u8, rest: &[u8]) {
    let Some((&shape, content)) = rest.split_first() else {
        return;
    };
    let page_size = 512u32 << (shape & 7).min(7);
    let count = u32::from(shape >> 3 & 7) + 1;
    let snapshot = opt & 2 != 0;
    let mut pages = Vec::new();
    let mut pgno = 0u32;
    for i in 0..count {
        pgno += if snapshot {
            1
        } else {
            u32::from(content.get(i as usize).copied().unwrap_or(1) % 5) + 1
        };
        // Page bytes: the content cycled from a page-specific start (compressible when the
        // input is short, incompressible when it is long and random).
        let data: Vec<u8> = if content.is_empty() {
            vec![0; page_size as usize]
        } else {
            (0..page_size as usize)
                .map(|k| content[(k + i as usize * 7) % content.len()])
                .collect()
        };
        pages.push((pgno, data));
    }
    let commit = pgno + u32::from(opt >> 4 & 3) * u32::from(!snapshot);
    let min_txid = if snapshot {
        1
    } else {
        u64::from(opt >> 2 & 3) + 2
    };
    let header = Header::new(
        page_size,
        commit,
        min_txid,
        min_txid + u64::from(opt >> 6),
        1_764_000_000_000,
    );
    let enc = if opt & 0x80 == 0 {
        PageEncoding::Block
    } else {
        PageEncoding::LegacyFrame
    };
    let bytes = encode(header, &pages, enc);
    let f = decode_file(&bytes).expect("encoded file decodes");
    assert_eq!(f.header, header);
    assert_eq!(f.pages, pages);
    assert_eq!(f.trailer.post_apply_checksum, 0);
    assert_eq!(
        verify(Trickle {
            data: &bytes,
            step: 3
        })
        .map(|(h, _)| h)
        .ok(),
        Some(header)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((opt, rest)) = split(data) else {
        return;
    };
    if opt & 1 == 0 {
        decode_bytes(opt, rest);
    } else {
        round_trip(opt, rest);
    }
});
