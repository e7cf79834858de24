//! WARC 1.1 (ISO 28500), the web-archiving world's format: records written one gzip member
//! each (so replay tools can read a record at its offset), and records read back from any
//! WARC 1.0 or 1.1 file, gzipped or not, as wget, Browsertrix, ArchiveBox and vaultkeep write
//! them. Formats only: no archive, no network (the `wacz` module uses it for both directions).

pub mod http;
pub mod surt;

use std::io::{self, BufRead, Read, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::digest::Digest;

/// Records larger than this are skipped on reading (and listed): nothing vaultkeep captures
/// comes near it, and a record is held in memory while it is read.
pub const MAX_RECORD: u64 = 512 * 1024 * 1024;

/// `sha256:` and the base32 of a digest, as WARC digests are written.
pub fn digest_field(digest: &Digest) -> String {
    format!("sha256:{}", base32(digest.as_bytes()))
}

/// RFC 4648 base32 (upper case, padded), the usual encoding of WARC digests.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[((n >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A new record id, `<urn:uuid:…>`.
pub fn record_id() -> String {
    format!("<urn:uuid:{}>", uuid::Uuid::new_v4())
}

/// Writes records, each as its own gzip member, and says where each landed.
pub struct Writer<W: Write> {
    out: W,
    offset: u64,
}

/// How hard to compress a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// Text, markup, headers: the default level.
    Full,
    /// A payload compressed already (images, fonts, archives): the fastest level, since more
    /// effort buys nothing.
    Light,
}

impl Effort {
    /// The effort a payload of this media type deserves.
    pub fn for_media(media: Option<&str>) -> Effort {
        let media = media.unwrap_or("").to_ascii_lowercase();
        let packed =
            (media.starts_with("image/") && !media.contains("svg") && !media.contains("bmp"))
                || media.starts_with("video/")
                || media.starts_with("audio/")
                || media.starts_with("font/woff")
                || [
                    "application/pdf",
                    "application/zip",
                    "application/gzip",
                    "application/x-gzip",
                    "application/wasm",
                    "application/font-woff",
                    "application/font-woff2",
                ]
                .contains(&media.as_str());
        if packed { Effort::Light } else { Effort::Full }
    }
}

/// Counts the bytes passing through, so a record's member length is known without a copy.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    count: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where a written record lies in the file: for the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Offset of its gzip member.
    pub offset: u64,
    /// Bytes of its gzip member.
    pub length: u64,
}

impl<W: Write> Writer<W> {
    /// A writer at the start of a file.
    pub fn new(out: W) -> Writer<W> {
        Writer { out, offset: 0 }
    }

    /// Writes one record: `fields` (without `WARC-Block-Digest` and `Content-Length`, which
    /// are added) and its block, given in parts (an HTTP head and a body need no joining).
    pub fn write(
        &mut self,
        fields: &[(&str, String)],
        block: &[&[u8]],
        effort: Effort,
    ) -> io::Result<Written> {
        let mut hasher = crate::digest::Hasher::new();
        let mut len = 0;
        for part in block {
            hasher.update(part);
            len += part.len();
        }
        let mut head = String::from("WARC/1.1\r\n");
        for (name, value) in fields {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "WARC-Block-Digest: {}\r\nContent-Length: {len}\r\n\r\n",
            digest_field(&hasher.finish()),
        ));
        let level = match effort {
            Effort::Full => Compression::default(),
            Effort::Light => Compression::fast(),
        };
        let mut counting = Counting {
            inner: &mut self.out,
            count: 0,
        };
        let mut gz = GzEncoder::new(&mut counting, level);
        gz.write_all(head.as_bytes())?;
        for part in block {
            gz.write_all(part)?;
        }
        gz.write_all(b"\r\n\r\n")?;
        gz.finish()?;
        let written = Written {
            offset: self.offset,
            length: counting.count,
        };
        self.offset += counting.count;
        Ok(written)
    }

    /// The underlying writer.
    pub fn finish(self) -> W {
        self.out
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its header fields, in order, names as written.
    pub fields: Vec<(String, String)>,
    /// Its block.
    pub block: Vec<u8>,
}

impl Record {
    /// A field's value (names compare without case).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `WARC-Type`.
    pub fn kind(&self) -> &str {
        self.field("WARC-Type").unwrap_or("")
    }

    /// `WARC-Target-URI`, without the angle brackets wget puts around it.
    pub fn target(&self) -> Option<&str> {
        self.field("WARC-Target-URI")
            .map(|t| t.trim().trim_start_matches('<').trim_end_matches('>'))
    }
}

