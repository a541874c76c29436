//! Container log line parsing, exactly as the kubelet reads its files.
//!
//! CRI (`pkg/kubelet/kuberuntime/logs/logs.go` `parseCRILog`):
//! `<RFC3339Nano> SP <stdout|stderr> SP <tags> SP <content>`; tags are split on `:` and only the
//! first one is read: `P` means partial, anything else (normally `F`) a full line. Docker
//! json-file: `{"log":"…\n","stream":"stdout","time":"…"}`, partial when `log` lacks the trailing
//! newline. The format is detected per line from the first byte (`{` = Docker). Lines arrive
//! without their `\n` terminator.

use std::borrow::Cow;

/// Output stream of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    /// Inverse of [`Stream::index`].
    pub fn from_index(i: usize) -> Stream {
        if i == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        }
    }
}

/// Which format a line was (or looked like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Cri,
    Docker,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cri => "cri",
            Format::Docker => "docker",
        }
    }
}

/// A parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Unix nanoseconds.
    pub ts_ns: i64,
    pub stream: Stream,
    /// A fragment: more of the same line follows in a later record.
    pub partial: bool,
    pub msg: Cow<'a, [u8]>,
}

/// Parses one line (without `\n`). `Err` carries the detected format of a malformed line.
pub fn parse_line(line: &[u8]) -> Result<Parsed<'_>, Format> {
    if line.first() == Some(&b'{') {
        parse_docker(line).ok_or(Format::Docker)
    } else {
        parse_cri(line).ok_or(Format::Cri)
    }
}

/// CRI format.
pub fn parse_cri(line: &[u8]) -> Option<Parsed<'_>> {
    let (ts, rest) = split_space(line)?;
    let ts_ns = parse_rfc3339_nano(ts)?;
    let (stream, rest) = split_space(rest)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let (tags, msg) = split_space(rest)?;
    // Forward compatible: only the first `:`-separated tag is read.
    let first = tags.split(|b| *b == b':').next().unwrap_or_default();
    Some(Parsed {
        ts_ns,
        stream,
        partial: first == b"P",
        msg: Cow::Borrowed(msg),
    })
}

fn split_space(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b' ', b)?;
    Some((&b[..i], &b[i + 1..]))
}

#[derive(serde::Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// Docker json-file format.
pub fn parse_docker(line: &[u8]) -> Option<Parsed<'_>> {
    let d: DockerLine<'_> = serde_json::from_slice(line).ok()?;
    let stream = match d.stream.as_ref() {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let ts_ns = parse_rfc3339_nano(d.time.as_bytes())?;
    let partial = !d.log.ends_with('\n');
    let msg: Cow<'_, [u8]> = match d.log {
        Cow::Borrowed(s) => Cow::Borrowed(s.strip_suffix('\n').unwrap_or(s).as_bytes()),
        Cow::Owned(mut s) => {
            if s.ends_with('\n') {
                s.pop();
            }
            Cow::Owned(s.into_bytes())
        }
    };
    Some(Parsed {
        ts_ns,
        stream,
        partial,
        msg,
    })
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go's `time.RFC3339Nano` layout as `time.Parse` accepts it: `YYYY-MM-DDTHH:MM:SS[.f{1,9}]`
/// then `Z` or `±HH:MM`. Returns Unix nanoseconds.
pub fn parse_rfc3339_nano(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0i64;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&rest[1..=n])? * 10i64.pow(9 - n as u32);
        rest = &rest[1 + n..];
    }
    let offset_secs = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cri(line: &str) -> Parsed<'_> {
        parse_line(line.as_bytes()).unwrap()
    }

    #[test]
    fn cri_full_and_partial() {
        let p = cri("2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1");
        assert_eq!(p.stream, Stream::Stdout);
        assert!(!p.partial);
        assert_eq!(&*p.msg, b"The content of the log entry 1");
        assert_eq!(p.ts_ns, 1_475_713_029_669_794_202);
        let p = cri("2016-10-06T00:17:09.669794202Z stderr P part");
        assert!(p.partial);
        assert_eq!(p.stream, Stream::Stderr);
        assert_eq!(&*p.msg, b"part");
    }

    #[test]
    fn cri_tags_split_on_colon_first_read() {
        assert!(cri("2016-10-06T00:17:09Z stdout P:x:y a").partial);
        assert!(!cri("2016-10-06T00:17:09Z stdout F:x a").partial);
        // Unknown first tag: the kubelet treats it as full.
        assert!(!cri("2016-10-06T00:17:09Z stdout Q a").partial);
    }

    #[test]
    fn cri_empty_and_spaces_kept() {
        assert_eq!(&*cri("2016-10-06T00:17:09Z stdout F ").msg, b"");
        assert_eq!(&*cri("2016-10-06T00:17:09Z stdout F  a  b ").msg, b" a  b ");
    }

    #[test]
    fn cri_offsets_and_fractions() {
        let z = cri("2024-02-29T12:00:00Z stdout F x").ts_ns;
        assert_eq!(cri("2024-02-29T07:00:00-05:00 stdout F x").ts_ns, z);
        assert_eq!(
            cri("2024-02-29T12:00:00.5Z stdout F x").ts_ns,
            z + 500_000_000
        );
        assert_eq!(
            cri("2024-02-29T12:00:00.000000001Z stdout F x").ts_ns,
            z + 1
        );
    }

    #[test]
    fn cri_malformed() {
        for l in [
            "",
            "garbage",
            "2016-10-06T00:17:09Z stdout",
            "2016-10-06T00:17:09Z stdout F",
            "2016-10-06T00:17:09Z stdin F x",
            "2016-13-06T00:17:09Z stdout F x",
            "2023-02-29T00:17:09Z stdout F x",
            "2016-10-06 00:17:09Z stdout F x",
            "2016-10-06T00:17:09.Z stdout F x",
            "2016-10-06T00:17:09.1234567890Z stdout F x",
            "2016-10-06T00:17:09+0100 stdout F x",
        ] {
            assert_eq!(parse_line(l.as_bytes()), Err(Format::Cri), "{l:?}");
        }
    }

    #[test]
    fn docker_json() {
        let p = parse_line(
            br#"{"log":"hello \"w\"\n","stream":"stderr","time":"2016-10-06T00:17:09.669794202Z"}"#,
        )
        .unwrap();
        assert_eq!(&*p.msg, b"hello \"w\"");
        assert!(!p.partial);
        assert_eq!(p.stream, Stream::Stderr);
        let p = parse_line(br#"{"log":"frag","stream":"stdout","time":"2016-10-06T00:17:09Z"}"#)
            .unwrap();
        assert!(p.partial);
        assert_eq!(
            parse_line(br#"{"log":"x\n","stream":"x","time":"2016-10-06T00:17:09Z"}"#),
            Err(Format::Docker)
        );
        assert_eq!(parse_line(b"{not json"), Err(Format::Docker));
    }
}
