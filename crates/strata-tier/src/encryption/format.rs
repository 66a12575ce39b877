//! The encrypted object formats. Pure: no I/O. Version 1 (below) wraps the data key
//! with a key file's master key; version 2 keeps AWS KMS's ciphertext blob instead, in
//! a fixed 1024-byte header:
//!
//! ```text
//! offset  size  field
//!      0     6  magic "STRENC"
//!      6     1  format version (2)
//!      7     1  suite (2: AES-256-GCM chunks, data key from AWS KMS)
//!      8     4  plaintext chunk size, big-endian (65536)
//!     12     2  KMS key ARN length a (1..=256), big-endian
//!     14     2  CiphertextBlob length b (1..=752), big-endian
//!     16   256  the KMS key ARN, a bytes then zeros
//!    272   752  KMS's CiphertextBlob, b bytes then zeros
//!   1024        chunks, exactly as in version 1
//! ```
//!
//! KMS authenticates the blob and binds it to the object through the encryption
//! context (the object's path, see `kms.rs`); the chunks are sealed as in version 1.
//!
//! Version 1:
//!
//! ```text
//! offset  size  field
//!      0     6  magic "STRENC"
//!      6     1  format version (1)
//!      7     1  suite (1: AES-256-GCM chunks, data key wrapped with AES-256-GCM)
//!      8     4  plaintext chunk size, big-endian (65536)
//!     12     1  master key id length n (1..=64)
//!     13    64  master key id, n bytes then zeros
//!     77    12  nonce of the key wrap (random)
//!     89    48  the object's data key (32) sealed under the master key, with its tag (16)
//!    137        chunk 0, chunk 1, ...: each 65536 plaintext bytes sealed under the data
//!               key, followed by its 16-byte tag; the last chunk holds the rest
//!               (0..=65536 bytes: an empty object is one empty chunk)
//! ```
//!
//! - Every field is fixed-size, so a plaintext byte range maps to a ciphertext byte
//!   range without reading anything, and the plaintext size follows from the object
//!   size ([`plain_len`]): `head` and `list` need no extra GET.
//! - The key wrap authenticates bytes 0..77 and the object's path (associated data):
//!   a header copied onto another object, or a whole object moved to another key,
//!   fails to open.
//! - Each object has its own random data key, so chunk nonces can be counters: chunk
//!   `i` uses nonce `[last, 0, 0, 0, i as u64 big-endian]`, where `last` is 1 for the
//!   final chunk only (the STREAM construction). Chunks cannot be reordered (index),
//!   moved between objects (other key), nor the object cut at a chunk boundary or
//!   extended (the new last chunk was not sealed as last).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::error::Unspecified;
use bytes::Bytes;
use object_store::path::Path;
use zeroize::Zeroizing;

use super::keys::{MasterKeys, UnwrapError, MAX_KEY_ID, WRAPPED_LEN};
use crate::error::TierError;

pub const MAGIC: [u8; 6] = *b"STRENC";
pub const VERSION: u8 = 1;
pub const SUITE: u8 = 1;
/// Plaintext bytes per chunk. 64 KiB: the tag costs 0.02%, and a ranged read
/// decrypts at most 128 KiB it does not return.
pub const CHUNK: u64 = 64 << 10;
pub const TAG: u64 = 16;
/// A sealed whole chunk: plaintext plus tag.
pub const SEALED: u64 = CHUNK + TAG;
const ID_AT: usize = 13;
const NONCE_AT: usize = ID_AT + MAX_KEY_ID;
const WRAPPED_AT: usize = NONCE_AT + NONCE_LEN;
pub const HEADER_LEN: usize = WRAPPED_AT + WRAPPED_LEN;
#[cfg(test)]
const HEADER: u64 = HEADER_LEN as u64;

/// Version 2: the data key comes from AWS KMS `GenerateDataKey`; the header keeps
/// the KMS key's ARN and KMS's `CiphertextBlob` (see the module docs).
pub const VERSION_KMS: u8 = 2;
pub const SUITE_KMS: u8 = 2;
/// The version 2 header: fixed, so that chunk offsets follow from the version alone.
pub const KMS_HEADER_LEN: usize = 1024;
/// The longest KMS key ARN kept (AWS ARNs of keys are about 75 bytes).
pub const MAX_KMS_ARN: usize = 256;
const KMS_ARN_AT: usize = 16;
const KMS_BLOB_AT: usize = KMS_ARN_AT + MAX_KMS_ARN;
/// The longest `CiphertextBlob` kept. AWS KMS's blob of a 32-byte data key under a
/// symmetric key is 184 bytes; moto's is 96.
pub const MAX_KMS_BLOB: usize = KMS_HEADER_LEN - KMS_BLOB_AT;
/// The most header bytes any version has: a header-only GET asks for this many.
pub const MAX_HEADER_LEN: usize = KMS_HEADER_LEN;

