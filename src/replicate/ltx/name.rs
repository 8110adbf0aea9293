//! LTX file names (`<min>-<max>.ltx`, 16 lowercase hex digits each) and the object path
//! layout of every replica backend, kept in this one place so replica clients agree.

use std::fmt::Write as _;

/// Level of the `1-N` snapshot files.
pub const SNAPSHOT_LEVEL: u8 = 9;

/// How a replica backend lays out its objects (format doc §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `file`, `sftp`, `webdav`, `gs`, `abs`, `nats`: `<root>/ltx/<level decimal>/<name>`.
    File,
    /// `s3` and `oss`: `<path>/<level as 4 lowercase hex digits>/<name>`, no `ltx/`.
    S3,
}

/// `0000000000000001-000000000000000a.ltx`
pub fn format_file_name(min_txid: u64, max_txid: u64) -> String {
    format!("{min_txid:016x}-{max_txid:016x}.ltx")
}

/// Parses a file name written by [`format_file_name`]. Anything else (upper-case hex,
/// other lengths, `.tmp` suffixes) is `None`, because Litestream's listing ignores it too.
pub fn parse_file_name(name: &str) -> Option<(u64, u64)> {
    let b = name.as_bytes();
    if b.len() != 16 + 1 + 16 + 4 || b[16] != b'-' || &b[33..] != b".ltx" {
        return None;
    }
    let hex = |s: &[u8]| -> Option<u64> {
        s.iter().try_fold(0u64, |acc, &c| {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            Some(acc << 4 | u64::from(d))
        })
    };
    Some((hex(&b[..16])?, hex(&b[17..33])?))
}

/// Directory or key prefix holding a level's files, without a trailing slash.
/// `root` is the replica path; trailing slashes are ignored. An empty S3 root puts
/// levels at the bucket top.
pub fn level_prefix(backend: Backend, root: &str, level: u8) -> String {
    let root = root.trim_end_matches('/');
    let mut p = String::with_capacity(root.len() + 9);
    p.push_str(root);
    if !root.is_empty() {
        p.push('/');
    }
    // Writing into a String cannot fail.
    let _ = match backend {
        Backend::File => write!(p, "ltx/{level}"),
        Backend::S3 => write!(p, "{level:04x}"),
    };
    p
}

/// Full path or key of one LTX file: the single definition of the replica layout.
pub fn ltx_object_path(
    backend: Backend,
    root: &str,
    level: u8,
    min_txid: u64,
    max_txid: u64,
) -> String {
    let mut p = level_prefix(backend, root, level);
    p.push('/');
    p.push_str(&format_file_name(min_txid, max_txid));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = format_file_name(1, 10);
        assert_eq!(n, "0000000000000001-000000000000000a.ltx");
        assert_eq!(parse_file_name(&n), Some((1, 10)));
        let n = format_file_name(u64::MAX, u64::MAX);
        assert_eq!(parse_file_name(&n), Some((u64::MAX, u64::MAX)));
    }

    #[test]
    fn foreign_names_are_ignored() {
        for bad in [
            "0000000000000001-000000000000000A.ltx",
            "0000000000000001-000000000000000a.ltx.tmp",
            "000000000000001-000000000000000a.ltx",
            "00000000000000001-000000000000000a.ltx",
            "0000000000000001_000000000000000a.ltx",
            "0000000000000001-000000000000000a.LTX",
            "000000000000000g-000000000000000a.ltx",
            "+000000000000001-000000000000000a.ltx",
            "",
            "ltx",
            "é000000000000001-000000000000000a.lt",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn file_backend_layout() {
        assert_eq!(
            ltx_object_path(Backend::File, "/data/replica/", 0, 1, 1),
            "/data/replica/ltx/0/0000000000000001-0000000000000001.ltx"
        );
        assert_eq!(
            ltx_object_path(Backend::File, "replica", 9, 1, 5),
            "replica/ltx/9/0000000000000001-0000000000000005.ltx"
        );
        assert_eq!(level_prefix(Backend::File, "r", 12), "r/ltx/12");
    }

    #[test]
    fn s3_layout_has_hex_levels_and_no_ltx() {
        assert_eq!(
            ltx_object_path(Backend::S3, "some/prefix/db", 0, 1, 1),
            "some/prefix/db/0000/0000000000000001-0000000000000001.ltx"
        );
        assert_eq!(
            ltx_object_path(Backend::S3, "some/prefix/db/", 9, 1, 5),
            "some/prefix/db/0009/0000000000000001-0000000000000005.ltx"
        );
        assert_eq!(level_prefix(Backend::S3, "", 10), "000a");
    }
}
