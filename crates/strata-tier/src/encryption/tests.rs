//! `EncryptedStore` over an in-memory store: round trips, ranges, multipart part
//! boundaries, header caching, rotation, and every way a stored object can be wrong.

use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutPayload, WriteMultipart,
};
use proptest::prelude::*;

use super::format::{cipher_len, CHUNK, HEADER_LEN, SEALED};
use super::*;
use crate::faulty::{Faults, FaultyStore};

fn keys(list: &[(&str, u8)]) -> MasterKeys {
    let owned: Vec<(&str, [u8; 32])> = list.iter().map(|(id, b)| (*id, [*b; 32])).collect();
    MasterKeys::from_keys(&owned, None).expect("keys")
}

/// Bytes that are easy to find if they leak: a repeated marker plus the position.
fn plaintext(len: usize) -> Bytes {
    (0..len)
        .map(|i| {
            if i % 64 < 16 {
                b"PLAINTEXT-MARKER"[i % 16]
            } else {
                i as u8
            }
        })
        .collect::<Vec<u8>>()
        .into()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The `TierError` behind an error of the wrapper.
fn tier_error(e: &object_store::Error) -> Option<&TierError> {
    match e {
        object_store::Error::Generic { source, .. } => source.downcast_ref::<TierError>(),
        _ => None,
    }
}

async fn get_all(store: &dyn ObjectStore, path: &Path) -> object_store::Result<Bytes> {
    store.get(path).await?.bytes().await
}

#[tokio::test]
async fn round_trip_sizes_and_nothing_in_the_clear() {
    let raw = Arc::new(InMemory::new());
    let store = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    for len in [
        0,
        1,
        100,
        CHUNK as usize - 1,
        CHUNK as usize,
        CHUNK as usize + 1,
        700_000,
    ] {
        let path = Path::from(format!("t/obj-{len}"));
        let body = plaintext(len);
        store.put(&path, body.clone().into()).await.expect("put");
        assert_eq!(
            get_all(&store, &path).await.expect("get"),
            body,
            "len {len}"
        );
        assert_eq!(store.head(&path).await.expect("head").size, len as u64);
        let stored = get_all(&*raw, &path).await.expect("raw get");
        assert_eq!(stored.len() as u64, cipher_len(len as u64));
        assert_eq!(&stored[..6], b"STRENC");
        assert!(
            !contains(&stored, b"PLAINTEXT-MARKER"),
            "len {len} leaks plaintext"
        );
    }
    let listed: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&Path::from("t"))))
            .await
            .expect("list");
    for m in &listed {
        let len: u64 = m
            .location
            .as_ref()
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("len");
        assert_eq!(m.size, len, "list shows plaintext sizes");
    }
    let delimited = store
        .list_with_delimiter(Some(&Path::from("t")))
        .await
        .expect("list");
    assert!(delimited
        .objects
        .iter()
        .all(|m| m.location.as_ref().ends_with(&format!("-{}", m.size))));
}

