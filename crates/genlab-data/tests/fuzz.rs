//! Issue 12: bounded property tests of the readers (IDX, PNG, text): whatever bytes a file holds,
//! the reader returns data or an error naming the file, never a panic or an abort.

use genlab_data::folder::{read_image_folder, Color};
use genlab_data::idx::{encode_idx_u8, parse_idx, read_idx};
use genlab_data::TextCorpus;
use proptest::prelude::*;
use std::path::Path;

/// `base` with a few bytes flipped, deleted or inserted, or cut short.
fn damaged(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    (proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6), Just(base)).prop_map(|(edits, mut b)| {
        for (at, byte, op) in edits {
            let i = at % (b.len() + 1);
            match op {
                0 if i < b.len() => {
                    b.remove(i);
                }
                1 if i < b.len() => b[i] ^= byte | 1,
                2 => b.truncate(i),
                _ => b.insert(i, byte),
            }
        }
        b
    })
}

fn small_png() -> Vec<u8> {
    let img = image::GrayImage::from_fn(7, 5, |x, y| image::Luma([(x * 30 + y * 7) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn idx_bytes_parse_or_fail_with_the_file_named(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            damaged(encode_idx_u8(&[3, 2, 2], &[1; 12])),
        ],
    ) {
        if let Err(e) = parse_idx(&bytes, Path::new("x.idx")) {
            prop_assert!(e.to_string().starts_with("x.idx: "), "{e}");
        }
    }

    #[test]
    fn gzipped_idx_files_read_or_fail_with_the_file_named(bytes in damaged(gzip(&encode_idx_u8(&[4, 3], &[9; 12])))) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a-idx1-ubyte.gz");
        std::fs::write(&f, &bytes).unwrap();
        if let Err(e) = read_idx(&f) {
            prop_assert!(e.to_string().contains("a-idx1-ubyte.gz"), "{e}");
        }
    }

    #[test]
    fn png_files_decode_or_fail_with_the_file_named(bytes in damaged(small_png())) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("0.png"), &bytes).unwrap();
        if let Err(e) = read_image_folder(d.path(), Color::Gray, None) {
            prop_assert!(e.to_string().contains("0.png"), "{e}");
        }
    }

    #[test]
    fn text_files_read_or_fail_with_the_file_named(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..128),
            damaged(gzip("To be, or not to be".as_bytes())),
        ],
    ) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t.txt");
        std::fs::write(&f, &bytes).unwrap();
        if let Err(e) = TextCorpus::read(&f) {
            prop_assert!(e.to_string().contains("t.txt"), "{e}");
        }
    }
}
