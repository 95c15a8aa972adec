//! The log pipeline every run's output goes through: bytes → lines (partial
//! lines joined across chunks, CRLF folded, invalid UTF-8 replaced, very
//! long lines split), numbered by a per-run `seq` from 1 without gaps, and
//! capped at the environment's `maxLogBytes` (past the cap output is dropped
//! and one SYSTEM line says so; the run goes on). Values given to
//! [`LogPipeline::mask`] (a run's credentials) become `****` in every line,
//! also when the program wrote them across several chunks.

use crate::OutputStream;

/// Lines longer than this are split into several.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Which stream a numbered line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineStream {
    Stdout,
    Stderr,
    /// Written by Playground itself.
    System,
}

impl From<OutputStream> for LineStream {
    fn from(stream: OutputStream) -> Self {
        match stream {
            OutputStream::Stdout => LineStream::Stdout,
            OutputStream::Stderr => LineStream::Stderr,
        }
    }
}

/// One line of a run's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberedLine {
    pub seq: i64,
    pub stream: LineStream,
    pub line: String,
}

/// A line's text: invalid UTF-8 and NUL characters (which databases do not
/// store) become U+FFFD.
fn text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text.into_owned()
    }
}

/// What masking replaces a secret value with.
pub const MASK: &str = "****";

/// Splits one stream's bytes into lines.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, mut bytes: &[u8], secrets: &[Vec<u8>], lines: &mut Vec<String>) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..newline]);
            if self.partial.last() == Some(&b'\r') {
                self.partial.pop();
            }
            self.drain_long(secrets, lines);
            lines.push(text(&self.partial));
            self.partial.clear();
            bytes = &bytes[newline + 1..];
        }
        self.partial.extend_from_slice(bytes);
        self.drain_long(secrets, lines);
    }

    /// Emits full-size pieces of an over-long partial line, cut at a UTF-8
    /// character boundary and never inside a secret value (which would let
    /// its two halves through unmasked).
    fn drain_long(&mut self, secrets: &[Vec<u8>], lines: &mut Vec<String>) {
        while self.partial.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while cut > MAX_LINE_BYTES - 4 && (self.partial[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            if let Some(start) = secret_across(&self.partial, cut, secrets) {
                if start == 0 {
                    // A secret longer than a line: wait for all of it.
                    return;
                }
                cut = start;
            }
            let rest = self.partial.split_off(cut);
            lines.push(text(&self.partial));
            self.partial = rest;
        }
    }

    fn finish(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let line = text(&self.partial);
        self.partial.clear();
        Some(line)
    }
}

/// Where a secret that spans byte `cut` of `bytes` starts, if one does.
fn secret_across(bytes: &[u8], cut: usize, secrets: &[Vec<u8>]) -> Option<usize> {
    secrets
        .iter()
        .filter(|s| s.len() > 1)
        .filter_map(|secret| {
            let from = cut.saturating_sub(secret.len() - 1);
            let to = (cut + secret.len() - 1).min(bytes.len());
            bytes[from..to]
                .windows(secret.len())
                .position(|w| w == secret.as_slice())
                .map(|at| from + at)
        })
        .min()
}

/// A run's log as it is written: splitting, numbering and the cap.
#[derive(Debug)]
pub struct LogPipeline {
    next_seq: i64,
    max_bytes: u64,
    used_bytes: u64,
    truncated: bool,
    stdout: LineSplitter,
    stderr: LineSplitter,
    scratch: Vec<String>,
    /// Values to mask, longest first, each also line by line.
    secrets: Vec<Vec<u8>>,
    /// Lines of each stream still to drop because they are already stored
    /// (a plugin that reattaches replays a run's output from the start).
    replayed: [u64; 2],
}

impl LogPipeline {
    /// A pipeline for a new run.
    pub fn new(max_bytes: u64) -> Self {
        Self::resume(0, max_bytes, 0)
    }

    /// A pipeline that continues a log whose last line is `last_seq` and
    /// which has used `used_bytes` of its cap (after a server restart).
    pub fn resume(last_seq: i64, max_bytes: u64, used_bytes: u64) -> Self {
        Self {
            next_seq: last_seq + 1,
            max_bytes,
            used_bytes,
            truncated: used_bytes >= max_bytes && max_bytes > 0,
            stdout: LineSplitter::default(),
            stderr: LineSplitter::default(),
            scratch: Vec::new(),
            secrets: Vec::new(),
            replayed: [0, 0],
        }
    }