#[tokio::test]
async fn ranges_suffixes_offsets_and_their_errors() {
    let store = EncryptedStore::new(InMemory::new(), keys(&[("k1", 1)]));
    let path = Path::from("r");
    let body = plaintext(5 * CHUNK as usize + 123);
    store.put(&path, body.clone().into()).await.expect("put");
    let len = body.len() as u64;
    let get = |range| {
        let store = &store;
        let path = &path;
        async move {
            let r = store
                .get_opts(
                    path,
                    GetOptions {
                        range: Some(range),
                        ..Default::default()
                    },
                )
                .await?;
            let got = r.range.clone();
            Ok::<_, object_store::Error>((got, r.bytes().await?))
        }
    };
    let (range, b) = get(GetRange::Suffix(100)).await.expect("suffix");
    assert_eq!((range, &b[..]), (len - 100..len, &body[body.len() - 100..]));
    let (_, b) = get(GetRange::Suffix(len + 10)).await.expect("long suffix");
    assert_eq!(b, body);
    let (_, b) = get(GetRange::Offset(CHUNK * 3 + 5)).await.expect("offset");
    assert_eq!(&b[..], &body[(CHUNK * 3 + 5) as usize..]);
    let (range, b) = get(GetRange::Bounded(len - 10..len + 1000))
        .await
        .expect("clipped");
    assert_eq!((range, &b[..]), (len - 10..len, &body[body.len() - 10..]));
    let (range, b) = get(GetRange::Bounded(len - 10..u64::MAX))
        .await
        .expect("unbounded end");
    assert_eq!((range, &b[..]), (len - 10..len, &body[body.len() - 10..]));
    for bad in [
        GetRange::Bounded(len..len + 1),
        GetRange::Bounded(len + 5 * CHUNK..len + 6 * CHUNK),
        GetRange::Offset(len),
        GetRange::Bounded(5..5),
    ] {
        let err = get(bad.clone()).await.expect_err("out of range");
        assert!(err.to_string().contains("range"), "{bad:?}: {err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any plaintext range read through the wrapper equals those bytes of the
    /// plaintext, whether or not the header is cached yet.
    #[test]
    fn random_ranges_equal_the_plaintext(
        len in 0usize..(6 * CHUNK as usize),
        ranges in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let store = EncryptedStore::new(InMemory::new(), keys(&[("k1", 1)]));
            let path = Path::from("p");
            let body = plaintext(len);
            store.put(&path, body.clone().into()).await.expect("put");
            for (a, b) in ranges {
                if len == 0 {
                    break;
                }
                let start = (a * len as f64) as u64;
                let end = (start + 1 + (b * (len as u64 - start) as f64) as u64).min(len as u64);
                let got = store.get_range(&path, start..end).await.expect("range");
                prop_assert_eq!(&got[..], &body[start as usize..end as usize]);
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_far_read_fetches_the_header_once_and_only_its_chunks() {
    let faulty = FaultyStore::new(InMemory::new(), Faults::default());
    let store = EncryptedStore::new(faulty.clone(), keys(&[("k1", 1)]));
    let path = Path::from("far");
    let body = plaintext(64 * CHUNK as usize);
    store.put(&path, body.clone().into()).await.expect("put");
    let at = 40 * CHUNK + 7;
    let before = faulty.gets();
    let got = store.get_range(&path, at..at + 10).await.expect("far read");
    assert_eq!(&got[..], &body[at as usize..at as usize + 10]);
    assert_eq!(faulty.gets() - before, 2, "header and data, concurrently");
    let got = store
        .get_range(&path, at + CHUNK..at + CHUNK + 10)
        .await
        .expect("again");
    assert_eq!(
        &got[..],
        &body[(at + CHUNK) as usize..(at + CHUNK) as usize + 10]
    );
    assert_eq!(faulty.gets() - before, 3, "the header is cached");
    // A read from the start brings the header in its own GET.
    let fresh = EncryptedStore::new(faulty.clone(), keys(&[("k1", 1)]));
    let before = faulty.gets();
    fresh
        .get_range(&path, 5..CHUNK * 2)
        .await
        .expect("near read");
    assert_eq!(faulty.gets() - before, 1, "one GET from the start");
}

#[tokio::test]
async fn an_object_replaced_under_a_cached_header_is_read_with_its_own_key() {
    let raw = Arc::new(InMemory::new());
    let a = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    let b = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    let path = Path::from("replaced");
    a.put(&path, plaintext(3 * CHUNK as usize).into())
        .await
        .expect("put");
    a.get_range(&path, CHUNK..CHUNK + 1)
        .await
        .expect("caches the header");
    let new_body: Bytes = vec![7u8; 3 * CHUNK as usize].into();
    b.put(&path, new_body.clone().into())
        .await
        .expect("overwrite from another broker");
    let got = a
        .get_range(&path, 2 * CHUNK..2 * CHUNK + 100)
        .await
        .expect("read");
    assert_eq!(&got[..], &new_body[..100]);
}

#[tokio::test]
async fn multipart_uploads_survive_any_part_boundaries() {
    let raw = Arc::new(InMemory::new());
    let store = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    let mib = 1 << 20;
    for (len, part) in [
        (0, 5 * mib),
        (100, 5 * mib),
        (5 * mib, 5 * mib),
        (5 * mib + 1, 5 * mib),
        (12 * mib + 12_345, 5 * mib),
        (20 * mib, 8 * mib),
        (11 * CHUNK as usize, 5 * mib),
    ] {
        let path = Path::from(format!("mp/{len}-{part}"));
        let body = plaintext(len);
        let upload = store.put_multipart(&path).await.expect("start");
        let mut w = WriteMultipart::new_with_chunk_size(upload, part);
        for piece in body.chunks(300_001) {
            w.wait_for_capacity(4).await.expect("capacity");
            w.write(piece);
        }
        w.finish().await.expect("finish");
        assert_eq!(
            get_all(&store, &path).await.expect("get"),
            body,
            "{len} in parts of {part}"
        );
        let stored = get_all(&*raw, &path).await.expect("raw");
        assert_eq!(stored.len() as u64, cipher_len(len as u64));
        assert!(!contains(&stored, b"PLAINTEXT-MARKER"));
    }
}

/// Parts handed over out of order, with awaits in reverse: the inner upload still
/// receives them in `put_part` order.
#[tokio::test]
async fn parts_awaited_in_any_order_keep_their_order() {
    let store = EncryptedStore::new(InMemory::new(), keys(&[("k1", 1)]));
    let path = Path::from("order");
    let body = plaintext(23 << 20);
    let mut upload = store.put_multipart(&path).await.expect("start");
    let parts: Vec<_> = body
        .chunks(6 << 20)
        .map(|c| upload.put_part(PutPayload::from(Bytes::copy_from_slice(c))))
        .collect();
    for p in parts.into_iter().rev() {
        p.await.expect("part");
    }
    upload.complete().await.expect("complete");
    assert_eq!(get_all(&store, &path).await.expect("get"), body);
}

#[tokio::test]
async fn tampering_truncation_and_wrong_keys_are_errors_naming_the_object() {
    let raw = Arc::new(InMemory::new());
    let store = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    let path = Path::from("topic/0/00000000000000000000-x.log");
    let body = plaintext(3 * CHUNK as usize + 10);
    store.put(&path, body.clone().into()).await.expect("put");
    let stored = get_all(&*raw, &path).await.expect("raw");
    let reread = |bytes: Vec<u8>| {
        let raw = raw.clone();
        let path = path.clone();
        async move {
            raw.put(&path, bytes.into()).await.expect("raw put");
            let fresh = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
            get_all(&fresh, &path).await
        }
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped key id byte", flip(&stored, 14)),
        ("a flipped wrapped-key byte", flip(&stored, 100)),
        (
            "a flipped byte in chunk 1",
            flip(&stored, HEADER_LEN + SEALED as usize + 9),
        ),
        (
            "a flipped tag byte",
            flip(&stored, HEADER_LEN + SEALED as usize - 1),
        ),
        (
            "cut at a chunk boundary",
            stored[..HEADER_LEN + 2 * SEALED as usize].to_vec(),
        ),
        (
            "cut mid-chunk",
            stored[..HEADER_LEN + SEALED as usize + 5000].to_vec(),
        ),
        ("extended", [&stored[..], &[0u8; 40]].concat()),
        ("swapped chunks", swap_chunks(&stored, 0, 1)),
        ("cut to the header", stored[..HEADER_LEN].to_vec()),
        ("plaintext", body.to_vec()),
    ];
    for (what, bytes) in cases {
        let err = reread(bytes).await.expect_err(what);
        let msg = err.to_string();
        assert!(tier_error(&err).is_some(), "{what}: {msg}");
        assert!(
            msg.contains(path.as_ref()),
            "{what}: names the object: {msg}"
        );
    }
    // Through a range that avoids the damage, the intact chunks still read.
    raw.put(
        &path,
        flip(&stored, HEADER_LEN + 2 * SEALED as usize + 3).into(),
    )
    .await
    .expect("put");
    let fresh = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    assert_eq!(
        fresh.get_range(&path, 0..100).await.expect("chunk 0"),
        body.slice(..100)
    );
    let err = fresh
        .get_range(&path, 2 * CHUNK..2 * CHUNK + 1)
        .await
        .expect_err("chunk 2");
    assert!(
        matches!(tier_error(&err), Some(TierError::Tampered { what, .. }) if what.starts_with("chunk 2")),
        "{err}"
    );

    raw.put(&path, stored.clone().into())
        .await
        .expect("restore");
    let wrong = EncryptedStore::new(raw.clone(), keys(&[("k1", 2)]));
    let err = get_all(&wrong, &path)
        .await
        .expect_err("wrong key, same id");
    assert!(
        matches!(tier_error(&err), Some(TierError::Tampered { key_id, .. }) if key_id == "k1"),
        "{err}"
    );
    let missing = EncryptedStore::new(raw.clone(), keys(&[("k2", 1)]));
    let err = get_all(&missing, &path).await.expect_err("no such key");
    assert!(
        matches!(tier_error(&err), Some(TierError::UnknownMasterKey { key_id, .. }) if key_id == "k1"),
        "{err}"
    );
    // A header moved to another name does not open there.
    raw.put(&Path::from("elsewhere"), stored.into())
        .await
        .expect("put");
    let err = get_all(&store, &Path::from("elsewhere"))
        .await
        .expect_err("moved");
    assert!(
        matches!(tier_error(&err), Some(TierError::Tampered { .. })),
        "{err}"
    );
}

fn flip(b: &[u8], at: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[at] ^= 0x01;
    v
}

fn swap_chunks(b: &[u8], i: usize, j: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    let s = SEALED as usize;
    let (a, c) = (HEADER_LEN + i * s, HEADER_LEN + j * s);
    let tmp = v[a..a + s].to_vec();
    v.copy_within(c..c + s, a);
    v[c..c + s].copy_from_slice(&tmp);
    v
}

#[tokio::test]
async fn rotation_needs_no_rewrite_and_old_objects_name_their_key() {
    let raw = Arc::new(InMemory::new());
    let before = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    before
        .put(&Path::from("old"), plaintext(1000).into())
        .await
        .expect("put");
    let after = EncryptedStore::new(raw.clone(), keys(&[("k1", 1), ("k2", 2)]));
    assert_eq!(after.keys().active_id(), "k2");
    after
        .put(&Path::from("new"), plaintext(2000).into())
        .await
        .expect("put");
    assert_eq!(
        get_all(&after, &Path::from("old")).await.expect("old"),
        plaintext(1000)
    );
    assert_eq!(
        get_all(&after, &Path::from("new")).await.expect("new"),
        plaintext(2000)
    );
    let key_id = |b: Bytes| String::from_utf8(b[13..13 + b[12] as usize].to_vec()).expect("id");
    assert_eq!(
        key_id(get_all(&*raw, &Path::from("old")).await.expect("raw")),
        "k1"
    );
    assert_eq!(
        key_id(get_all(&*raw, &Path::from("new")).await.expect("raw")),
        "k2"
    );
    // Dropping the old key from the file makes its objects unreadable, with a clear error.
    let dropped = EncryptedStore::new(raw.clone(), keys(&[("k2", 2)]));
    let err = get_all(&dropped, &Path::from("old"))
        .await
        .expect_err("old key gone");
    assert!(err.to_string().contains("'k1'"), "{err}");
}

#[tokio::test]
async fn copy_rename_and_create_if_absent_behave_like_the_inner_store() {
    let store = EncryptedStore::new(InMemory::new(), keys(&[("k1", 1)]));
    let body = plaintext(3 * CHUNK as usize);
    let big = plaintext(9 << 20);
    store
        .put(&Path::from("a"), body.clone().into())
        .await
        .expect("put");
    store
        .put(&Path::from("big"), big.clone().into())
        .await
        .expect("put");
    store
        .copy(&Path::from("a"), &Path::from("b"))
        .await
        .expect("copy");
    store
        .copy(&Path::from("big"), &Path::from("big2"))
        .await
        .expect("streamed copy");
    assert_eq!(get_all(&store, &Path::from("b")).await.expect("b"), body);
    assert_eq!(
        get_all(&store, &Path::from("big2")).await.expect("big2"),
        big
    );
    let err = store
        .copy_if_not_exists(&Path::from("a"), &Path::from("b"))
        .await;
    assert!(
        matches!(err, Err(object_store::Error::AlreadyExists { .. })),
        "{err:?}"
    );
    store
        .rename(&Path::from("b"), &Path::from("c"))
        .await
        .expect("rename");
    assert!(matches!(
        store.head(&Path::from("b")).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert_eq!(get_all(&store, &Path::from("c")).await.expect("c"), body);
    let second = store
        .put_opts(
            &Path::from("c"),
            Bytes::from_static(b"x").into(),
            PutMode::Create.into(),
        )
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "{second:?}"
    );
}

/// A large body is opened in 1 MiB pieces on blocking threads: the pieces before a
/// damaged chunk arrive intact and whole, then the stream fails; nothing after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_chunk_deep_in_a_large_read_ends_the_stream_after_intact_pieces() {
    let raw = Arc::new(InMemory::new());
    let store = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    let path = Path::from("large");
    let body = plaintext(40 * CHUNK as usize + 77);
    store.put(&path, body.clone().into()).await.expect("put");
    let stored = get_all(&*raw, &path).await.expect("raw");
    raw.put(
        &path,
        flip(&stored, HEADER_LEN + 35 * SEALED as usize + 100).into(),
    )
    .await
    .expect("tamper");
    let fresh = EncryptedStore::new(raw.clone(), keys(&[("k1", 1)]));
    let mut stream = fresh.get(&path).await.expect("get").into_stream();
    let mut got = Vec::new();
    let err = loop {
        match futures::StreamExt::next(&mut stream).await {
            Some(Ok(piece)) => {
                assert_eq!(piece.len() as u64 % (16 * CHUNK), 0, "whole 1 MiB pieces");
                got.extend_from_slice(&piece);
            }
            Some(Err(e)) => break e,
            None => panic!("the damaged chunk was served"),
        }
    };
    assert_eq!(
        got.len() as u64,
        32 * CHUNK,
        "the two pieces before the damage"
    );
    assert_eq!(&got[..], &body[..got.len()]);
    assert!(
        matches!(tier_error(&err), Some(TierError::Tampered { what, .. }) if what.starts_with("chunk 35")),
        "{err}"
    );
}
