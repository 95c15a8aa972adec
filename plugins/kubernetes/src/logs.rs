//! Following a pod's output: the container log streamed with `follow`, to
//! the sink as it arrives (as stdout: Kubernetes merges the streams), and
//! resumed without duplicates or gaps when the stream breaks.
//!
//! The method: logs are requested with `timestamps=true`, so the kubelet
//! starts every line with its RFC 3339 timestamp (nanoseconds) and a space.
//! The [`LogCursor`] remembers the timestamp `T` of the current line, how
//! many whole lines with exactly `T` were passed (`k`), and how many bytes
//! of the current, unfinished line were (`b`). A resumed stream asks for
//! `sinceTime` = `T` cut to the second (the API's precision; the kubelet
//! includes lines at or after it), then drops lines before `T`, the first
//! `k` lines at `T` and the first `b` bytes of the next one. Counting lines
//! from the start instead would break when the kubelet rotates the log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncBufRead, AsyncBufReadExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use playground_executors::{LogSink, OutputStream};
use tokio::sync::watch;

use crate::cluster::{describe, is_not_found};
use crate::manifest::CONTAINER_NAME;
use crate::status::PodView;

/// A timestamp header is at most this long (`2006-01-02T15:04:05.999999999Z`
/// with an offset is 35 bytes).
const MAX_HEADER: usize = 40;

/// How often reading what is left of an ended container's log may fail.
const MAX_LAST_PASS_FAILURES: u32 = 5;

/// Where a pod's output was read up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogCursor {
    /// The timestamp of the current (or last) line.
    at: Option<Timestamp>,
    /// Whole lines with timestamp `at` already passed.
    n_done_at: usize,
    /// Bytes of the unfinished line (timestamp `at`, after those
    /// `n_done_at`) already passed.
    partial: usize,
}

/// One stream's parse state; the skip state of a resumed stream.
#[derive(Debug)]
pub(crate) struct StreamParser {
    header: Vec<u8>,
    in_header: bool,
    /// Content bytes of the current line still to drop.
    drop: Skip,
    /// Before the resume point: lines at the cursor's timestamp seen.
    resuming: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    Line,
    Bytes(usize),
}

impl LogCursor {
    /// The `sinceTime` of a stream that resumes at this cursor: the current
    /// line's timestamp cut to the second.
    pub(crate) fn since(&self) -> Option<Timestamp> {
        self.at
            .map(|at| Timestamp::from_second(at.as_second()).unwrap_or(at))
    }

    /// A parser for a stream that starts at `since()` (or at the start).
    pub(crate) fn parser(&self) -> StreamParser {
        StreamParser {
            header: Vec::new(),
            in_header: true,
            drop: Skip::Nothing,
            resuming: self.at.map(|_| 0),
        }
    }
}

impl StreamParser {
    /// Takes a chunk of the stream: moves the cursor and returns the
    /// program's bytes in it that were not passed before.
    pub(crate) fn feed(&mut self, cursor: &mut LogCursor, mut bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        while !bytes.is_empty() {
            if self.in_header {
                let room = MAX_HEADER - self.header.len();
                let window = &bytes[..bytes.len().min(room + 1)];
                match window.iter().position(|&b| b == b' ' || b == b'\n') {
                    Some(end) => {
                        self.header.extend_from_slice(&bytes[..end]);
                        let timestamp = std::str::from_utf8(&self.header)
                            .ok()
                            .and_then(|h| h.parse::<Timestamp>().ok());
                        match timestamp {
                            Some(at) if bytes[end] == b' ' => {
                                bytes = &bytes[end + 1..];
                                self.header.clear();
                                self.start_line(cursor, Some(at), &mut out);
                            }
                            _ => {
                                bytes = &bytes[end..];
                                self.start_line(cursor, None, &mut out);
                            }
                        }
                    }
                    None if window.len() > room => {
                        // Too long for a timestamp: the line is all content.
                        self.header.extend_from_slice(&bytes[..room]);
                        bytes = &bytes[room..];
                        self.start_line(cursor, None, &mut out);
                    }
                    None => {
                        self.header.extend_from_slice(window);
                        bytes = &bytes[window.len()..];
                    }
                }
                continue;
            }
            let line_end = bytes.iter().position(|&b| b == b'\n').map(|i| i + 1);
            let take = line_end.unwrap_or(bytes.len());
            let (chunk, rest) = bytes.split_at(take);
            bytes = rest;
            let passed = match self.drop {
                Skip::Line => &chunk[..0],
                Skip::Bytes(n) => {
                    let dropped = n.min(chunk.len());
                    self.drop = if dropped == n {
                        Skip::Nothing
                    } else {
                        Skip::Bytes(n - dropped)
                    };
                    &chunk[dropped..]
                }
                Skip::Nothing => chunk,
            };
            if self.drop != Skip::Line {
                out.extend_from_slice(passed);
                cursor.partial += passed.len();
            }
            if line_end.is_some() {
                if self.drop != Skip::Line {
                    cursor.n_done_at += 1;
                    cursor.partial = 0;
                }
                self.drop = Skip::Nothing;
                self.in_header = true;
            }
        }
        out
    }