/// Chunks of an object of `plain` bytes: at least one, so that even an empty
/// object ends with an authenticated last chunk.
pub fn chunk_count(plain: u64) -> u64 {
    plain.div_ceil(CHUNK).max(1)
}

/// Where the chunks of an object start: after its header, whose length is fixed per
/// format version (137 bytes for version 1, [`KMS_HEADER_LEN`] for version 2). Every
/// size and offset mapping below depends on it and on nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    header: u64,
}

impl Layout {
    /// Version 1: the data key wrapped by a master key from the key file.
    pub const V1: Layout = Layout {
        header: HEADER_LEN as u64,
    };
    /// Version 2: the data key wrapped by AWS KMS.
    pub const V2: Layout = Layout {
        header: KMS_HEADER_LEN as u64,
    };

    /// The layout of format `version`, if this broker reads it.
    pub fn of_version(version: u8) -> Option<Layout> {
        match version {
            VERSION => Some(Layout::V1),
            VERSION_KMS => Some(Layout::V2),
            _ => None,
        }
    }

    pub fn header(self) -> u64 {
        self.header
    }

    /// Size of the object holding `plain` bytes.
    pub fn cipher_len(self, plain: u64) -> u64 {
        self.header + plain + TAG * chunk_count(plain)
    }

    /// Plaintext size of an object of `cipher` bytes; `None` if no plaintext encrypts
    /// to that size (shorter than a header and one tag, or a last chunk shorter than a
    /// tag).
    pub fn plain_len(self, cipher: u64) -> Option<u64> {
        let body = cipher.checked_sub(self.header)?;
        if body < TAG {
            return None;
        }
        let n = body.div_ceil(SEALED);
        let last = body - (n - 1) * SEALED;
        (last >= TAG).then(|| body - n * TAG)
    }

    /// Where sealed chunk `i` starts in the object (saturating: a range end near
    /// `u64::MAX` maps to a ciphertext end past any object, which the store clips).
    pub fn chunk_start(self, i: u64) -> u64 {
        self.header.saturating_add(i.saturating_mul(SEALED))
    }
}

/// Size of the version 1 object holding `plain` bytes.
pub fn cipher_len(plain: u64) -> u64 {
    Layout::V1.cipher_len(plain)
}

/// Plaintext size of a version 1 object of `cipher` bytes (see `Layout::plain_len`).
pub fn plain_len(cipher: u64) -> Option<u64> {
    Layout::V1.plain_len(cipher)
}

/// Where sealed chunk `i` of a version 1 object starts.
#[cfg(test)]
pub fn chunk_start(i: u64) -> u64 {
    Layout::V1.chunk_start(i)
}

/// Sealed size of chunk `i` of an object of `plain` bytes.
pub fn sealed_len(i: u64, plain: u64) -> u64 {
    let n = chunk_count(plain);
    if i + 1 < n {
        SEALED
    } else {
        plain - (n - 1) * CHUNK + TAG
    }
}

