//! A directory-format dump restored while it still arrives. Its tar stream is unpacked into a
//! private scratch folder by a thread of its own; `toc.dat` comes first, so the schema (pre-data)
//! is restored at once, and each table's data is loaded by `pg_restore --section=data`, up to
//! `jobs` at a time. A loader that is idle while a table's file is still being unpacked reads it
//! as it is written: the file is renamed aside (the unpacking writes on into it), a named pipe
//! takes its name, and a relay thread copies the growing file into the pipe until it is whole;
//! the unpacking never waits for a load. Files unpacked while every loader is busy are loaded
//! once one is free. Each file is removed once loaded. Once the stream has ended the rest of the
//! data section (sequence values, large objects) and then the post-data section (indexes,
//! constraints, triggers) follow with `pg_restore -j`. A download and the load thus overlap
//! instead of following each other, and the scratch folder holds only what is not loaded yet.
//!
//! The stream's checksum is known only at its end: the database loaded meanwhile is a temporary
//! one, trusted (compared, swapped in) only after the checksum matched. When a load fails while
//! the stream still arrives, the stream is read on to its end without being written, so a
//! corrupt download is reported as such rather than as pg_restore's complaint about it.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pipeline::tarball;
use crate::postgres::archive::{self, Toc, TocEntry};
use crate::postgres::{Pg, ToolFailure};

use super::{Load, table, unreadable};

/// pg_dump's sections in an archive's table of contents.
const PRE_DATA: i64 = 2;
const DATA: i64 = 3;

/// The size from which a table's file is worth streaming into an idle load as it is unpacked
/// (or an eighth of the backup, when that is less); smaller ones are loaded once whole, several
/// in one pg_restore.
const STREAM_FROM: u64 = 16 << 20;

/// What the unpacking thread and the loading threads tell the restore.
enum Event {
    /// A file is created and being written; its size.
    Begun(PathBuf, u64),
    /// A file is whole on disk.
    File(PathBuf),
    /// Relaying a growing file into its load's pipe failed.
    Relay(PathBuf, io::Error),
    /// The stream ended (the folder holding `toc.dat`), or broke off.
    End(io::Result<PathBuf>),
    /// A `pg_restore` of some tables' data ended; their files can go.
    Loaded { files: Vec<PathBuf>, result: std::result::Result<(), ToolFailure> },
}

/// A dump being unpacked: its folder, and the events of the thread that fills it.
pub struct Arriving {
    /// The folder holding `toc.dat`.
    path: PathBuf,
    events: Receiver<Event>,
    sender: Sender<Event>,
    worker: Option<JoinHandle<()>>,
    /// Set to make the thread stop reading; it ends with an error.
    stop: Arc<AtomicBool>,
    /// Cleared to make the thread read on without writing.
    keep: Arc<AtomicBool>,
    /// Whether the stream has ended (its `End` was received).
    ended: bool,
    scratch_dir: PathBuf,
    scratch: Option<tempfile::TempDir>,
    source: String,
    /// The stored size, when known.
    size: Option<u64>,
}

