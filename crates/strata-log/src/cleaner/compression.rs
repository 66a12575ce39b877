//! The four Kafka codecs, as the records section of a v2 batch uses them:
//! gzip (1), snappy in xerial-snappy-java's framing (2), the LZ4 frame format
//! (3) and zstd (4). The cleaner decompresses a batch to filter its records and
//! compresses the records it keeps with the same codec.
//!
//! Decompression is bounded ([`MAX_DECOMPRESSED`]): a batch that expands past it
//! (a compression bomb a producer sent) is refused with an error rather than
//! exhausting memory; the broker then reports the partition uncleanable.

use std::io::{Read, Write};

/// The largest records section the cleaner decompresses from one batch.
pub(crate) const MAX_DECOMPRESSED: usize = 256 << 20;

/// xerial snappy-java's stream header: magic, version 1, compatible version 1.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's block size; each block is `[u32 length][raw snappy block]`.
const XERIAL_BLOCK: usize = 32 << 10;

/// Why a records section could not be (de)compressed.
pub type CodecError = String;

/// Decompresses the records section of a batch compressed with `codec`
/// (the batch attributes' low three bits; 0 is not compressed).
pub fn decompress(codec: i16, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    decompress_at_most(codec, data, MAX_DECOMPRESSED)
}

fn decompress_at_most(codec: i16, data: &[u8], max: usize) -> Result<Vec<u8>, CodecError> {
    let limit = max as u64 + 1;
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(64 << 20));
    let read = match codec {
        1 => flate2::read::MultiGzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        2 => return snappy_decompress(data, max),
        3 => lz4::Decoder::new(data).and_then(|d| d.take(limit).read_to_end(&mut out)),
        4 => {
            zstd::stream::read::Decoder::new(data).and_then(|d| d.take(limit).read_to_end(&mut out))
        }
        other => return Err(format!("unknown compression codec {other}")),
    };
    read.map_err(|e| format!("decompressing ({}): {e}", codec_name(codec)))?;
    check_limit(out.len(), max)?;
    Ok(out)
}

/// Compresses `data` (a records section) with `codec`, as a Kafka producer would.
pub(crate) fn compress(codec: i16, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let fail = |e: std::io::Error| format!("compressing ({}): {e}", codec_name(codec));
    match codec {
        1 => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(fail)?;
            enc.finish().map_err(fail)
        }
        2 => snappy_compress(data),
        3 => {
            let mut enc = lz4::EncoderBuilder::new()
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(fail)?;
            enc.write_all(data).map_err(fail)?;
            let (out, result) = enc.finish();
            result.map_err(fail)?;
            Ok(out)
        }
        4 => zstd::stream::encode_all(data, 3).map_err(fail),
        other => Err(format!("unknown compression codec {other}")),
    }
}

pub(crate) fn codec_name(codec: i16) -> &'static str {
    match codec {
        0 => "none",
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

fn check_limit(len: usize, max: usize) -> Result<(), CodecError> {
    if len > max {
        return Err(format!(
            "the records expand to more than {max} bytes (a compression bomb?)"
        ));
    }
    Ok(())
}

fn snappy_compress(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(XERIAL_MAGIC.len() + data.len() / 2 + 64);
    out.extend_from_slice(XERIAL_MAGIC);
    let mut encoder = snap::raw::Encoder::new();
    for block in data.chunks(XERIAL_BLOCK) {
        let compressed = encoder
            .compress_vec(block)
            .map_err(|e| format!("compressing (snappy): {e}"))?;
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

/// xerial framing if the magic is there, else one raw snappy block (what
/// snappy-java also accepts, and some clients write).
fn snappy_decompress(data: &[u8], max: usize) -> Result<Vec<u8>, CodecError> {
    let fail = |e: snap::Error| format!("decompressing (snappy): {e}");
    let mut decoder = snap::raw::Decoder::new();
    let Some(mut rest) = data.strip_prefix(XERIAL_MAGIC.as_slice()) else {
        check_limit(snap::raw::decompress_len(data).map_err(fail)?, max)?;
        return decoder.decompress_vec(data).map_err(fail);
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("decompressing (snappy): torn block length")?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or("decompressing (snappy): block runs past the data")?;
        check_limit(
            out.len() + snap::raw::decompress_len(block).map_err(fail)?,
            max,
        )?;
        out.extend_from_slice(&decoder.decompress_vec(block).map_err(fail)?);
        rest = &tail[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_and_bombs_are_refused() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in 1..=4 {
            let packed = compress(codec, &data).unwrap();
            assert!(packed.len() < data.len(), "{}", codec_name(codec));
            assert_eq!(decompress(codec, &packed).unwrap(), data);
            // A truncated stream either fails or yields a prefix (the LZ4 frame
            // decoder stops at the last whole block); the batch's record count
            // catches the latter (see `batch`), and its CRC any real damage.
            if let Ok(prefix) = decompress(codec, &packed[..packed.len() / 2]) {
                assert!(data.starts_with(&prefix), "{}", codec_name(codec));
            }
        }
        let raw = snap::raw::Encoder::new()
            .compress_vec(b"raw snappy")
            .unwrap();
        assert_eq!(decompress(2, &raw).unwrap(), b"raw snappy");
        for codec in 1..=4 {
            let bomb = compress(codec, &vec![0u8; 100_000]).unwrap();
            let err = decompress_at_most(codec, &bomb, 99_999).unwrap_err();
            assert!(err.contains("bomb"), "{}: {err}", codec_name(codec));
        }
        assert!(decompress(5, b"x").is_err());
    }
}