    /// Masks these values (a run's credentials) in every line from now on.
    /// A value of several lines is also masked line by line.
    pub fn mask<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        for value in values {
            let pieces = std::iter::once(value).chain(value.lines());
            for piece in pieces.map(|p| p.trim_end_matches('\r')) {
                if !piece.is_empty() && !self.secrets.iter().any(|s| s == piece.as_bytes()) {
                    self.secrets.push(piece.as_bytes().to_vec());
                }
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    fn masked(&self, line: String) -> String {
        let mut line = line;
        for secret in &self.secrets {
            if let Ok(secret) = std::str::from_utf8(secret)
                && line.contains(secret)
            {
                line = line.replace(secret, MASK);
            }
        }
        line
    }

    /// Drops the first `stdout` and `stderr` lines of each stream: they are
    /// stored already and a reattaching plugin replays them.
    pub fn skip_replayed(&mut self, stdout: u64, stderr: u64) {
        self.replayed = [stdout, stderr];
    }

    /// Whether output has been dropped because of the cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Bytes of program output accepted so far (line bytes plus newlines).
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// The seq the next line will get.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Feeds a chunk of program output; complete lines go to `out`.
    pub fn write(&mut self, stream: OutputStream, bytes: &[u8], out: &mut Vec<NumberedLine>) {
        let mut lines = std::mem::take(&mut self.scratch);
        match stream {
            OutputStream::Stdout => self.stdout.push(bytes, &self.secrets, &mut lines),
            OutputStream::Stderr => self.stderr.push(bytes, &self.secrets, &mut lines),
        }
        for line in lines.drain(..) {
            self.accept(stream.into(), line, out);
        }
        self.scratch = lines;
    }

    /// A SYSTEM line (not counted against the cap).
    pub fn system(&mut self, line: &str, out: &mut Vec<NumberedLine>) {
        self.push(LineStream::System, text(line.as_bytes()), out);
    }

    /// Flushes unterminated last lines of both streams.
    pub fn finish(&mut self, out: &mut Vec<NumberedLine>) {
        if let Some(line) = self.stdout.finish() {
            self.accept(LineStream::Stdout, line, out);
        }
        if let Some(line) = self.stderr.finish() {
            self.accept(LineStream::Stderr, line, out);
        }
    }

    fn accept(&mut self, stream: LineStream, line: String, out: &mut Vec<NumberedLine>) {
        let replayed = match stream {
            LineStream::Stdout => &mut self.replayed[0],
            LineStream::Stderr => &mut self.replayed[1],
            LineStream::System => &mut 0,
        };
        if *replayed > 0 {
            *replayed -= 1;
            return;
        }
        if self.truncated {
            return;
        }
        let cost = line.len() as u64 + 1;
        if self.used_bytes + cost > self.max_bytes {
            self.truncated = true;
            let notice = format!(
                "output truncated: the run printed more than {} bytes (the environment's maxLogBytes); further output is dropped while the run continues",
                self.max_bytes
            );
            self.push(LineStream::System, notice, out);
            return;
        }
        self.used_bytes += cost;
        self.push(stream, line, out);
    }

    fn push(&mut self, stream: LineStream, line: String, out: &mut Vec<NumberedLine>) {
        let line = if self.secrets.is_empty() {
            line
        } else {
            self.masked(line)
        };
        out.push(NumberedLine {
            seq: self.next_seq,
            stream,
            line,
        });
        self.next_seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_even_across_chunks_and_long_line_cuts() {
        let mut pipeline = LogPipeline::new(1 << 30);
        pipeline.mask(["s3cr3t-value", "line one\nline two"]);
        let mut out = Vec::new();
        pipeline.write(OutputStream::Stdout, b"token=s3cr", &mut out);
        pipeline.write(OutputStream::Stdout, b"3t-value end\n", &mut out);
        pipeline.write(OutputStream::Stderr, b"key: line two\n", &mut out);
        // A secret right where a long line is cut.
        let mut long = vec![b'x'; MAX_LINE_BYTES - 5];
        long.extend_from_slice(b"s3cr3t-value tail\n");
        pipeline.write(OutputStream::Stdout, &long, &mut out);
        pipeline.system("the value s3cr3t-value in a notice", &mut out);
        let text: Vec<&str> = out.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(text[0], "token=**** end");
        assert_eq!(text[1], "key: ****");
        let joined = text.join("");
        assert!(!joined.contains("s3cr3t"), "{joined:?}");
        assert!(!joined.contains("3t-value"), "{joined:?}");
        assert!(joined.contains("****"));
        assert_eq!(text.last().copied(), Some("the value **** in a notice"));
    }

    #[test]
    fn replayed_lines_already_stored_are_dropped_per_stream() {
        // Two stdout lines and one stderr line are stored (seq 1..=4 with a
        // SYSTEM line); the plugin replays everything from the start.
        let mut pipeline = LogPipeline::resume(4, 1 << 20, 12);
        pipeline.skip_replayed(2, 1);
        let mut out = Vec::new();
        pipeline.write(OutputStream::Stdout, b"one\ntwo\nthr", &mut out);
        pipeline.write(OutputStream::Stderr, b"err\nerr 2\n", &mut out);
        pipeline.write(OutputStream::Stdout, b"ee\n", &mut out);
        assert_eq!(
            out.iter()
                .map(|l| (l.seq, l.stream, l.line.as_str()))
                .collect::<Vec<_>>(),
            [
                (5, LineStream::Stderr, "err 2"),
                (6, LineStream::Stdout, "three"),
            ]
        );
        assert_eq!(pipeline.used_bytes(), 12 + 6 + 6);
    }

    fn lines(out: &[NumberedLine]) -> Vec<(&str, LineStream)> {
        out.iter().map(|l| (l.line.as_str(), l.stream)).collect()
    }

    #[test]
    fn partial_lines_join_across_chunks_and_crlf_folds() {
        let mut pipeline = LogPipeline::new(1 << 20);
        let mut out = Vec::new();
        pipeline.write(OutputStream::Stdout, b"hel", &mut out);
        assert!(out.is_empty());
        pipeline.write(OutputStream::Stdout, b"lo\r\nwor", &mut out);
        pipeline.write(OutputStream::Stdout, b"ld\nlast", &mut out);
        pipeline.finish(&mut out);
        assert_eq!(
            lines(&out),
            [
                ("hello", LineStream::Stdout),
                ("world", LineStream::Stdout),
                ("last", LineStream::Stdout)
            ]
        );
        assert_eq!(out.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn streams_split_independently_and_share_seq() {
        let mut pipeline = LogPipeline::new(1 << 20);
        let mut out = Vec::new();
        pipeline.write(OutputStream::Stdout, b"a", &mut out);
        pipeline.write(OutputStream::Stderr, b"b\n", &mut out);
        pipeline.write(OutputStream::Stdout, b"c\n", &mut out);
        pipeline.system("done", &mut out);
        assert_eq!(
            lines(&out),
            [
                ("b", LineStream::Stderr),
                ("ac", LineStream::Stdout),
                ("done", LineStream::System)
            ]
        );
    }

    #[test]
    fn nul_characters_are_replaced() {
        let mut pipeline = LogPipeline::new(1 << 20);
        let mut out = Vec::new();
        pipeline.write(OutputStream::Stdout, b"a\0b\n", &mut out);
        assert_eq!(out[0].line, "a\u{fffd}b");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut pipeline = LogPipeline::new(1 << 20);
        let mut out = Vec::new();
        pipeline.write(OutputStream::Stdout, b"ok \xff\xfe end\n", &mut out);
        assert_eq!(out[0].line, "ok \u{fffd}\u{fffd} end");
    }

    #[test]
    fn long_lines_are_split_at_character_boundaries() {
        let mut pipeline = LogPipeline::new(1 << 30);
        let mut out = Vec::new();
        let long = "é".repeat(MAX_LINE_BYTES); // two bytes each
        pipeline.write(OutputStream::Stdout, long.as_bytes(), &mut out);
        pipeline.write(OutputStream::Stdout, b"\n", &mut out);
        assert!(out.len() >= 2);
        assert!(out.iter().all(|l| l.line.len() <= MAX_LINE_BYTES));
        assert!(!out.iter().any(|l| l.line.contains('\u{fffd}')));
        let joined: String = out.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn the_cap_drops_output_once_with_a_notice() {
        let mut pipeline = LogPipeline::new(20);
        let mut out = Vec::new();
        for i in 0..10 {
            pipeline.write(
                OutputStream::Stdout,
                format!("line {i}\n").as_bytes(),
                &mut out,
            );
        }
        let kept: Vec<_> = out
            .iter()
            .filter(|l| l.stream == LineStream::Stdout)
            .collect();
        assert_eq!(kept.len(), 2, "{out:?}");
        let notices: Vec<_> = out
            .iter()
            .filter(|l| l.stream == LineStream::System)
            .collect();
        assert_eq!(notices.len(), 1);
        assert!(notices[0].line.contains("truncated"));
        assert!(pipeline.truncated());
        assert!(pipeline.used_bytes() <= 20);
    }

    #[test]
    fn resume_continues_numbering() {
        let mut pipeline = LogPipeline::resume(41, 1000, 0);
        let mut out = Vec::new();
        pipeline.write(OutputStream::Stderr, b"x\n", &mut out);
        assert_eq!(out[0].seq, 42);
    }
}