/// Starts unpacking `reader` (a tar of a directory-format dump) into the scratch folder and
/// returns once `toc.dat` is there, with its table of contents. The stored `size` must be free
/// there (the files stay compressed as pg_dump wrote them), else nothing is unpacked.
pub(super) fn start(reader: Box<dyn Read + Send>, source: &str, size: Option<u64>) -> Result<(Toc, Arriving)> {
    let (scratch_dir, free) = crate::scratch::free_space()?;
    if let Some(size) = size
        && free < size + crate::scratch::unpack_margin(size)
    {
        return Err(crate::failed!(
            "{source} is a directory-format dump: restoring it unpacks its files into {} first, which needs {} free there ({} stored plus a margin); only {} is free. Free space there, or set scratch_dir in pgtier.yml to a folder with room; nothing was changed",
            scratch_dir.display(),
            crate::ui::human_size(size + crate::scratch::unpack_margin(size)),
            crate::ui::human_size(size),
            crate::ui::human_size(free)
        ));
    }
    let scratch = crate::scratch::tempdir("restore")?;
    let (sender, events) = mpsc::channel();
    let (stop, keep) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(true)));
    let worker = {
        let (tx, stop, keep, into) = (sender.clone(), Arc::clone(&stop), Arc::clone(&keep), scratch.path().to_path_buf());
        std::thread::spawn(move || {
            let mut reader = Stoppable { inner: reader, stop };
            let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tarball::unpack_each(&mut reader, &into, &mut |step| match step {
                    tarball::Step::Begun(file, size) => {
                        let _ = tx.send(Event::Begun(file.to_path_buf(), size));
                        true
                    }
                    tarball::Step::Whole(file) => {
                        let _ = tx.send(Event::File(file.to_path_buf()));
                        keep.load(Ordering::SeqCst)
                    }
                })
            }));
            let _ = tx.send(Event::End(ended.unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked")))));
        })
    };
    let mut arriving = Arriving {
        path: PathBuf::new(),
        events,
        sender,
        worker: Some(worker),
        stop,
        keep,
        ended: false,
        scratch_dir,
        scratch: Some(scratch),
        source: source.to_string(),
        size,
    };
    // The table of contents is the first file of pgtier's tars; a tar made otherwise is
    // waited for whole.
    let toc_path = loop {
        match arriving.next()? {
            Event::File(f) if f.file_name().is_some_and(|n| n == tarball::FIRST) => break f,
            Event::End(Ok(folder)) => {
                arriving.ended = true;
                break folder.join(tarball::FIRST);
            }
            Event::End(Err(e)) => {
                arriving.ended = true;
                return Err(arriving.unpack_error(e));
            }
            _ => {}
        }
    };
    arriving.path = toc_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let head = std::fs::read(&toc_path).map_err(|e| crate::failed!("{}: {e}", toc_path.display()))?;
    let toc = match archive::parse(&head) {
        Ok((toc, _)) if toc.format == archive::ArchiveFormat::Directory => toc,
        Ok(_) => return Err(crate::failed!("{source}: its toc.dat is not of a directory-format dump; nothing was changed")),
        Err(why) => return Err(crate::failed!("{source}: cannot read its toc.dat ({why:?}); nothing was changed")),
    };
    Ok((toc, arriving))
}

impl Arriving {
    fn next(&mut self) -> Result<Event> {
        self.events.recv().map_err(|_| crate::failed!("unpacking {}: the unpacking thread ended without a word", self.source))
    }

    /// Waits for the whole stream: the folder then holds every file.
    pub(super) fn settle(mut self) -> Result<(PathBuf, tempfile::TempDir)> {
        while !self.ended {
            if let Event::End(ended) = self.next()? {
                self.ended = true;
                let folder = ended.map_err(|e| self.unpack_error(e))?;
                // A tar made by another tool may put toc.dat anywhere: its folder counts.
                if self.path.as_os_str().is_empty() {
                    self.path = folder;
                }
            }
        }
        self.join();
        Ok((self.path.clone(), self.scratch.take().expect("scratch folder")))
    }

    fn join(&mut self) {
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }

    /// Why the stream could not be unpacked; nothing was changed.
    fn unpack_error(&self, e: io::Error) -> Error {
        let source = &self.source;
        match e.kind() {
            io::ErrorKind::InvalidData => crate::failed!("{source}: {e}; nothing was changed"),
            io::ErrorKind::StorageFull => crate::failed!(
                "{source}: the scratch folder {} filled up while the dump's files were unpacked ({e}); free space there, or set scratch_dir in pgtier.yml to a folder with room; nothing was changed",
                self.scratch_dir.display()
            ),
            _ => unreadable(source, &e, "; nothing was changed"),
        }
    }