/// Why reading stopped or skipped a record.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a WARC record where one should start: the rest of the file cannot be trusted.
    #[error("not a WARC record at byte {0} of the uncompressed stream")]
    NotWarc(u64),
    /// The file ended inside a record.
    #[error("the file ends inside a record (truncated)")]
    Truncated,
    /// A record larger than [`MAX_RECORD`], skipped.
    #[error("a record of {0} bytes, larger than the {MAX_RECORD}-byte limit, was skipped")]
    TooLarge(u64),
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
}

/// Reads records from a WARC file's bytes (gzipped or not: see [`open`]).
pub struct Reader<R: BufRead> {
    input: R,
    at: u64,
    done: bool,
}

/// A reader over `input`, which may be a plain WARC or gzip members (one per record, or the
/// whole file as one).
pub fn open<'a>(mut input: impl BufRead + 'a) -> io::Result<Reader<Box<dyn BufRead + 'a>>> {
    let gzipped = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let inner: Box<dyn BufRead + 'a> = if gzipped {
        Box::new(io::BufReader::new(flate2::bufread::MultiGzDecoder::new(
            input,
        )))
    } else {
        Box::new(input)
    };
    Ok(Reader {
        input: inner,
        at: 0,
        done: false,
    })
}

impl<R: BufRead> Reader<R> {
    fn line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = self.input.read_until(b'\n', &mut buf)?;
        self.at += n as u64;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ))
    }

    fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        // Blank lines between records.
        let version = loop {
            match self.line()? {
                None => return Ok(None),
                Some(l) if l.trim().is_empty() => continue,
                Some(l) => break l,
            }
        };
        if !version.starts_with("WARC/") {
            return Err(ReadError::NotWarc(self.at));
        }
        let mut fields = Vec::new();
        loop {
            match self.line()? {
                None => return Err(ReadError::Truncated),
                Some(l) if l.is_empty() => break,
                Some(l) => {
                    if let Some((k, v)) = l.split_once(':') {
                        fields.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
            }
        }
        let length: u64 = fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if length > MAX_RECORD {
            let skipped = io::copy(&mut (&mut self.input).take(length), &mut io::sink())?;
            self.at += skipped;
            if skipped < length {
                return Err(ReadError::Truncated);
            }
            return Err(ReadError::TooLarge(length));
        }
        let mut block = Vec::with_capacity(length as usize);
        let read = (&mut self.input).take(length).read_to_end(&mut block)? as u64;
        self.at += read;
        if read < length {
            return Err(ReadError::Truncated);
        }
        Ok(Some(Record { fields, block }))
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Record, ReadError>;

    /// The next record; after an error that leaves the position unknown, nothing more.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e @ ReadError::TooLarge(_)) => Some(Err(e)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_rfc_4648() {
        // The RFC's test vectors.
        for (input, output) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            assert_eq!(base32(input.as_bytes()), output, "{input}");
        }
    }

    #[test]
    fn records_written_are_read_back_member_by_member() {
        let mut w = Writer::new(Vec::new());
        let first = w
            .write(
                &[
                    ("WARC-Type", "resource".into()),
                    ("WARC-Target-URI", "https://x.org/".into()),
                ],
                &[b"hel", b"lo"],
                Effort::Full,
            )
            .unwrap();
        let second = w
            .write(&[("WARC-Type", "metadata".into())], &[], Effort::Light)
            .unwrap();
        let bytes = w.finish();
        assert_eq!(first.offset, 0);
        assert_eq!(second.offset, first.length);
        assert_eq!(first.length + second.length, bytes.len() as u64);
        let records: Vec<Record> = open(&bytes[..]).unwrap().map(Result::unwrap).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].block, b"hello");
        assert_eq!(records[0].target(), Some("https://x.org/"));
        assert_eq!(
            records[0].field("warc-block-digest").unwrap(),
            digest_field(&Digest::of(b"hello"))
        );
        // The second member alone, at its offset, is a whole record.
        let alone: Vec<Record> = open(&bytes[second.offset as usize..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(alone[0].kind(), "metadata");
    }

    #[test]
    fn a_truncated_file_yields_its_whole_records_then_one_error() {
        let mut w = Writer::new(Vec::new());
        w.write(&[("WARC-Type", "resource".into())], &[b"one"], Effort::Full)
            .unwrap();
        w.write(
            &[("WARC-Type", "resource".into())],
            &[&[7u8; 5000]],
            Effort::Light,
        )
        .unwrap();
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&w.finish()[..])
            .read_to_end(&mut plain)
            .unwrap();
        let cut = &plain[..plain.len() - 100];
        let got: Vec<_> = open(cut).unwrap().collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(matches!(got[1], Err(ReadError::Truncated)));
        let garbage: Vec<_> = open(&b"not a warc at all\r\n"[..]).unwrap().collect();
        assert!(matches!(garbage[..], [Err(ReadError::NotWarc(_))]));
    }
}
