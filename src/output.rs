//! Where connleak's output goes: stdout, or the file named by `--output` or
//! `--save`, without ever destroying what was there.
//!
//! A regular file is replaced atomically (a temporary file beside it, synced,
//! renamed into place), so a reader such as node_exporter's textfile
//! collector never sees half a file, nor an empty one after a crash. What is
//! not a regular file is never renamed over: a device (`/dev/null`,
//! `/dev/stdout`) or a FIFO is written through, a directory or a socket is
//! refused. A FIFO nobody reads is refused at once rather than waited on (a
//! cron job must not hang), so it is opened non-blocking and switched back to
//! blocking writes once open.

use rustix::fs::{Mode, OFlags, fcntl_getfl, fcntl_setfl, open};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The output could not be written where it was asked to go.
#[derive(Debug, thiserror::Error)]
#[error("writing {target}: {source}")]
pub struct WriteError {
    /// `stdout`, or the file's path.
    target: String,
    #[source]
    source: io::Error,
    /// The exit status the run had decided before the write failed
    /// (`check`'s status), which must survive the failure.
    exit_code: Option<u8>,
}

impl WriteError {
    /// This error, remembering the exit status decided before it.
    pub fn with_exit_code(mut self, code: u8) -> WriteError {
        self.exit_code = Some(code);
        self
    }

    /// The exit status decided before the write failed, if one was given.
    pub fn exit_code(&self) -> Option<u8> {
        self.exit_code
    }

    /// Whether the reader went away (`connleak | head`).
    pub fn is_broken_pipe(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Sends the output to stdout, or to FILE (see [`write_atomically`]).
pub fn emit(path: Option<&Path>, bytes: &[u8]) -> Result<(), WriteError> {
    match path {
        Some(path) => write_atomically(path, bytes).map_err(|source| WriteError {
            target: path.display().to_string(),
            source,
            exit_code: None,
        }),
        None => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .map_err(|source| WriteError {
                    target: "stdout".to_string(),
                    source,
                    exit_code: None,
                })
        }
    }
}

/// Writes `bytes` to `path` without destroying what is there: a regular file
/// (or a new one) is replaced atomically; a device or a FIFO is written
/// through; a directory or a socket is refused. A symbolic link is followed,
/// so the file it points to is replaced, not the link.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let Some(meta) = meta.filter(|m| !m.is_file()) else {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        return replace_regular(&real, bytes);
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        Err(refused("is a directory; name a file inside it"))
    } else if kind.is_socket() {
        Err(refused("is a socket; name a file, a device or a FIFO"))
    } else {
        write_through(path, bytes)
    }
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

/// A device or a FIFO: opened and written, never created, truncated or renamed.
fn write_through(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = open(path, flags, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::NXIO {
            refused("is a FIFO that nobody reads")
        } else {
            io::Error::from(e)
        }
    })?;
    fcntl_setfl(&fd, fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    file.flush()
}

/// Writes a temporary file beside `path`, syncs it, and renames it into
/// place, so that a reader never sees half a file, nor an empty one after a
/// crash.
fn replace_regular(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes one line to stderr; a closed or full stderr is ignored, never a
/// panic (`eprintln!` panics there), since there is nowhere left to say it.
pub fn stderr_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