    /// Restores the dump into the empty database `db` as it arrives (see the module doc);
    /// `base` are pg_restore's options naming the database. `verify` checks the stream's
    /// checksum once it has ended: a corrupt stream is reported over the load's failure.
    pub(super) fn load(mut self, pg: &Pg, toc: &Toc, base: &[String], load: &Load, verify: &dyn Fn() -> Result<()>) -> Result<()> {
        let jobs = load.jobs.unwrap_or(1).max(1) as usize;
        let sections = effective_sections(toc);
        let wanted = |i: usize| !load.skip.contains(&toc.entries[i].dump_id);
        let folder = self.path.display().to_string();
        let whole = |section: &str, jobs: Option<usize>| -> Result<()> {
            let mut args = base.to_vec();
            args.push(format!("--section={section}"));
            if let Some(j) = jobs.filter(|j| *j > 1) {
                args.push(format!("--jobs={j}"));
            }
            let _list = match load.skip.is_empty() {
                true => None,
                false => Some(table::write_list(toc, |e| !load.skip.contains(&e.dump_id))?),
            };
            if let Some(l) = &_list {
                args.push(format!("--use-list={}", l.path().display()));
            }
            args.push(folder.clone());
            pg.spawn("pg_restore", None, &args, Stdio::null())?.wait()
        };
        // The schema: it needs only toc.dat. A failure here is not the stream's (its data is
        // not read yet): said at once, the download stopped.
        whole("pre-data", None)?;

        // Each table's data as its file arrives; the rest of the section once the stream ended.
        let mut by_file: HashMap<&str, usize> = HashMap::new();
        let mut late = Vec::new();
        for (i, e) in toc.entries.iter().enumerate().filter(|(i, _)| sections[*i] == DATA && wanted(*i)) {
            match (&e.file, e.desc.as_str()) {
                (Some(f), "TABLE DATA") => {
                    by_file.insert(f.as_str(), i);
                }
                _ => late.push(i),
            }
        }
        let stream_from = self.size.map_or(STREAM_FROM, |s| STREAM_FROM.min(s / 8));
        let mut ready: VecDeque<(usize, PathBuf, u64)> = VecDeque::new();
        // The data file of a table to load that is being written now, not yet streaming.
        let mut current: Option<(usize, PathBuf)> = None;
        // Files streaming into their loads, by the name their pipe took.
        let mut tails: HashMap<PathBuf, Arc<Tail>> = HashMap::new();
        let mut running = 0usize;
        let pids: Mutex<Vec<u32>> = Mutex::new(Vec::new());
        let stop_loads = |pids: &Mutex<Vec<u32>>| {
            for pid in pids.lock().expect("pids").iter() {
                // SAFETY: kill has no memory preconditions; the pid is a child not yet reaped.
                unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
            }
        };
        // The first failure, and whether it was a load's (then the stream is read on to its end
        // so its checksum can speak first).
        let mut failure: Option<(Error, bool)> = None;
        let (sender, stop) = (self.sender.clone(), Arc::clone(&self.stop));
        std::thread::scope(|s| -> Result<()> {
            let launch = |entries: &[&TocEntry], files: Vec<PathBuf>| -> Result<()> {
                let list = table::write_list_of(entries)?;
                let mut args = base.to_vec();
                args.extend(["--section=data".to_string(), format!("--use-list={}", list.path().display()), folder.clone()]);
                let (tx, pids) = (sender.clone(), &pids);
                s.spawn(move || {
                    let result = match pg.spawn("pg_restore", None, &args, Stdio::null()) {
                        Ok(run) => {
                            let pid = run.child.id();
                            pids.lock().expect("pids").push(pid);
                            let ended = run.finish();
                            pids.lock().expect("pids").retain(|p| *p != pid);
                            ended
                        }
                        Err(e) => Err(ToolFailure { tool: "pg_restore".into(), code: Some(-1), stderr: e.to_string() }),
                    };
                    drop(list);
                    let _ = tx.send(Event::Loaded { files, result });
                });
                Ok(())
            };
            let mut step = || -> Result<bool> {
                while failure.is_none() && running < jobs {
                    if !ready.is_empty() {
                        let batch = take_batch(&mut ready, jobs - running);
                        let entries: Vec<&TocEntry> = batch.iter().map(|(i, _, _)| &toc.entries[*i]).collect();
                        launch(&entries, batch.into_iter().map(|(_, f, _)| f).collect())?;
                    } else if let Some((i, file)) = current.take() {
                        match stream_aside(&file) {
                            Ok(part) => {
                                tracing::debug!("{} streams straight into its load as it arrives", file.display());
                                let tail = Arc::new(Tail::default());
                                tails.insert(file.clone(), Arc::clone(&tail));
                                let (tx, stop) = (sender.clone(), Arc::clone(&stop));
                                let pipe = file.clone();
                                s.spawn(move || {
                                    if let Err(e) = relay(&part, &pipe, &tail, &stop) {
                                        let _ = tx.send(Event::Relay(pipe, e));
                                    }
                                    let _ = std::fs::remove_file(&part);
                                });
                                launch(&[&toc.entries[i]], vec![file])?;
                            }
                            Err(e) => {
                                // Loaded once whole, as when every loader is busy.
                                tracing::debug!("{} cannot stream ({e}): loaded once whole", file.display());
                                if let Some(name) = toc.entries[i].file.as_deref() {
                                    by_file.insert(name, i);
                                }
                                continue;
                            }
                        }
                    } else {
                        break;
                    }
                    running += 1;
                }
                if running == 0 && self.ended && (ready.is_empty() || failure.is_some()) {
                    return Ok(false);
                }
                let fail = match self.next()? {
                    Event::Begun(f, size) => {
                        // A small file is soon whole, and loaded with others in one pg_restore.
                        if size >= stream_from
                            && let Some(i) = entry_of(&f).and_then(|n| by_file.remove(n))
                        {
                            current = Some((i, f));
                        }
                        None
                    }
                    Event::File(f) => {
                        if let Some(tail) = tails.get(&f) {
                            tail.whole.store(true, Ordering::SeqCst);
                        } else if let Some(i) =
                            current.take_if(|(_, c)| *c == f).map(|(i, _)| i).or_else(|| entry_of(&f).and_then(|n| by_file.remove(n)))
                        {
                            let len = std::fs::metadata(&f).map_or(0, |m| m.len());
                            ready.push_back((i, f, len));
                        }
                        None
                    }
                    Event::Relay(f, e) => Some((crate::failed!("{}: streaming {} into its load: {e}", self.source, f.display()), false)),
                    Event::End(Ok(_)) => {
                        self.ended = true;
                        None
                    }
                    Event::End(Err(e)) => {
                        self.ended = true;
                        tracing::debug!("the stream broke off: {e}");
                        Some((self.unpack_error(e), false))
                    }
                    Event::Loaded { files, result } => {
                        running -= 1;
                        for f in files {
                            if let Some(tail) = tails.remove(&f) {
                                tail.gone.store(true, Ordering::SeqCst);
                            }
                            let _ = std::fs::remove_file(f);
                        }
                        result.err().map(|f| (Error::from(f), true))
                    }
                };
                if let Some(fail) = fail
                    && failure.is_none()
                {
                    // Stop the other loads; the stream is read on (a load failed) or is over.
                    self.keep.store(false, Ordering::SeqCst);
                    stop_loads(&pids);
                    failure = Some(fail);
                }
                Ok(true)
            };
            let ended = loop {
                match step() {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            if ended.is_err() {
                // Nothing waits on a relay or a load now: they end before the scope does.
                for tail in tails.values() {
                    tail.gone.store(true, Ordering::SeqCst);
                }
                stop_loads(&pids);
            }
            ended
        })?;
        self.join();
        if let Some((e, by_load)) = failure {
            if by_load {
                tracing::info!("a load failed while the backup arrived ({e}); its checksum, read to the end, is checked before saying why");
                verify()?;
            }
            return Err(e);
        }
        // Everything below runs after the stream ended: a corrupt one is said first.
        let after = |done: Result<()>| done.map_err(|e| verify().err().unwrap_or(e));
        if let Some(missing) = by_file.values().min() {
            verify()?;
            let e = &toc.entries[*missing];
            return Err(crate::failed!(
                "{}: the dump holds no file {} for the data of {} {}; nothing was changed",
                self.source,
                e.file.as_deref().unwrap_or_default(),
                e.desc,
                e.tag
            ));
        }
        if !late.is_empty() {
            let entries: Vec<&TocEntry> = late.iter().map(|i| &toc.entries[*i]).collect();
            let list = table::write_list_of(&entries)?;
            let mut args = base.to_vec();
            args.extend(["--section=data".to_string(), format!("--use-list={}", list.path().display())]);
            args.push(folder.clone());
            after(pg.spawn("pg_restore", None, &args, Stdio::null()).and_then(|r| r.wait()))?;
        }
        after(whole("post-data", Some(jobs)))
    }
}

impl Drop for Arriving {
    /// A restore that ends early stops the unpacking before its folder goes.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.join();
    }
}

/// The entry a data file holds: `2562.dat.gz` is `2562.dat`'s (pg_dump names the file in
/// `toc.dat` without its compression suffix).
fn data_file_of(name: &str) -> &str {
    [".gz", ".zst", ".lz4"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}

/// The name toc.dat gives the data file at `path`.
fn entry_of(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str()).map(data_file_of)
}

/// Each entry's section as pg_restore's `--section` sees it: an entry of no section (an ACL,
/// say) belongs to the one before it.
fn effective_sections(toc: &Toc) -> Vec<i64> {
    let mut current = PRE_DATA;
    toc.entries
        .iter()
        .map(|e| {
            if e.section > 1 {
                current = e.section;
            }
            current
        })
        .collect()
}

/// The next files to load in one pg_restore: in arrival order (the largest first), about an
/// equal share of what is ready for each of the `free` loaders, at least one.
fn take_batch(ready: &mut VecDeque<(usize, PathBuf, u64)>, free: usize) -> Vec<(usize, PathBuf, u64)> {
    let share = ready.iter().map(|(_, _, len)| len).sum::<u64>() / free.max(1) as u64;
    let mut batch = vec![ready.pop_front().expect("a file is ready")];
    let mut bytes = batch[0].2;
    while let Some(next) = ready.front()
        && bytes + next.2 <= share
    {
        bytes += next.2;
        batch.push(ready.pop_front().expect("front"));
    }
    batch
}

/// A file streaming into its load: whether it is whole, whether its load has ended.
#[derive(Default)]
struct Tail {
    whole: AtomicBool,
    gone: AtomicBool,
}

/// Moves the file being written at `file` aside (the writing goes on into it under its new
/// name) and puts a named pipe in its place, for a load to read; returns the new name.
fn stream_aside(file: &Path) -> io::Result<PathBuf> {
    let mut part = file.as_os_str().to_owned();
    part.push(".arriving");
    let part = PathBuf::from(part);
    std::fs::rename(file, &part)?;
    let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: c is a NUL-terminated path that lives across the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        let e = io::Error::last_os_error();
        std::fs::rename(&part, file)?;
        return Err(e);
    }
    Ok(part)
}