    /// A line begins (its header read): decides what of it to drop and
    /// moves the cursor to it.
    fn start_line(&mut self, cursor: &mut LogCursor, at: Option<Timestamp>, out: &mut Vec<u8>) {
        self.in_header = false;
        // A header that is no timestamp is part of the line.
        let header = std::mem::take(&mut self.header);
        let Some(at) = at else {
            self.drop = Skip::Nothing;
            self.resuming = None;
            out.extend_from_slice(&header);
            cursor.partial += header.len();
            return;
        };
        if let (Some(n_seen), Some(cursor_at)) = (self.resuming, cursor.at) {
            if at < cursor_at {
                self.drop = Skip::Line;
                return;
            }
            if at == cursor_at {
                self.resuming = Some(n_seen + 1);
                if n_seen < cursor.n_done_at {
                    self.drop = Skip::Line;
                    return;
                }
                // The line the cursor is in: drop what was passed of it.
                self.resuming = None;
                self.drop = Skip::Bytes(cursor.partial);
                if cursor.partial == 0 {
                    self.drop = Skip::Nothing;
                }
                return;
            }
            self.resuming = None;
        }
        self.drop = Skip::Nothing;
        if cursor.at != Some(at) {
            cursor.at = Some(at);
            cursor.n_done_at = 0;
        }
        cursor.partial = 0;
    }
}

/// The last problem reading the log, for the run's closing notes.
pub(crate) type LastError = Arc<Mutex<Option<String>>>;

