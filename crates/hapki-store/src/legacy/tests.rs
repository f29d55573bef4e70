//! The schema-2 layout, written out by hand byte by byte, read back into our types.

use std::collections::BTreeMap;

use hapki_domain::revocation::RevocationReason;

use super::from_slice;
use crate::{CommandResult, NodeRecord, NodeStanding, RejectCode, Revocation};

/// `n` as the 8-byte little-endian count or `u64` bincode 1 writes.
fn u64le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn numbers_are_fixed_width_little_endian() {
    assert_eq!(from_slice::<u8>(&[0xfe]).unwrap(), 0xfe);
    assert_eq!(from_slice::<u16>(&[0x34, 0x12]).unwrap(), 0x1234);
    assert_eq!(from_slice::<u32>(&[0x78, 0x56, 0x34, 0x12]).unwrap(), 0x1234_5678);
    assert_eq!(from_slice::<u64>(&u64le(300)).unwrap(), 300);
    assert_eq!(from_slice::<i64>(&[0xff; 8]).unwrap(), -1);
    assert_eq!(from_slice::<i32>(&[0xfe, 0xff, 0xff, 0xff]).unwrap(), -2);
    assert_eq!(from_slice::<usize>(&u64le(7)).unwrap(), 7, "usize is a u64");
    assert_eq!(from_slice::<f64>(&1.5f64.to_le_bytes()).unwrap(), 1.5);
    assert_eq!(from_slice::<u128>(&[1; 16]).unwrap(), u128::from_le_bytes([1; 16]));
}

#[test]
fn bools_options_and_chars_take_their_own_bytes() {
    assert!(!from_slice::<bool>(&[0]).unwrap());
    assert!(from_slice::<bool>(&[1]).unwrap());
    assert_eq!(from_slice::<Option<u16>>(&[0]).unwrap(), None);
    assert_eq!(from_slice::<Option<u16>>(&[1, 3, 0]).unwrap(), Some(3));
    assert_eq!(from_slice::<char>(b"a").unwrap(), 'a');
    assert_eq!(from_slice::<char>("é".as_bytes()).unwrap(), 'é');
    assert_eq!(from_slice::<char>("€".as_bytes()).unwrap(), '€');
}

#[test]
fn strings_bytes_and_sequences_carry_a_u64_count() {
    assert_eq!(from_slice::<String>(&cat(&[&u64le(2), b"ab"])).unwrap(), "ab");
    assert_eq!(
        from_slice::<Vec<u8>>(&cat(&[&u64le(3), &[9, 8, 7]])).unwrap(),
        vec![9, 8, 7]
    );
    assert_eq!(
        from_slice::<Vec<u32>>(&cat(&[&u64le(2), &[1, 0, 0, 0], &[2, 0, 0, 0]])).unwrap(),
        vec![1, 2]
    );
    assert_eq!(
        from_slice::<Vec<String>>(&cat(&[&u64le(2), &u64le(1), b"x", &u64le(0)])).unwrap(),
        vec!["x".to_string(), String::new()]
    );
    let map = cat(&[&u64le(2), &u64le(1), &u64le(1), b"a", &u64le(5), &u64le(2), b"bc"]);
    assert_eq!(
        from_slice::<BTreeMap<u64, String>>(&map).unwrap(),
        BTreeMap::from([(1, "a".to_string()), (5, "bc".to_string())])
    );
}

#[test]
fn arrays_tuples_and_structs_have_no_count() {
    assert_eq!(from_slice::<[u8; 4]>(&[1, 2, 3, 4]).unwrap(), [1, 2, 3, 4]);
    assert_eq!(from_slice::<(u32, bool)>(&[5, 0, 0, 0, 1]).unwrap(), (5, true));
    assert_eq!(from_slice::<()>(&[]).unwrap(), ());
    // Revocation { at: u64, reason: enum }: KeyCompromise is variant 1.
    let bytes = cat(&[&u64le(1_700_000_000), &[1, 0, 0, 0]]);
    assert_eq!(
        from_slice::<Revocation>(&bytes).unwrap(),
        Revocation {
            at: 1_700_000_000,
            reason: RevocationReason::KeyCompromise
        }
    );
}

#[test]
fn an_enum_is_its_u32_variant_index_then_its_fields() {
    assert_eq!(from_slice::<RejectCode>(&[2, 0, 0, 0]).unwrap(), RejectCode::Invalid);
    assert_eq!(
        from_slice::<CommandResult>(&[0, 0, 0, 0]).unwrap(),
        CommandResult::Applied
    );
    // Rejected { code: NotFound, message: "gone" } is variant 2.
    let rejected = cat(&[&[2, 0, 0, 0], &[1, 0, 0, 0], &u64le(4), b"gone"]);
    assert_eq!(
        from_slice::<CommandResult>(&rejected).unwrap(),
        CommandResult::Rejected {
            code: RejectCode::NotFound,
            message: "gone".into()
        }
    );
    assert_eq!(
        from_slice::<Result<u8, String>>(&[0, 0, 0, 0, 9]).unwrap(),
        Ok(9),
        "a newtype variant is its index then its value"
    );
}

#[test]
fn a_node_record_reads_field_by_field() {
    let key = [0xab; 32];
    let bytes = cat(&[
        &u64le(0x1122), // id
        &u64le(2),      // name: count, bytes
        b"n1",
        &[1, 0, 0, 0], // standing: Removed
        &u64le(10),    // admitted_at
        &[1],          // removed_at: Some
        &u64le(20),
        &[1], // channel_key: Some, 32 bytes with no count
        &key,
    ]);
    assert_eq!(
        from_slice::<NodeRecord>(&bytes).unwrap(),
        NodeRecord {
            id: 0x1122,
            name: "n1".into(),
            standing: NodeStanding::Removed,
            admitted_at: 10,
            removed_at: Some(20),
            channel_key: Some(key),
        }
    );
}

#[test]
fn damaged_bytes_are_refused() {
    assert!(from_slice::<bool>(&[2]).is_err(), "a bool of 2");
    assert!(from_slice::<Option<u8>>(&[2, 0]).is_err(), "an Option tag of 2");
    assert!(from_slice::<u32>(&[1, 2, 3]).is_err(), "a short u32");
    assert!(from_slice::<u8>(&[1, 2]).is_err(), "bytes left over");
    assert!(
        from_slice::<Vec<u8>>(&u64le(u64::MAX)).is_err(),
        "a count beyond the bytes"
    );
    assert!(from_slice::<String>(&cat(&[&u64le(1), &[0xff]])).is_err(), "not UTF-8");
    assert!(from_slice::<RejectCode>(&[9, 0, 0, 0]).is_err(), "an unknown variant");
    let err = from_slice::<u32>(&[1]).unwrap_err().to_string();
    assert!(err.contains("not a schema-2 value"), "{err}");
}