/// Copies the file growing at `part` into the pipe at `pipe` as it is written, until it is
/// whole (then the pipe is closed: its reader sees the end) or its load has ended.
fn relay(part: &Path, pipe: &Path, tail: &Tail, stop: &AtomicBool) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let over = || tail.gone.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst);
    let mut from = File::open(part)?;
    // The load opens the pipe once its pg_restore reaches the file.
    let mut to = loop {
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(pipe) {
            Ok(to) => break to,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && !over() => std::thread::sleep(Duration::from_millis(2)),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    // SAFETY: fcntl on a descriptor this function owns; writes block again.
    unsafe { libc::fcntl(to.as_raw_fd(), libc::F_SETFL, 0) };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let whole = tail.whole.load(Ordering::SeqCst);
        match from.read(&mut buf)? {
            0 if whole => return Ok(()),
            0 if over() => return Ok(()),
            0 => std::thread::sleep(Duration::from_millis(3)),
            n => match to.write_all(&buf[..n]) {
                Ok(()) => {}
                // The load ended without reading it all: it says why.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe || over() => return Ok(()),
                Err(e) => return Err(e),
            },
        }
    }
}

/// Reads until told to stop.
struct Stoppable {
    inner: Box<dyn Read + Send>,
    stop: Arc<AtomicBool>,
}

impl Read for Stoppable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(crate::signals::cancelled());
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_are_named_without_their_compression() {
        assert_eq!(data_file_of("2562.dat.gz"), "2562.dat");
        assert_eq!(data_file_of("2562.dat.zst"), "2562.dat");
        assert_eq!(data_file_of("2562.dat"), "2562.dat");
        assert_eq!(data_file_of("toc.dat"), "toc.dat");
    }

    #[test]
    fn batches_share_what_is_ready_among_the_free_loaders() {
        let ready = |sizes: &[u64]| sizes.iter().enumerate().map(|(i, l)| (i, PathBuf::from(i.to_string()), *l)).collect::<VecDeque<_>>();
        let mut r = ready(&[100, 10, 10, 10, 10]);
        assert_eq!(take_batch(&mut r, 2).len(), 1, "the largest alone");
        assert_eq!(take_batch(&mut r, 1).len(), 4, "one loader free: the rest");
        let mut r = ready(&[10, 10, 10, 10]);
        assert_eq!(take_batch(&mut r, 2).len(), 2);
        assert_eq!(take_batch(&mut r, 2).len(), 1);
    }
}