fn chunk_nonce(i: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[0] = u8::from(last);
    n[4..].copy_from_slice(&i.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The associated data of the key wrap: the header up to the nonce, then the path.
fn wrap_aad(prefix: &[u8], path: &Path) -> Vec<u8> {
    let mut aad = Vec::with_capacity(prefix.len() + path.as_ref().len());
    aad.extend_from_slice(prefix);
    aad.extend_from_slice(path.as_ref().as_bytes());
    aad
}

/// An object's data key, opened.
pub struct DataKey {
    pub key: LessSafeKey,
    /// The master key that wraps it (for messages).
    pub key_id: String,
}

/// A fresh random data key for a new object at `path`, and the header that carries
/// it wrapped under the active master key.
pub fn new_object(keys: &MasterKeys, path: &Path) -> Result<(DataKey, Bytes), TierError> {
    let failed = |what: &str| TierError::Tampered {
        key: path.to_string(),
        what: format!("{what} (the crypto library failed)"),
        key_id: keys.active_id().to_string(),
    };
    let mut raw = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut raw[..]).map_err(|_| failed("drawing a data key"))?;
    let id = keys.active_id();
    let mut h = vec![0u8; HEADER_LEN];
    h[..6].copy_from_slice(&MAGIC);
    h[6] = VERSION;
    h[7] = SUITE;
    h[8..12].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    h[12] = id.len() as u8;
    h[ID_AT..ID_AT + id.len()].copy_from_slice(id.as_bytes());
    let (nonce, wrapped) = keys
        .wrap(&raw, &wrap_aad(&h[..NONCE_AT], path))
        .map_err(|_| failed("wrapping the data key"))?;
    h[NONCE_AT..WRAPPED_AT].copy_from_slice(&nonce);
    h[WRAPPED_AT..].copy_from_slice(&wrapped);
    let key = UnboundKey::new(&AES_256_GCM, &raw[..]).map_err(|_| failed("the data key"))?;
    let data = DataKey {
        key: LessSafeKey::new(key),
        key_id: id.to_string(),
    };
    Ok((data, Bytes::from(h)))
}

/// What a header says about its object's data key.
pub enum Wrapped<'a> {
    /// Version 1: sealed under master key `id` of the key file.
    File {
        id: &'a str,
        nonce: [u8; NONCE_LEN],
        wrapped: [u8; WRAPPED_LEN],
        /// The associated data the wrap authenticates.
        aad: Vec<u8>,
    },
    /// Version 2: KMS's `CiphertextBlob` under the KMS key `arn`.
    Kms { arn: &'a str, blob: &'a [u8] },
}

/// The format version of a header that starts with `h` (at least 8 bytes), and its
/// layout.
pub fn header_layout(path: &Path, h: &[u8]) -> Result<Layout, TierError> {
    if h.len() < 8 || h[..6] != MAGIC {
        return Err(TierError::NotEncrypted {
            key: path.to_string(),
            reason: "no STRENC header".into(),
        });
    }
    let layout = Layout::of_version(h[6]).filter(|_| {
        (h[6] == VERSION && h[7] == SUITE) || (h[6] == VERSION_KMS && h[7] == SUITE_KMS)
    });
    layout.ok_or_else(|| TierError::UnsupportedFormat {
        key: path.to_string(),
        reason: format!(
            "version {} suite {}; this broker reads version {VERSION} suite {SUITE} and version {VERSION_KMS} suite {SUITE_KMS}",
            h[6], h[7]
        ),
    })
}

/// Checks the header at the start of `h` (at least its version's length) of the
/// object at `path` and says how its data key is wrapped.
pub fn parse_header<'a>(path: &Path, h: &'a [u8]) -> Result<(Layout, Wrapped<'a>), TierError> {
    let key = || path.to_string();
    let layout = header_layout(path, h)?;
    if (h.len() as u64) < layout.header() {
        return Err(TierError::NotEncrypted {
            key: key(),
            reason: format!("{} bytes, shorter than a header", h.len()),
        });
    }
    let chunk = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    if u64::from(chunk) != CHUNK {
        return Err(TierError::UnsupportedFormat {
            key: key(),
            reason: format!("chunk size {chunk}; versions 1 and 2 have {CHUNK}"),
        });
    }
    let malformed = |what: &str| TierError::TruncatedObject {
        key: key(),
        reason: format!("the header's {what} field is malformed"),
    };
    // A text field of `n` bytes at `at` in a slot of `max` bytes, zero padded.
    let field = |at: usize, n: usize, max: usize| {
        let bytes = &h[at..at + n.min(max)];
        std::str::from_utf8(bytes)
            .ok()
            .filter(|_| (1..=max).contains(&n))
            .filter(|_| h[at + n..at + max].iter().all(|&b| b == 0))
    };
    if layout == Layout::V2 {
        let arn_len = usize::from(u16::from_be_bytes([h[12], h[13]]));
        let blob_len = usize::from(u16::from_be_bytes([h[14], h[15]]));
        let arn = field(KMS_ARN_AT, arn_len, MAX_KMS_ARN).ok_or_else(|| malformed("KMS key"))?;
        if !(1..=MAX_KMS_BLOB).contains(&blob_len)
            || h[KMS_BLOB_AT + blob_len..KMS_HEADER_LEN]
                .iter()
                .any(|&b| b != 0)
        {
            return Err(malformed("KMS ciphertext blob"));
        }
        let blob = &h[KMS_BLOB_AT..KMS_BLOB_AT + blob_len];
        return Ok((layout, Wrapped::Kms { arn, blob }));
    }
    let id =
        field(ID_AT, usize::from(h[12]), MAX_KEY_ID).ok_or_else(|| malformed("master key id"))?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&h[NONCE_AT..WRAPPED_AT]);
    let mut wrapped = [0u8; WRAPPED_LEN];
    wrapped.copy_from_slice(&h[WRAPPED_AT..HEADER_LEN]);
    let aad = wrap_aad(&h[..NONCE_AT], path);
    Ok((
        layout,
        Wrapped::File {
            id,
            nonce,
            wrapped,
            aad,
        },
    ))
}

