//! Content fingerprint: a 64-bit FNV-1a hash of the file's first line (capped at 1 KiB), read
//! through gzip for compressed files. Together with device+inode it identifies a file across
//! renames, compression and copytruncate. A file without a complete first line has no
//! fingerprint yet and is not tracked until it does.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Bytes of the first line that go into the fingerprint.
pub const FINGERPRINT_BYTES: usize = 1024;

/// FNV-1a, 64 bit (stable across versions and platforms, unlike `DefaultHasher`).
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fingerprint from a reader positioned at the start of the (uncompressed) content.
pub fn fingerprint_reader(r: &mut dyn Read) -> io::Result<Option<u64>> {
    let mut buf = [0u8; FINGERPRINT_BYTES];
    let mut len = 0;
    while len < buf.len() {
        let n = r.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        if let Some(pos) = buf[len..len + n].iter().position(|b| *b == b'\n') {
            return Ok(Some(fnv1a(&buf[..=len + pos])));
        }
        len += n;
    }
    if len == FINGERPRINT_BYTES {
        // A first line longer than the cap: the cap is the fingerprint.
        return Ok(Some(fnv1a(&buf)));
    }
    Ok(None)
}

/// Fingerprint of a plain or `.gz` file.
pub fn fingerprint_path(path: &Path, gz: bool) -> io::Result<Option<u64>> {
    let f = File::open(path)?;
    if gz {
        let mut d = flate2::read::MultiGzDecoder::new(f);
        fingerprint_reader(&mut d)
    } else {
        let mut f = f;
        fingerprint_reader(&mut f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_complete_line() {
        assert_eq!(fingerprint_reader(&mut &b"abc"[..]).unwrap(), None);
        let a = fingerprint_reader(&mut &b"abc\ndef"[..]).unwrap();
        let b = fingerprint_reader(&mut &b"abc\nxyz\n"[..]).unwrap();
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, fingerprint_reader(&mut &b"abd\n"[..]).unwrap());
    }
}
