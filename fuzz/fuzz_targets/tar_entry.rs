//! The tar stream `dump` writes: whatever a file's chunks hold and whatever
//! size its entry records, the stream holds that one member and nothing
//! smuggled after it, or writing it fails.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&claim, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the recorded size; the rest, split at 0xff
    // bytes, are the chunks.
    let size = u64::from(claim) * 7;
    let chunks: Vec<Vec<u8>> = rest.split(|&b| b == 0xff).map(<[u8]>::to_vec).collect();
    let reader = arca_core::raw::ExactReader::new(chunks.clone().into_iter().map(Ok), size, "/f");
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    let mut builder = tar::Builder::new(Vec::new());
    if builder.append_data(&mut header, "f", reader).is_err() {
        return; // refused: the content is not `size` bytes
    }
    let Ok(stream) = builder.into_inner() else {
        return;
    };
    let content: Vec<u8> = chunks.concat();
    assert_eq!(content.len() as u64, size, "only exact content is written");
    let mut archive = tar::Archive::new(stream.as_slice());
    let mut members = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some("f"));
        let mut back = Vec::new();
        entry.read_to_end(&mut back).unwrap();
        assert_eq!(back, content);
        members += 1;
    }
    assert_eq!(members, 1);
});