/// Follows the pod in `view` from the first byte of its output (or from
/// `cursor`) until its container ended and all output was read, or the
/// pod is gone. Writes to `sink` as output arrives.
pub(crate) async fn follow(
    pods: Api<Pod>,
    mut view: watch::Receiver<PodView>,
    sink: Arc<dyn LogSink>,
    last_error: LastError,
) {
    let mut cursor = LogCursor::default();
    let mut n_failures: u32 = 0;
    let mut n_empty: u32 = 0;
    loop {
        let snapshot = loop {
            let snapshot = view.borrow_and_update().clone();
            if snapshot.pod_name.is_some() && snapshot.started {
                break snapshot;
            }
            // A container that never started wrote nothing.
            if snapshot.run_ended || view.changed().await.is_err() {
                return;
            }
        };
        let pod_name = snapshot.pod_name.clone().unwrap_or_default();
        let last_pass = snapshot.terminated || snapshot.run_ended;
        match read_once(&pods, &pod_name, &mut cursor, sink.as_ref()).await {
            Ok(n_bytes) => {
                n_failures = 0;
                *last_error.lock().expect("log error lock") = None;
                if last_pass {
                    return;
                }
                // The stream ended while the container seemed to run: it
                // ended meanwhile, or the stream broke. Read on from the
                // cursor once the pod changes or after a short wait.
                n_empty = if n_bytes == 0 { n_empty + 1 } else { 0 };
                let wait = Duration::from_millis(200 * u64::from(n_empty.min(25)) + 100);
                let _ = tokio::time::timeout(wait, view.changed()).await;
            }
            Err(ReadError::Gone) => return,
            Err(ReadError::Other(reason)) => {
                *last_error.lock().expect("log error lock") = Some(reason);
                n_failures += 1;
                if last_pass && n_failures >= MAX_LAST_PASS_FAILURES {
                    return;
                }
                let wait = Duration::from_millis(100 * 2u64.pow(n_failures.min(5)));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

enum ReadError {
    /// The pod is gone: no more output will come.
    Gone,
    Other(String),
}

/// Reads one log stream to its end; the number of bytes passed to the sink.
async fn read_once(
    pods: &Api<Pod>,
    pod_name: &str,
    cursor: &mut LogCursor,
    sink: &dyn LogSink,
) -> Result<usize, ReadError> {
    let params = LogParams {
        container: Some(CONTAINER_NAME.to_owned()),
        follow: true,
        timestamps: true,
        since_time: cursor.since(),
        ..Default::default()
    };
    let stream = match pods.log_stream(pod_name, &params).await {
        Ok(stream) => stream,
        Err(e) if is_not_found(&e) => return Err(ReadError::Gone),
        // A pod whose container has not started yet answers 400.
        Err(e) => return Err(ReadError::Other(describe(&e))),
    };
    let mut stream: std::pin::Pin<Box<dyn AsyncBufRead + Send>> = Box::pin(stream);
    let mut parser = cursor.parser();
    let mut n_passed = 0;
    loop {
        let chunk = match stream.fill_buf().await {
            Ok([]) => return Ok(n_passed),
            Ok(chunk) => chunk,
            Err(e) => return Err(ReadError::Other(format!("the log stream broke: {e}"))),
        };
        let n = chunk.len();
        let passed = parser.feed(cursor, chunk);
        stream.as_mut().consume(n);
        if !passed.is_empty() {
            n_passed += passed.len();
            sink.write(OutputStream::Stdout, &passed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in chunks of `size` bytes.
    fn feed(cursor: &mut LogCursor, stream: &str, size: usize) -> String {
        let mut parser = cursor.parser();
        let mut out = Vec::new();
        for chunk in stream.as_bytes().chunks(size) {
            out.extend(parser.feed(cursor, chunk));
        }
        String::from_utf8(out).unwrap()
    }

    const T1: &str = "2026-01-02T03:04:05.1Z";
    const T2: &str = "2026-01-02T03:04:05.2Z";
    const T3: &str = "2026-01-02T03:04:06.000000001Z";

    #[test]
    fn timestamps_are_removed_in_any_chunking() {
        let stream = format!("{T1} one\n{T2} two\n{T2} \n{T3} three");
        for size in [1, 2, 3, 7, 100] {
            let mut cursor = LogCursor::default();
            assert_eq!(
                feed(&mut cursor, &stream, size),
                "one\ntwo\n\nthree",
                "{size}"
            );
        }
    }

    #[test]
    fn a_resumed_stream_passes_only_what_is_new() {
        let full = format!("{T1} one\n{T2} two\n{T2} same time\n{T3} three, long\n{T3} four\n");
        // Break after every possible byte, resume with what the API sends
        // since the cursor's second.
        for cut in 0..full.len() {
            let mut cursor = LogCursor::default();
            let mut out = feed(&mut cursor, &full[..cut], 5);
            let since = cursor.since();
            let resumed: String = full
                .lines()
                .filter(|line| {
                    let at: Timestamp = line.split(' ').next().unwrap().parse().unwrap();
                    since.is_none_or(|since| at >= since)
                })
                .map(|line| format!("{line}\n"))
                .collect();
            out.push_str(&feed(&mut cursor, &resumed, 3));
            assert_eq!(
                out, "one\ntwo\nsame time\nthree, long\nfour\n",
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn since_is_cut_to_the_second() {
        let mut cursor = LogCursor::default();
        feed(&mut cursor, &format!("{T3} x\n"), 100);
        assert_eq!(cursor.since().unwrap().to_string(), "2026-01-02T03:04:06Z");
    }

    #[test]
    fn lines_without_timestamps_pass_whole() {
        let mut cursor = LogCursor::default();
        assert_eq!(
            feed(&mut cursor, "no timestamp here\nx\n", 4),
            "no timestamp here\nx\n"
        );
    }
}