/// The version 2 header of a new object whose data key KMS key `arn` wrapped as `blob`.
pub fn kms_header(arn: &str, blob: &[u8]) -> Result<Bytes, String> {
    if arn.is_empty() || arn.len() > MAX_KMS_ARN {
        return Err(format!(
            "KMS answered a key id of {} bytes (at most {MAX_KMS_ARN} are kept)",
            arn.len()
        ));
    }
    if blob.is_empty() || blob.len() > MAX_KMS_BLOB {
        return Err(format!(
            "KMS answered a ciphertext blob of {} bytes (at most {MAX_KMS_BLOB} are kept)",
            blob.len()
        ));
    }
    let mut h = vec![0u8; KMS_HEADER_LEN];
    h[..6].copy_from_slice(&MAGIC);
    h[6] = VERSION_KMS;
    h[7] = SUITE_KMS;
    h[8..12].copy_from_slice(&(CHUNK as u32).to_be_bytes());
    h[12..14].copy_from_slice(&(arn.len() as u16).to_be_bytes());
    h[14..16].copy_from_slice(&(blob.len() as u16).to_be_bytes());
    h[KMS_ARN_AT..KMS_ARN_AT + arn.len()].copy_from_slice(arn.as_bytes());
    h[KMS_BLOB_AT..KMS_BLOB_AT + blob.len()].copy_from_slice(blob);
    Ok(Bytes::from(h))
}

/// The data key `raw` ready for chunks; `key_id` names its wrapping key in messages.
pub fn data_key(raw: &[u8], key_id: &str) -> Result<DataKey, Unspecified> {
    let key = UnboundKey::new(&AES_256_GCM, raw)?;
    Ok(DataKey {
        key: LessSafeKey::new(key),
        key_id: key_id.to_string(),
    })
}

/// Checks the version 1 header `h` (the first [`HEADER_LEN`] bytes of the object at
/// `path`) and opens its data key with the key file's master keys.
#[cfg(test)]
pub fn open_header(keys: &MasterKeys, path: &Path, h: &[u8]) -> Result<DataKey, TierError> {
    match parse_header(path, h)? {
        (
            _,
            Wrapped::File {
                id,
                nonce,
                wrapped,
                aad,
            },
        ) => open_file_wrapped(keys, path, id, nonce, &wrapped, &aad),
        (_, Wrapped::Kms { arn, .. }) => Err(TierError::KmsNotConfigured {
            key: path.to_string(),
            kms_key: arn.to_string(),
        }),
    }
}

/// Opens a version 1 data key sealed under master key `id`.
pub fn open_file_wrapped(
    keys: &MasterKeys,
    path: &Path,
    id: &str,
    nonce: [u8; NONCE_LEN],
    wrapped: &[u8; WRAPPED_LEN],
    aad: &[u8],
) -> Result<DataKey, TierError> {
    let key = || path.to_string();
    let raw = keys.unwrap(id, nonce, wrapped, aad).map_err(|e| match e {
        UnwrapError::Unknown => TierError::UnknownMasterKey {
            key: key(),
            key_id: id.to_string(),
        },
        UnwrapError::Authentication => TierError::Tampered {
            key: key(),
            what: "the header (the wrapped data key)".into(),
            key_id: id.to_string(),
        },
    })?;
    data_key(&raw[..], id).map_err(|_| TierError::Tampered {
        key: key(),
        what: "the data key".into(),
        key_id: id.to_string(),
    })
}

