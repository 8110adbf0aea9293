//! `file://` replicas: `<root>/ltx/<level>/<min>-<max>.ltx`, as Litestream's file backend.
//!
//! Writes go to `<name>.tmp` in the level directory, are fsynced, get their mtime set to
//! the header timestamp (Litestream's restore reads CreatedAt from the mtime, so a wrong
//! mtime breaks point-in-time restore), and are renamed into place; the directory is
//! fsynced after the rename. All file I/O runs on tokio's blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::replicate::client::{ClientError, ClientFuture, LtxObject, ReplicaClient};
use crate::replicate::ltx::{level_prefix, ltx_object_path, parse_file_name, Backend};

#[derive(Debug, Clone)]
pub struct FileClient {
    root: PathBuf,
}

impl FileClient {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileClient { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn root_str(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    fn path(&self, level: u8, min: u64, max: u64) -> PathBuf {
        PathBuf::from(ltx_object_path(
            Backend::File,
            &self.root_str(),
            level,
            min,
            max,
        ))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClientError::Unavailable {
            op: "file task",
            target: String::new(),
            detail: e.to_string(),
        })?
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ClientError + 'a {
    move |source| {
        if source.kind() == io::ErrorKind::NotFound {
            ClientError::NotFound {
                op,
                target: path.display().to_string(),
            }
        } else {
            ClientError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), ClientError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

impl ReplicaClient for FileClient {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        self.path(level, min, max).display().to_string()
    }

    fn list(&self, level: u8) -> ClientFuture<'_, Vec<LtxObject>> {
        let dir = PathBuf::from(level_prefix(Backend::File, &self.root_str(), level));
        Box::pin(blocking(move || {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err("list", &dir)(e)),
            };
            let mut out = Vec::new();
            for e in rd {
                let e = e.map_err(io_err("list", &dir))?;
                let name = e.file_name();
                let Some((min, max)) = name.to_str().and_then(parse_file_name) else {
                    continue;
                };
                let md = match e.metadata() {
                    Ok(m) => m,
                    // Deleted between readdir and stat (retention racing a listing).
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(io_err("stat", &e.path())(err)),
                };
                let t = md.modified().map_err(io_err("stat", &e.path()))?;
                out.push(LtxObject {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: md.len(),
                    created_at: t,
                    listed_at: t,
                });
            }
            out.sort_by_key(|o| (o.min_txid, o.max_txid));
            Ok(out)
        }))
    }

    fn get_to_file<'a>(
        &'a self,
        level: u8,
        min: u64,
        max: u64,
        dest: &'a Path,
    ) -> ClientFuture<'a, u64> {
        let src = self.path(level, min, max);
        let dest = dest.to_path_buf();
        Box::pin(blocking(move || {
            fs::copy(&src, &dest).map_err(io_err("read", &src))
        }))
    }

    fn get_prefix(&self, level: u8, min: u64, max: u64, len: usize) -> ClientFuture<'_, Vec<u8>> {
        let src = self.path(level, min, max);
        Box::pin(blocking(move || {
            let f = File::open(&src).map_err(io_err("read", &src))?;
            let mut buf = Vec::with_capacity(len);
            f.take(len as u64)
                .read_to_end(&mut buf)
                .map_err(io_err("read", &src))?;
            Ok(buf)
        }))
    }

    fn put_file<'a>(
        &'a self,
        level: u8,
        min: u64,
        max: u64,
        src: &'a Path,
        timestamp_ms: i64,
    ) -> ClientFuture<'a, ()> {
        let dst = self.path(level, min, max);
        let src = src.to_path_buf();
        Box::pin(blocking(move || {
            let dir = dst.parent().map(Path::to_path_buf).unwrap_or_default();
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
            let mut tmp = dst.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let result = (|| {
                let mut from = File::open(&src).map_err(io_err("read", &src))?;
                let mut to = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)
                    .map_err(io_err("write", &tmp))?;
                io::copy(&mut from, &mut to).map_err(io_err("write", &tmp))?;
                to.sync_all().map_err(io_err("fsync", &tmp))?;
                let mtime = UNIX_EPOCH + Duration::from_millis(timestamp_ms.max(0) as u64);
                to.set_modified(mtime).map_err(io_err("set mtime", &tmp))?;
                drop(to);
                fs::rename(&tmp, &dst).map_err(io_err("rename", &dst))?;
                sync_dir(&dir)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        }))
    }

    fn delete(&self, level: u8, files: Vec<(u64, u64)>) -> ClientFuture<'_, ()> {
        let paths: Vec<PathBuf> = files
            .into_iter()
            .map(|(a, b)| self.path(level, a, b))
            .collect();
        Box::pin(blocking(move || {
            for p in &paths {
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("delete", p)(e)),
                }
            }
            Ok(())
        }))
    }
}
