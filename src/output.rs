//! Where connleak's output goes: stdout, or the file named by `--output` or
//! `--save`, without ever destroying what was there.
//!
//! A regular file is replaced atomically (a temporary file beside it, synced,
//! renamed into place), so a reader such as node_exporter's textfile
//! collector never sees half a file, nor an empty one after a crash. connleak
//! runs as root, often in a directory others write to: the temporary file's
//! name is random and it is created exclusively (`tempfile`), so a symbolic
//! link planted under a name it might use is never written through. A
//! symbolic link at the target is followed to its file, which is replaced
//! (or created, when the link dangles); the link stays a link. What is
//! not a regular file is never renamed over: a device (`/dev/null`,
//! `/dev/stdout`) or a FIFO is written through, a directory or a socket is
//! refused. A FIFO nobody reads is refused at once rather than waited on (a
//! cron job must not hang), so it is opened non-blocking and switched back to
//! blocking writes once open.
//!
//! A stdout closed when connleak started (`connleak >&-`) is an error, said
//! on stderr: Rust's runtime opens `/dev/null` there before `main`, which
//! would make every write succeed and the run exit 0 having written
//! nothing, so the binary looks at fd 1 first ([`note_closed_stdout`]).

use rustix::fs::{Mode, OFlags, fcntl_getfl, fcntl_setfl, open};
use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Whether fd 1 was closed when the process started.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Notes whether fd 1 is closed. For the binary's `.init_array`: it must
/// run before Rust's runtime opens `/dev/null` on a closed fd 1.
pub extern "C" fn note_closed_stdout() {
    // SAFETY: F_GETFD takes no pointer and changes nothing; it fails (EBADF)
    // only when fd 1 is not open.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
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
        None => write_stdout(bytes).map_err(|source| WriteError {
            target: "stdout".to_string(),
            source,
            exit_code: None,
        }),
    }
}

/// Writes to stdout; EBADF when it was closed at start (see the module doc).
fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    let mut stdout = io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
}

/// Writes `bytes` to `path` without destroying what is there: a regular file
/// (or a new one) is replaced atomically; a device or a FIFO is written
/// through; a directory or a socket is refused. A symbolic link is followed,
/// so the file it points to is replaced (created, if the link dangles), not
/// the link.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let Some(meta) = meta.filter(|m| !m.is_file()) else {
        return replace_regular(&follow_links(path)?, bytes);
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

/// How many symbolic links a target may go through, as the kernel allows.
const MAX_LINKS: usize = 40;

/// The file `path` names once its symbolic links are followed, whether or
/// not that file exists yet: a dangling link names the file to create.
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::read_link(&path) {
            // A relative link is relative to the directory holding it.
            Ok(to) => path = path.parent().unwrap_or(Path::new("")).join(to),
            // EINVAL: not a link; NotFound: a file to create.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::NotFound
                ) =>
            {
                return Ok(path);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// Writes a temporary file beside `path`, syncs it, and renames it into
/// place, so that a reader never sees half a file, nor an empty one after a
/// crash. The temporary file has a random name (hidden, not `*.prom`, so
/// that a collector reading the directory skips it), is created with
/// `O_EXCL` (never through a link) and with the mode a new file gets, and
/// is removed if anything fails.
fn replace_regular(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .rand_bytes(12)
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes one line to stderr; a closed or full stderr is ignored, never a
/// panic (`eprintln!` panics there), since there is nowhere left to say it.
pub fn stderr_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