/// Seals the plaintext `pieces` (concatenated) as chunks `first..` and appends them
/// to `out`. With `ends_object` the last chunk is sealed as the object's last (and an
/// empty input is one empty chunk); without it the input must be whole chunks.
pub fn seal_chunks(
    key: &LessSafeKey,
    first: u64,
    pieces: &[Bytes],
    ends_object: bool,
    out: &mut Vec<u8>,
) -> Result<(), Unspecified> {
    let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let n = if ends_object {
        chunk_count(total)
    } else {
        debug_assert_eq!(total % CHUNK, 0, "only whole chunks are sealed mid-object");
        total / CHUNK
    };
    out.reserve((total + n * TAG) as usize);
    let mut src = pieces.iter().flat_map(|p| p.chunks(CHUNK as usize));
    let mut carry: &[u8] = &[];
    for i in 0..n {
        let len = (total - i * CHUNK).min(CHUNK) as usize;
        let start = out.len();
        while out.len() - start < len {
            if carry.is_empty() {
                carry = src.next().ok_or(Unspecified)?;
            }
            let take = carry.len().min(len - (out.len() - start));
            out.extend_from_slice(&carry[..take]);
            carry = &carry[take..];
        }
        let last = ends_object && i + 1 == n;
        let tag = key.seal_in_place_separate_tag(
            chunk_nonce(first + i, last),
            Aad::empty(),
            &mut out[start..],
        )?;
        out.extend_from_slice(tag.as_ref());
    }
    Ok(())
}

