//! The SQLite WAL reader and the one-sync scan. Option bit 0 clear: the input is a WAL as
//! found on disk. Bit 0 set: the input's header and frames get valid checksums, salts and
//! page numbers first (512- or 1024-byte pages), so the fuzzer reaches the frame and
//! commit logic instead of stopping at checksums. Properties: what a scan reports lies
//! inside the committed bytes, a scan split at a commit boundary adds up to the whole
//! scan, and a repaired WAL is read to its end.
#![no_main]

use gleaner::replicate::wal::{
    checksum, scan_slice, WalEnd, WalSync, FRAME_HEADER_SIZE, HEADER_SIZE, MAGIC_BE, MAGIC_LE,
    VERSION,
};
use gleaner_fuzz::split;
use libfuzzer_sys::fuzz_target;

/// Gives the WAL a valid header and every whole frame valid salts, a non-zero page
/// number and a chained checksum. Returns the number of whole frames.
fn repair(opt: u8, wal: &mut [u8]) -> usize {
    let magic = if opt & 2 == 0 { MAGIC_LE } else { MAGIC_BE };
    let page_size: u32 = if opt & 4 == 0 { 512 } else { 1024 };
    wal[0..4].copy_from_slice(&magic.to_be_bytes());
    wal[4..8].copy_from_slice(&VERSION.to_be_bytes());
    wal[8..12].copy_from_slice(&page_size.to_be_bytes());
    let be = magic & 1 == 1;
    let mut seed = checksum(be, (0, 0), &wal[..24]);
    wal[24..28].copy_from_slice(&seed.0.to_be_bytes());
    wal[28..32].copy_from_slice(&seed.1.to_be_bytes());
    let salts: [u8; 8] = wal[16..24].try_into().expect("8 bytes");
    let fs = FRAME_HEADER_SIZE as usize + page_size as usize;
    let mut frames = 0;
    for f in wal[HEADER_SIZE as usize..].chunks_exact_mut(fs) {
        if f[..4] == [0; 4] {
            f[3] = 1;
        }
        f[8..16].copy_from_slice(&salts);
        seed = checksum(be, seed, &f[..8]);
        seed = checksum(be, seed, &f[FRAME_HEADER_SIZE as usize..]);
        f[16..20].copy_from_slice(&seed.0.to_be_bytes());
        f[20..24].copy_from_slice(&seed.1.to_be_bytes());
        frames += 1;
    }
    frames
}

fn check_sync(wal: &[u8], s: &WalSync, offset: u64) {
    let fs = s.header.frame_size();
    assert_eq!(s.offset, offset);
    assert_eq!(s.size, s.frames * fs, "size is not the committed frames");
    assert_eq!(s.commit.is_some(), s.frames > 0);
    assert!(
        offset + s.size <= wal.len() as u64,
        "sync runs past the WAL"
    );
    for (&pgno, &at) in &s.pages {
        assert!(
            s.commit.is_some_and(|c| pgno <= c),
            "page {pgno} above commit {:?}",
            s.commit
        );
        assert!(
            at >= offset + FRAME_HEADER_SIZE && (at - HEADER_SIZE - FRAME_HEADER_SIZE) % fs == 0,
            "page offset {at}"
        );
        assert!(
            at + u64::from(s.header.page_size) <= offset + s.size,
            "page beyond the commit"
        );
        assert_eq!(
            s.page(wal, pgno).map(<[u8]>::len),
            Some(s.header.page_size as usize)
        );
    }
    assert!(s.pages.len() as u64 <= s.frames);
}

fuzz_target!(|data: &[u8]| {
    let Some((opt, rest)) = split(data) else {
        return;
    };
    let mut wal = rest.to_vec();
    let repaired = if opt & 1 == 1 && wal.len() >= HEADER_SIZE as usize {
        Some(repair(opt, &mut wal))
    } else {
        None
    };
    let Ok(full) = scan_slice(&wal, HEADER_SIZE, None) else {
        assert!(repaired.is_none(), "a repaired WAL does not scan");
        return;
    };
    check_sync(&wal, &full, HEADER_SIZE);
    if let Some(n) = repaired {
        assert_eq!(
            full.frames + full.uncommitted_frames,
            n as u64,
            "valid frames left unread"
        );
        assert!(
            matches!(full.end, WalEnd::Eof | WalEnd::PartialFrame),
            "end {:?}",
            full.end
        );
    }
    // One sync bounded to a few frames, then the next from where it stopped.
    let fs = full.header.frame_size();
    let limit = u64::from(opt >> 3) % 5 * fs + 1;
    let first =
        scan_slice(&wal, HEADER_SIZE, Some(limit)).expect("a WAL that scans, scans bounded");
    check_sync(&wal, &first, HEADER_SIZE);
    let at = HEADER_SIZE + first.size;
    let second = scan_slice(&wal, at, None).expect("a commit boundary is a valid start");
    check_sync(&wal, &second, at);
    assert_eq!(
        first.frames + second.frames,
        full.frames,
        "split scan loses frames"
    );
    assert_eq!(second.commit.or(first.commit), full.commit);
    assert_eq!(second.uncommitted_frames, full.uncommitted_frames);
});