/// Opens chunk `i` in place with its tag kept apart: a received piece is laid out as
/// plaintext will be, so nothing moves after opening. (aws-lc-rs notes this call is not
/// for its FIPS build; Strata links the non-FIPS aws-lc.)
pub fn open_detached(
    key: &LessSafeKey,
    i: u64,
    last: bool,
    tag: &[u8],
    body: &mut [u8],
) -> Result<(), Unspecified> {
    key.open_in_place_separate_tag(chunk_nonce(i, last), Aad::empty(), tag, body)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn keys() -> MasterKeys {
        MasterKeys::from_keys(&[("k1", [3; 32])], None).expect("keys")
    }

    #[test]
    fn sizes_round_trip_at_the_edges() {
        assert_eq!(HEADER_LEN, 137);
        for p in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 7] {
            assert_eq!(plain_len(cipher_len(p)), Some(p), "plain {p}");
        }
        assert_eq!(plain_len(0), None);
        assert_eq!(
            plain_len(HEADER + TAG - 1),
            None,
            "no room for the last tag"
        );
        assert_eq!(
            plain_len(HEADER + SEALED + 5),
            None,
            "a last chunk shorter than a tag"
        );
    }

    proptest! {
        #[test]
        fn every_size_maps_back(p in 0u64..(1 << 40)) {
            prop_assert_eq!(plain_len(cipher_len(p)), Some(p));
            let n = chunk_count(p);
            prop_assert_eq!(chunk_start(n - 1) + sealed_len(n - 1, p), cipher_len(p));
        }

        #[test]
        fn sizes_that_no_plaintext_makes_are_refused(c in 0u64..(1 << 30)) {
            if let Some(p) = plain_len(c) {
                prop_assert_eq!(cipher_len(p), c);
            }
        }
    }

    #[test]
    fn header_round_trips_and_binds_the_path() {
        let keys = keys();
        let path = Path::from("t/0/a.log");
        let (_, h) = new_object(&keys, &path).expect("new");
        assert_eq!(h.len(), HEADER_LEN);
        let opened = open_header(&keys, &path, &h).expect("open");
        assert_eq!(opened.key_id, "k1");
        let err = open_header(&keys, &Path::from("t/0/b.log"), &h).err();
        assert!(
            matches!(err, Some(TierError::Tampered { ref key, .. }) if key == "t/0/b.log"),
            "{err:?}"
        );
        let mut bad = h.to_vec();
        bad[0] = b'X';
        assert!(matches!(
            open_header(&keys, &path, &bad),
            Err(TierError::NotEncrypted { .. })
        ));
        let mut bad = h.to_vec();
        bad[6] = 2;
        assert!(matches!(
            open_header(&keys, &path, &bad),
            Err(TierError::UnsupportedFormat { .. })
        ));
        let other = MasterKeys::from_keys(&[("k2", [4; 32])], None).expect("keys");
        assert!(matches!(
            open_header(&other, &path, &h),
            Err(TierError::UnknownMasterKey { ref key_id, .. }) if key_id == "k1"
        ));
        let same_id = MasterKeys::from_keys(&[("k1", [4; 32])], None).expect("keys");
        assert!(matches!(
            open_header(&same_id, &path, &h),
            Err(TierError::Tampered { .. })
        ));
    }

    #[test]
    fn kms_headers_round_trip_and_malformed_ones_are_refused() {
        let path = Path::from("t/0/a.log");
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd";
        let blob = [9u8; 184];
        let h = kms_header(arn, &blob).expect("header");
        assert_eq!(h.len(), KMS_HEADER_LEN);
        match parse_header(&path, &h).expect("parse") {
            (layout, Wrapped::Kms { arn: a, blob: b }) => {
                assert_eq!(layout, Layout::V2);
                assert_eq!((a, b), (arn, &blob[..]));
            }
            _ => panic!("not a KMS header"),
        }
        assert_eq!(header_layout(&path, &h[..8]).expect("v2"), Layout::V2);
        let (_, v1) = new_object(&keys(), &path).expect("v1");
        assert_eq!(header_layout(&path, &v1[..8]).expect("v1"), Layout::V1);
        assert!(kms_header(arn, &[1u8; MAX_KMS_BLOB + 1]).is_err());
        assert!(kms_header("", &blob).is_err());
        let mut bad = h.to_vec();
        bad[KMS_BLOB_AT + 184] = 1; // a byte after the blob
        assert!(matches!(
            parse_header(&path, &bad),
            Err(TierError::TruncatedObject { .. })
        ));
        assert!(matches!(
            parse_header(&path, &h[..500]),
            Err(TierError::NotEncrypted { .. })
        ));
        assert!(matches!(
            open_header(&keys(), &path, &h),
            Err(TierError::KmsNotConfigured { ref kms_key, .. }) if kms_key == arn
        ));
        // Sizes map back in both layouts, with a fixed difference.
        for p in [0, 1, CHUNK, 5 * CHUNK + 7] {
            assert_eq!(Layout::V2.plain_len(Layout::V2.cipher_len(p)), Some(p));
            assert_eq!(Layout::V2.cipher_len(p) - Layout::V1.cipher_len(p), 887);
        }
    }

    #[test]
    fn chunks_seal_and_open_and_the_last_flag_matters() {
        let keys = keys();
        let (dk, _) = new_object(&keys, &Path::from("x")).expect("new");
        let plain: Vec<u8> = (0..CHUNK * 2 + 10).map(|i| i as u8).collect();
        let pieces = [
            Bytes::copy_from_slice(&plain[..1000]),
            Bytes::copy_from_slice(&plain[1000..]),
        ];
        let mut out = Vec::new();
        seal_chunks(&dk.key, 0, &pieces, true, &mut out).expect("seal");
        assert_eq!(out.len() as u64, cipher_len(plain.len() as u64) - HEADER);
        let p = plain.len() as u64;
        for i in 0..3 {
            let at = (chunk_start(i) - HEADER) as usize;
            let sealed = &out[at..at + sealed_len(i, p) as usize];
            let n = sealed.len() - TAG as usize;
            let (text, tag) = sealed.split_at(n);
            let open = |i, last| {
                let mut buf = text.to_vec();
                open_detached(&dk.key, i, last, tag, &mut buf).map(|()| buf)
            };
            let want = &plain[(i * CHUNK) as usize..((i * CHUNK) as usize + n)];
            assert_eq!(open(i, i == 2).expect("open"), want);
            assert!(open(i, i != 2).is_err(), "the last flag is authenticated");
            assert!(open(i + 1, i == 2).is_err(), "the index is authenticated");
        }
        // Mid-object sealing of whole chunks gives the same bytes as sealing the whole.
        let mut mid = Vec::new();
        seal_chunks(
            &dk.key,
            1,
            &[Bytes::copy_from_slice(
                &plain[CHUNK as usize..2 * CHUNK as usize],
            )],
            false,
            &mut mid,
        )
        .expect("seal mid");
        assert_eq!(&mid[..], &out[SEALED as usize..2 * SEALED as usize]);
        let mut empty = Vec::new();
        seal_chunks(&dk.key, 0, &[], true, &mut empty).expect("seal empty");
        assert_eq!(empty.len() as u64, TAG);
    }
}
